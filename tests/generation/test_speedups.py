"""Per-model fast paths: channels_last, fused attention projections and torch.compile give the
eager path's pictures within tolerance; fused projections refuse LoRAs and training in one line."""

from __future__ import annotations

import dataclasses

import pytest

from generation.config import ModelConfig
from generation.errors import SpecError
from generation.models.loading import LoadedModel, load_model
from generation.operations.imagine import run_imagine
from generation.pool.runner import JobRunner
from generation.specs import ImagineSpec
from tests.conftest import assert_images_close


def _spec(width: int = 64) -> ImagineSpec:
    return ImagineSpec(
        model="tiny", prompt="a red circle", seeds=(1, 2), width=width, height=64, steps=4, guidance=7.0
    )


def _same_pictures(model: LoadedModel, eager: LoadedModel, width: int = 64) -> None:
    for ours, theirs in zip(
        run_imagine(model, _spec(width)).images, run_imagine(eager, _spec(width)).images, strict=True
    ):
        assert_images_close(ours, theirs)


@pytest.mark.parametrize("option", ["channels_last", "fuse_qkv"])
def test_a_fast_path_keeps_the_pictures(
    option: str, tiny_config: ModelConfig, tiny_model: LoadedModel
) -> None:
    model = load_model(dataclasses.replace(tiny_config, **{option: True}), device="cpu")
    _same_pictures(model, tiny_model)


def test_fused_projections_refuse_loras_and_training(tiny_config: ModelConfig) -> None:
    model = load_model(dataclasses.replace(tiny_config, fuse_qkv=True), device="cpu")
    for operation in ("lora", "train"):
        with pytest.raises(SpecError, match="fuse_qkv = true"):
            model.require(operation)
    model.require("embedding")  # an embedding is a token, not a patch of the projections


@pytest.mark.slow
@pytest.mark.filterwarnings(
    "ignore:.*torch.jit.script_method.*:DeprecationWarning"
)  # inside torch's inductor
def test_a_compiled_model_keeps_the_pictures_across_sizes(
    tiny_config: ModelConfig, tiny_model: LoadedModel
) -> None:
    """Compiled by inductor on the CPU (a minute or two, once), warmed up before the first job."""
    runner = JobRunner({"tiny": dataclasses.replace(tiny_config, compile=True)}, device="cpu")
    runner.warm_up()
    model = runner.models.get("tiny")
    _same_pictures(model, tiny_model)
    _same_pictures(model, tiny_model, width=96)  # another aspect ratio: dynamic shapes, no failure
