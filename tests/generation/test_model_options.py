"""Per-model options that change the loaded weights: LoRAs fused at load (few-step LoRAs such as
LCM or Lightning), checked like an upload, with users' own LoRAs still loading on top; the model's own
precision, VAE tiling and offload (memory savers that must not change what a job makes)."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

from generation.config import FusedLora, ModelConfig
from generation.errors import ModelLoadError
from generation.models.adapters import AdapterCache
from generation.models.loading import LoadedModel, load_model
from generation.operations.imagine import run_imagine
from generation.specs import AdapterRef, ImagineSpec
from tests.conftest import pixels


def _random_lora(folder: Path, seed: int) -> Path:
    """A LoRA on the tiny UNet's attention with random, non-zero weights, as diffusers saves one."""
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from generation.models.tiny import build_tiny_unet

    torch.manual_seed(seed)
    unet = build_tiny_unet()
    unet.add_adapter(
        LoraConfig(
            r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"]
        )
    )
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=layers, safe_serialization=True)
    return folder / "pytorch_lora_weights.safetensors"


SPEC = ImagineSpec(
    model="tiny", prompt="a red circle", seeds=(3,), width=64, height=64, steps=3, guidance=7.0
)


def _render(model: LoadedModel) -> np.ndarray:
    return pixels(run_imagine(model, SPEC).images[0])


def test_a_fused_lora_changes_the_weights_and_weight_zero_changes_nothing(
    tiny_model: LoadedModel, tiny_config: ModelConfig, tmp_path: Path
) -> None:
    lora = _random_lora(tmp_path / "fast", seed=1)
    fused = load_model(dataclasses.replace(tiny_config, fuse_loras=(FusedLora(str(lora)),)), device="cpu")
    nothing = load_model(
        dataclasses.replace(tiny_config, fuse_loras=(FusedLora(str(lora), 0.0),)), device="cpu"
    )
    base = _render(tiny_model)
    assert np.abs(_render(fused) - base).mean() > 1
    np.testing.assert_array_equal(_render(nothing), base)
    assert not fused.pipeline.get_list_adapters()  # merged: no LoRA layers left to slow it down


def test_a_users_lora_still_loads_on_top_of_a_fused_one(tiny_config: ModelConfig, tmp_path: Path) -> None:
    fused = load_model(
        dataclasses.replace(tiny_config, fuse_loras=(FusedLora(str(_random_lora(tmp_path / "fast", 1))),)),
        device="cpu",
    )
    blob = _random_lora(tmp_path / "mine", seed=2).read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    cache = AdapterCache({digest: blob}.__getitem__)
    plain = _render(fused)
    mine = AdapterRef(name="mine", kind="lora", file=digest, trigger="a red circle")
    try:
        cache.activate(fused.pipeline, (mine,))
        assert np.abs(_render(fused) - plain).mean() > 1
        cache.activate(fused.pipeline, ())
        np.testing.assert_array_equal(_render(fused), plain)  # off again: the fused model as it was
    finally:
        cache.reset()


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("fast.ckpt", b"\x80\x04K\x01.", "pickle file"),
        ("fast.safetensors", b"not a safetensors file at all", "fuse_loras fast.safetensors"),
    ],
)
def test_a_fused_lora_gets_the_same_strict_check_as_an_upload(
    tiny_config: ModelConfig, tmp_path: Path, name: str, data: bytes, words: str
) -> None:
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ModelLoadError, match=words):
        load_model(
            dataclasses.replace(tiny_config, fuse_loras=(FusedLora(str(tmp_path / name)),)), device="cpu"
        )


def test_a_models_own_dtype_overrides_the_workers(tiny_config: ModelConfig) -> None:
    import torch

    model = load_model(dataclasses.replace(tiny_config, dtype="bfloat16"), device="cpu", dtype="float32")
    assert model.pipeline.unet.dtype == torch.bfloat16 and model.pipeline.text_encoder.dtype == torch.bfloat16
    assert run_imagine(model, SPEC).images[0].size == (64, 64)  # runs in that precision
    assert load_model(tiny_config, device="cpu", dtype="float32").pipeline.unet.dtype == torch.float32


def test_vae_tiling_decodes_in_tiles_with_the_same_picture_below_a_tile(
    tiny_model: LoadedModel, tiny_config: ModelConfig
) -> None:
    tiled = load_model(dataclasses.replace(tiny_config, vae_tiling=True), device="cpu")
    assert tiled.pipeline.vae.use_tiling and not tiny_model.pipeline.vae.use_tiling
    assert np.array_equal(_render(tiled), _render(tiny_model))  # a 64-px picture is one tile


def test_offload_is_off_on_the_cpu_and_changes_nothing(
    tiny_model: LoadedModel, tiny_config: ModelConfig, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="generation.models.loading"):
        offloaded = load_model(dataclasses.replace(tiny_config, offload="model"), device="cpu")
    assert "offload = 'model' works on CUDA only" in caplog.text
    assert offloaded.device.type == "cpu" and np.array_equal(_render(offloaded), _render(tiny_model))
