"""Every result PNG says what made it: an A1111 "parameters" chunk and the exact spec."""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from sd_parsers import ParserManager

from bot.images import fit_to_limit, grid_png
from generation.config import ModelConfig
from generation.models.model_hash import a1111_model_hash
from generation.operations.imagine import run_imagine
from generation.pictures.provenance import ModelStamp, a1111_parameters, read_chunks
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
        assert fields == (
            f"Steps: 3, Sampler: Euler a, CFG scale: 6.5, Seed: {seed}, Size: 64x64, Model: tiny, "
            f"Version: dreamcord {metadata.version('dreamcord')}"
        )
        again = spec_from_json(chunks["dreamcord"])
        assert isinstance(again, ImagineSpec) and again.seeds == (seed,)
        assert_images_close(run_imagine(runner.models.get("tiny"), again).images[0], picture.image())


def test_adapters_and_strength_are_named() -> None:
    ref = AdapterRef(name="rex", weight=0.7, kind="lora", file="ab" * 32)
    spec = ImagineSpec(
        model="m", prompt="a <rex>", seeds=(1,), width=64, height=64, steps=3, guidance=7, adapters=(ref,)
    )
    assert 'Lora hashes: "rex: abababababab"' in a1111_parameters(spec, 1, 64, 64)


def test_adapters_are_written_as_a1111_does() -> None:
    lora = AdapterRef(name="rex", weight=0.7, kind="lora", file="ab" * 32)
    embedding = AdapterRef(name="shiny", weight=1.0, kind="embedding", file="cd" * 32)
    spec = ImagineSpec(
        model="m", prompt="a <rex> dog, <shiny>", negative_prompt="blurry <shiny>", seeds=(1,),
        width=64, height=64, steps=3, guidance=7, adapters=(lora, embedding),
    )  # fmt: skip
    prompt, negative, fields = a1111_parameters(spec, 1, 64, 64, ModelStamp("m", "0123456789", 2)).split("\n")
    assert prompt == "a <lora:rex:0.7> dog, shiny"
    assert negative == "Negative prompt: blurry shiny"
    assert fields == (
        "Steps: 3, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64, Model hash: 0123456789, Model: m, "
        'Clip skip: 2, Lora hashes: "rex: abababababab", TI hashes: "shiny: cdcdcdcdcdcd", '
        f"Version: dreamcord {metadata.version('dreamcord')}"
    )


def test_the_model_hash_is_a1111s_short_hash_of_the_file_kept_per_data_folder(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"\x08" + bytes(range(256)) * 4000)
    expected = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:10]
    assert a1111_model_hash(str(checkpoint), tmp_path / "data") == expected
    assert expected in (tmp_path / "data" / "model-hashes.json").read_text()
    assert a1111_model_hash(str(tmp_path), tmp_path / "data") is None  # a diffusers folder: none
    checkpoint.write_bytes(b"changed")  # another size and time: hashed again
    assert a1111_model_hash(str(checkpoint), tmp_path / "data") == hashlib.sha256(b"changed").hexdigest()[:10]


def _read_by_sd_parsers(data: bytes, suffix: str, folder: Path) -> Any:
    path = folder / f"picture{suffix}"
    path.write_bytes(data)
    info = ParserManager().parse(str(path))
    assert info is not None, f"sd-parsers found nothing in the {suffix} file"
    (sampler,) = info.samplers
    return info, sampler


def test_an_independent_reader_gets_everything_back_from_a_png_a_grid_and_a_jpeg(
    runner: JobRunner, tmp_path: Path
) -> None:
    spec = ImagineSpec(
        model="tiny", prompt="a red circle", negative_prompt="blur", seeds=(40, 41, 42, 43),
        width=64, height=64, steps=2, guidance=6.5,
    )  # fmt: skip
    output = runner.run(spec)
    first = output.images[0].png
    jpeg, name = fit_to_limit(first, limit=len(first) // 3)
    assert name.endswith(".jpg")
    for data, suffix in ((first, ".png"), (grid_png([i.png for i in output.images]), ".png"), (jpeg, ".jpg")):
        info, sampler = _read_by_sd_parsers(data, suffix, tmp_path)
        assert sampler.name == "Euler a"
        assert sampler.parameters == {"cfg_scale": "6.5", "seed": "40", "steps": "2"}
        assert [p.value for p in sampler.prompts] == ["a red circle"]
        assert [p.value for p in sampler.negative_prompts] == ["blur"]
        assert sampler.model.name == "tiny"
        assert info.metadata["Size"] == "64x64"
