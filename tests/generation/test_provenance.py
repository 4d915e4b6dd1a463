"""Every result PNG says what made it: an A1111 "parameters" chunk and the exact spec."""

from __future__ import annotations

import pytest

from generation.config import ModelConfig
from generation.operations.imagine import run_imagine
from generation.pictures.provenance import a1111_parameters, read_chunks
from generation.pool.runner import JobRunner
from generation.specs import AdapterRef, ImagineSpec, spec_from_json
from tests.conftest import assert_images_close


@pytest.fixture(scope="module")
def runner(tiny_config: ModelConfig) -> JobRunner:
    return JobRunner({"tiny": tiny_config}, device="cpu")


def test_each_picture_carries_its_parameters_and_its_own_spec(runner: JobRunner) -> None:
    spec = ImagineSpec(
        model="tiny",
        prompt="a red circle, bright",
        negative_prompt="blur",
        seeds=(40, 41),
        width=64,
        height=64,
        steps=3,
        guidance=6.5,
    )
    output = runner.run(spec)
    for picture, seed in zip(output.images, spec.seeds, strict=True):
        chunks = read_chunks(picture.png)
        prompt, negative, fields = chunks["parameters"].split("\n")
        assert (prompt, negative) == ("a red circle, bright", "Negative prompt: blur")
        assert fields == f"Steps: 3, Sampler: Euler a, CFG scale: 6.5, Seed: {seed}, Size: 64x64, Model: tiny"
        again = spec_from_json(chunks["dreamcord"])
        assert isinstance(again, ImagineSpec) and again.seeds == (seed,)
        assert_images_close(run_imagine(runner.models.get("tiny"), again).images[0], picture.image())


def test_adapters_and_strength_are_named() -> None:
    ref = AdapterRef(name="rex", weight=0.7, kind="lora", file="ab" * 32)
    spec = ImagineSpec(
        model="m", prompt="a <rex>", seeds=(1,), width=64, height=64, steps=3, guidance=7, adapters=(ref,)
    )
    assert a1111_parameters(spec, 1, 64, 64).endswith('Lora hashes: "rex: abababababab"')
