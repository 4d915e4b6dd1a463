"""Variations: img2img from a stored image, batched with one generator per seed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from generation.bundled import bundled_model_config
from generation.imagine import run_imagine
from generation.models import LoadedModel, load_model
from generation.specs import STRONG_STRENGTH, SUBTLE_STRENGTH, ImagineSpec, VarySpec
from generation.vary import run_vary

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
        model="bundled", prompt=first, seeds=(1,), width=64, height=64, steps=20, guidance=5.0
    )
    source = run_imagine(bundled, picture).images[0]
    changes = {"model": "bundled", "steps": 20, "guidance": 5.0}

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
