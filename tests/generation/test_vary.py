"""Variations: img2img from a stored image, batched with one generator per seed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from generation.bundled import bundled_model_config
from generation.errors import SpecError
from generation.models.loading import LoadedModel, load_model
from generation.operations.imagine import run_imagine
from generation.operations.vary import run_vary
from generation.specs import STRONG_STRENGTH, SUBTLE_STRENGTH, ImagineSpec, RegionBox, VarySpec, build_spec
from tests.conftest import pixels, red_circle_spec, red_pixels

SOURCE_HASH = "0" * 64  # run_vary takes the image itself; the hash only names it in the spec


@pytest.fixture(scope="module")
def source(tiny_model: LoadedModel) -> Image.Image:
    spec = ImagineSpec(
        model="tiny", prompt="a red circle", seeds=(1,), width=64, height=64, steps=4, guidance=7.0
    )
    return run_imagine(tiny_model, spec).images[0]


def vary(strength: float, seeds: tuple[int, ...] = (10, 11, 12, 13)) -> VarySpec:
    return VarySpec(
        model="tiny",
        prompt="a red circle",
        seeds=seeds,
        width=64,
        height=64,
        steps=10,
        guidance=7.0,
        source=SOURCE_HASH,
        strength=strength,
    )


def distance(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean())


def test_variations_have_the_size_and_count_asked_for(tiny_model: LoadedModel, source: Image.Image) -> None:
    result = run_vary(tiny_model, vary(STRONG_STRENGTH), source)
    assert [image.size for image in result.images] == [(64, 64)] * 4
    assert len({image.tobytes() for image in result.images}) == 4  # four different seeds, four images


def test_more_strength_lets_the_prompt_repaint_more_of_the_source() -> None:
    # On the bundled model (the tiny one has random weights, whose images mean nothing): the source is
    # a red circle on blue; the variations are asked for a yellow star on green.
    bundled = load_model(bundled_model_config(), device="cpu")
    first = "a large red circle on a blue background"
    picture = ImagineSpec(
        model="bundled",
        prompt=first,
        seeds=(1,),
        width=bundled.resolution,
        height=bundled.resolution,
        steps=20,
        guidance=5.0,
    )
    source = run_imagine(bundled, picture).images[0]
    size = {"width": bundled.resolution, "height": bundled.resolution}
    changes = {"model": "bundled", "steps": 20, "guidance": 5.0, **size}

    def mean_distance(prompt: str, strength: float) -> float:
        spec = vary(strength).model_copy(update={**changes, "prompt": prompt})
        return float(np.mean([distance(image, source) for image in run_vary(bundled, spec, source).images]))

    assert mean_distance(first, SUBTLE_STRENGTH) < 8  # same prompt: the picture survives (0-255 scale)
    other = "a large yellow star on a green background"
    assert mean_distance(other, 0.1) < 0.85 * mean_distance(other, STRONG_STRENGTH)


def test_same_spec_same_pixels_and_steps_scale_with_strength(
    tiny_model: LoadedModel, source: Image.Image
) -> None:
    steps: list[tuple[int, int]] = []
    first = run_vary(tiny_model, vary(SUBTLE_STRENGTH), source, on_step=lambda s, t: steps.append((s, t)))
    second = run_vary(tiny_model, vary(SUBTLE_STRENGTH), source)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(first.images, second.images, strict=True))
    assert steps[-1] == (3, 3)  # 10 steps at strength 0.35: only the last 3 are redone


def region_spec(strength: float = 1.0, **region: object) -> VarySpec:
    return vary(strength).model_copy(update=region)


def outside(mask: Image.Image, margin: int) -> np.ndarray:
    """True where a pixel lies beyond the blend ramp (2 margins) around the mask."""
    from generation.operations.masks import grow

    return np.asarray(grow(mask, 2 * margin)) == 0


def test_region_vary_repaints_the_box_and_keeps_every_pixel_outside_it(
    tiny_model: LoadedModel, source: Image.Image
) -> None:
    from generation.operations.inpaint import seam_margin
    from generation.operations.masks import box_mask

    box = RegionBox(left=0.5, top=0.25, right=1.0, bottom=0.75)
    result = run_vary(tiny_model, region_spec(box=box), source)
    mask = box_mask(source.size, box)
    kept = outside(mask, seam_margin(tiny_model))
    assert kept.mean() > 0.2  # the test means something: a good part of the picture is outside
    inside = np.asarray(mask) == 255
    for image in result.images:
        change = np.abs(pixels(image) - pixels(source)).max(axis=2)
        assert change[kept].max() == 0  # exactly the source's pixels
        assert change[inside].mean() > 10  # the region was repainted
    assert len({image.tobytes() for image in result.images}) == 4


def test_region_vary_follows_an_uploaded_mask_white_or_transparent(
    tiny_model: LoadedModel, source: Image.Image
) -> None:
    from generation.operations.inpaint import seam_margin

    white = Image.new("L", (32, 32), 0)  # a different size from the picture: it is fitted
    white.paste(255, (0, 0, 12, 32))  # the left 3/8 of the picture
    transparent = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    transparent.paste((0, 0, 0, 0), (0, 0, 24, 64))
    spec = region_spec(mask="1" * 64)
    by_white = run_vary(tiny_model, spec, source, mask=white)
    by_alpha = run_vary(tiny_model, spec, source, mask=transparent)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(by_white.images, by_alpha.images, strict=True))
    left = Image.new("L", (64, 64), 0)
    left.paste(255, (0, 0, 24, 64))
    kept = outside(left, seam_margin(tiny_model))
    assert kept[:, 40:].all() and not kept[:, :24].any()
    for image in by_white.images:
        assert np.abs(pixels(image) - pixels(source))[kept].max() == 0


def test_an_empty_mask_or_box_is_refused(tiny_model: LoadedModel, source: Image.Image) -> None:
    with pytest.raises(SpecError, match="mask is empty"):
        run_vary(tiny_model, region_spec(mask="1" * 64), source, mask=Image.new("L", (64, 64), 0))
    with pytest.raises(SpecError, match="box is empty"):
        build_spec(RegionBox, left=0.5, top=0.1, right=0.5, bottom=0.9)
    with pytest.raises(SpecError, match="not both"):
        build_spec(
            VarySpec,
            **{
                **vary(1.0).model_dump(),
                "mask": "1" * 64,
                "box": {"left": 0, "top": 0, "right": 1, "bottom": 1},
            },
        )


def test_region_vary_on_the_bundled_model_paints_over_the_boxed_circle_only(
    bundled_model: LoadedModel,
) -> None:
    """A red circle on blue; the box covers it and asks for background: the red goes, the rest stays."""
    source = run_imagine(bundled_model, red_circle_spec()).images[0]
    rgb = pixels(source)
    red = red_pixels(source)
    ys, xs = np.nonzero(red)
    assert red.sum() > 500
    box = RegionBox(
        left=xs.min() / source.width,
        top=ys.min() / source.height,
        right=(xs.max() + 1) / source.width,
        bottom=(ys.max() + 1) / source.height,
    )
    spec = vary(1.0).model_copy(
        update={"model": "bundled", "steps": 20, "guidance": 5.0, "prompt": "a blue background", "box": box,
                "width": source.width, "height": source.height}
    )  # fmt: skip
    from generation.operations.inpaint import seam_margin
    from generation.operations.masks import box_mask

    kept = outside(box_mask(source.size, box), seam_margin(bundled_model))
    assert kept.sum() > 200
    for image in run_vary(bundled_model, spec, source).images:
        after = pixels(image)
        assert red_pixels(image).sum() < 0.2 * red.sum()  # the circle is painted over
        assert np.array_equal(after[kept], rgb[kept])  # and everything beyond the box is the source
