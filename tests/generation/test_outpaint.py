"""Outpaint: canvas planning (zoom, pan, square, aspect) and painting around a kept source."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from generation.bundled import evaluator
from generation.errors import SpecError
from generation.models.loading import LoadedModel
from generation.operations.imagine import run_imagine
from generation.operations.inpaint import run_outpaint, seam_margin
from generation.operations.masks import grow
from generation.operations.outpaint import canvas_and_mask
from generation.specs import (
    MAX_AREA_FACTOR,
    ImagineSpec,
    OutpaintSpec,
    Placement,
    outpaint_spec,
    plan_outpaint,
)
from tests.conftest import pixels, red_circle_spec, red_pixels

BUDGET_64 = MAX_AREA_FACTOR * 64 * 64
SOURCE_HASH = "0" * 64


def test_zoom_keeps_the_size_and_centres_the_shrunken_source() -> None:
    two = plan_outpaint("zoom", (64, 64), BUDGET_64, zoom=2.0)
    assert (two.width, two.height) == (64, 64)
    assert two.placement == Placement(left=16, top=16, width=32, height=32)
    one_and_half = plan_outpaint("zoom", (96, 64), BUDGET_64, zoom=1.5)
    assert (one_and_half.width, one_and_half.height) == (96, 64)
    assert (one_and_half.placement.width, one_and_half.placement.height) == (64, 43)
    with pytest.raises(SpecError, match="zoom must be between"):
        plan_outpaint("zoom", (64, 64), BUDGET_64, zoom=8)


@pytest.mark.parametrize(
    ("operation", "size", "placement"),
    [
        ("pan-left", (96, 64), (32, 0, 64, 64)),
        ("pan-right", (96, 64), (0, 0, 64, 64)),
        ("pan-up", (64, 96), (0, 32, 64, 64)),
        ("pan-down", (64, 96), (0, 0, 64, 64)),
    ],
)
def test_pan_extends_one_side_by_half_at_the_source_scale(
    operation: str, size: tuple[int, int], placement: tuple[int, int, int, int]
) -> None:
    canvas = plan_outpaint(operation, (64, 64), BUDGET_64)  # type: ignore[arg-type]
    assert (canvas.width, canvas.height) == size  # a square panned sideways becomes 3:2, up/down 2:3
    box = canvas.placement
    assert (box.left, box.top, box.width, box.height) == placement


def test_square_and_aspect_grow_the_short_side_around_the_centre() -> None:
    square = plan_outpaint("square", (96, 64), BUDGET_64)
    assert (square.width, square.height) == (96, 96)
    assert square.placement == Placement(left=0, top=16, width=96, height=64)
    wide = plan_outpaint("aspect", (64, 64), BUDGET_64, aspect=(16, 9))
    assert (wide.width, wide.height) == (112, 64)
    assert wide.width / wide.height == pytest.approx(16 / 9, abs=0.03)
    with pytest.raises(SpecError, match="already square"):
        plan_outpaint("square", (64, 64), BUDGET_64)
    with pytest.raises(SpecError, match="up to 4:1"):
        plan_outpaint("aspect", (64, 64), BUDGET_64, aspect=(9, 1))


def test_a_canvas_over_the_model_budget_is_scaled_down_keeping_its_shape() -> None:
    canvas = plan_outpaint("pan-right", (128, 128), BUDGET_64)  # 192x128 > 4 x 64²
    assert canvas.width * canvas.height <= BUDGET_64
    assert canvas.width % 8 == 0 and canvas.height % 8 == 0
    assert canvas.width / canvas.height == pytest.approx(1.5, abs=0.05)
    assert canvas.placement.right <= canvas.width


def paint(
    model: LoadedModel, source: Image.Image, operation: str, **options: object
) -> tuple[OutpaintSpec, list[Image.Image]]:
    base = ImagineSpec(
        model=model.config.name,
        prompt="a large red circle in the centre on a blue background",
        seeds=(1,),
        width=64,
        height=64,
        steps=12,
        guidance=5.0,
    )
    spec = outpaint_spec(base, SOURCE_HASH, source.size, operation, 64, **options)  # type: ignore[arg-type]
    return spec, run_outpaint(model, spec, source).images


@pytest.fixture(scope="module")
def tiny_source(tiny_model: LoadedModel) -> Image.Image:
    spec = ImagineSpec(
        model="tiny", prompt="a red circle", seeds=(3,), width=64, height=64, steps=4, guidance=7.0
    )
    return run_imagine(tiny_model, spec).images[0]


@pytest.mark.parametrize(("operation", "options"), [("zoom", {"zoom": 2.0}), ("pan-left", {})])
def test_outpaint_keeps_the_source_and_fills_the_new_area(
    tiny_model: LoadedModel, tiny_source: Image.Image, operation: str, options: dict[str, object]
) -> None:
    source = tiny_source.resize((128, 128))  # big enough that the kept part is wider than the blend ramp
    spec, images = paint(tiny_model, source, operation, **options)
    assert len(images) == 4 and all(image.size == (spec.width, spec.height) for image in images)
    start, mask = canvas_and_mask(spec, source)
    kept = np.asarray(grow(mask, 2 * seam_margin(tiny_model))) == 0
    new = np.asarray(mask) == 255
    assert kept.sum() > 0 and new.sum() > 0
    for image in images:
        assert np.abs(pixels(image) - pixels(start))[kept].max() == 0  # the placed source, untouched
        filled = pixels(image)[new]
        assert filled.std(axis=0).mean() > 5  # painted, not blank or one flat colour
        assert np.abs(filled - pixels(start)[new]).mean() > 5  # and not the mean-colour backdrop


def red_area_and_centre(image: Image.Image) -> tuple[int, np.ndarray]:
    red = red_pixels(image)
    ys, xs = np.nonzero(red)
    return int(red.sum()), np.array([xs.mean(), ys.mean()])


def test_zoom_out_of_a_circle_on_the_bundled_model_keeps_it_at_half_size_nearer_the_centre(
    bundled_model: LoadedModel,
) -> None:
    base = red_circle_spec()
    source = run_imagine(bundled_model, base).images[0]
    area, centre = red_area_and_centre(source)
    assert area > 500  # the source really has a big red circle
    # The new area is asked for background only: this model paints a second circle when told "a circle".
    spec = outpaint_spec(
        base,
        SOURCE_HASH,
        source.size,
        "zoom",
        bundled_model.resolution,
        zoom=2.0,
        seeds=(1, 2, 3, 4),
        prompt="a blue background",
    )
    middle = (source.width - 1) / 2
    images = run_outpaint(bundled_model, spec, source).images
    for image in images:
        zoomed_area, zoomed_centre = red_area_and_centre(image)
        assert 0.15 < zoomed_area / area < 0.35  # 1/4 of the area at half the scale
        # half as far off centre, within 3 px at 64 px
        assert np.abs(zoomed_centre - (middle + (centre - middle) / 2)).max() < 3 * source.width / 64
    verdicts = evaluator.classify(evaluator.load(), images)
    found = [v for v in verdicts if v.colour == "red" and v.position == "centre"]
    assert len(found) >= 3, verdicts
