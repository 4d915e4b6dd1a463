from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generation.sizes import size_for_aspect


@pytest.mark.parametrize(
    ("aspect", "resolution", "size"),
    [
        ((1, 1), 512, (512, 512)),
        ((16, 9), 512, (680, 384)),
        ((9, 16), 512, (384, 680)),
        ((1, 1), 64, (64, 64)),
    ],
)
def test_known_sizes(aspect: tuple[int, int], resolution: int, size: tuple[int, int]) -> None:
    assert size_for_aspect(aspect, resolution) == size


@given(st.integers(1, 400), st.integers(1, 400), st.sampled_from([64, 128, 512, 768, 1024]))
def test_size_is_snapped_within_budget_and_keeps_the_ratio(w: int, h: int, resolution: int) -> None:
    if max(w / h, h / w) > 4:
        return
    width, height = size_for_aspect((w, h), resolution)
    assert width % 8 == 0 and height % 8 == 0
    assert width * height <= resolution * resolution
    # Snapping loses at most one multiple of 8 per side.
    assert abs(width / height - w / h) <= (w / h) * (8 / min(width, height)) * 2
