"""The corner-mark measure of bench/operation_checks.py (issue 22: no fixed artefacts). It reads
pictures on a solid background: a gradient across a corner reads as a mark too."""

from __future__ import annotations

import numpy as np
import pytest

from bench.operation_checks import picture_corner_marks

CORNERS = {"TL": (slice(0, 2), slice(0, 2)), "TR": (slice(0, 2), slice(-2, None)),
           "BL": (slice(-2, None), slice(0, 2)), "BR": (slice(-2, None), slice(-2, None))}  # fmt: skip


@pytest.mark.parametrize("corner", sorted(CORNERS))
def test_a_mark_in_one_corner_is_read_there_only(corner: str) -> None:
    pixels = np.full((128, 128, 3), 200.0)
    pixels[CORNERS[corner]] = (255.0, 0.0, 255.0)  # a magenta fringe in the last 2x2 pixels
    marks = picture_corner_marks(pixels)
    assert marks.pop(corner) == pytest.approx(4 / 9 * (55 + 200 + 55) / 3)
    assert set(marks.values()) == {0.0}
