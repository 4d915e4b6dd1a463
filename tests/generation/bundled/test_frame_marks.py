"""The corner- and edge-mark measures of bench/operation_checks.py (issue 22: no fixed artefacts). They
read pictures on a solid background: a gradient across a corner or an edge reads as a mark too."""

from __future__ import annotations

import numpy as np
import pytest

from bench.operation_checks import picture_corner_marks, picture_edge_marks

CORNERS = {"TL": (slice(0, 2), slice(0, 2)), "TR": (slice(0, 2), slice(-2, None)),
           "BL": (slice(-2, None), slice(0, 2)), "BR": (slice(-2, None), slice(-2, None))}  # fmt: skip
EDGES = {"left": (slice(None), slice(0, 1)), "right": (slice(None), slice(-1, None)),
         "top": (slice(0, 1), slice(None)), "bottom": (slice(-1, None), slice(None))}  # fmt: skip
MAGENTA_FROM_GRAY = (55 + 200 + 55) / 3  # mean distance of (255, 0, 255) from (200, 200, 200)


@pytest.mark.parametrize("corner", sorted(CORNERS))
def test_a_mark_in_one_corner_is_read_there_only(corner: str) -> None:
    pixels = np.full((128, 128, 3), 200.0)
    pixels[CORNERS[corner]] = (255.0, 0.0, 255.0)  # a magenta fringe in the last 2x2 pixels
    marks = picture_corner_marks(pixels)
    assert marks.pop(corner) == pytest.approx(4 / 9 * MAGENTA_FROM_GRAY)
    assert set(marks.values()) == {0.0}


@pytest.mark.parametrize("edge", sorted(EDGES))
def test_a_line_along_one_edge_is_read_there_only(edge: str) -> None:
    pixels = np.full((128, 128, 3), 200.0)
    pixels[EDGES[edge]] = (255.0, 0.0, 255.0)  # a magenta line in the last pixels along that edge
    marks = picture_edge_marks(pixels)
    assert marks.pop(edge) == pytest.approx(MAGENTA_FROM_GRAY / 3)  # one of the three lines read
    assert set(marks.values()) == {0.0}  # the other edges' reads stop 8 px short of the corners
