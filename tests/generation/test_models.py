from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline

from generation.config import ModelConfig
from generation.errors import ModelLoadError, ModelNotFoundError
from generation.models.loading import LoadedModel, ModelCache, choose_device, choose_dtype, load_model
from generation.models.tiny import build_tiny_pipeline
from generation.vocab import build_clip_tokenizer


def test_saved_tiny_model_loads_bitwise_identical(tiny_model: LoadedModel) -> None:
    fresh = build_tiny_pipeline(seed=0)
    for name in ("unet", "vae", "text_encoder"):
        saved = dict(getattr(tiny_model.pipeline, name).state_dict())
        built = getattr(fresh, name).state_dict()
        assert saved.keys() == built.keys()
        assert all(torch.equal(saved[key], built[key]) for key in built), name


def test_native_resolution_is_read_from_the_checkpoint(tiny_model: LoadedModel) -> None:
    assert tiny_model.resolution == 64  # UNet sample_size 8 x VAE downscale 8


def test_derived_pipelines_share_the_base_weights(tiny_model: LoadedModel) -> None:
    base = tiny_model.pipeline
    img2img = tiny_model.derive(StableDiffusionImg2ImgPipeline)
    inpaint = tiny_model.derive(StableDiffusionInpaintPipeline)
    for pipeline in (img2img, inpaint):
        for name in ("unet", "vae", "text_encoder"):
            ours, theirs = getattr(base, name), getattr(pipeline, name)
            assert all(
                a.data_ptr() == b.data_ptr()
                for a, b in zip(ours.parameters(), theirs.parameters(), strict=True)
            ), name
    assert tiny_model.derive(StableDiffusionImg2ImgPipeline) is img2img  # cached, not rebuilt


def test_missing_folder_is_a_clear_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model(ModelConfig(name="gone", source=str(tmp_path / "nope")))


def test_a_file_that_is_no_checkpoint_is_refused_in_one_line(tmp_path: Path) -> None:
    from generation.models.checkpoint_facts import native_resolution

    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"{}")
    for load in (lambda c: load_model(c), native_resolution):
        with pytest.raises(ModelLoadError, match=r"model\.safetensors is not a safetensors file"):
            load(ModelConfig(name="file", source=str(checkpoint)))
    with pytest.raises(ModelNotFoundError, match=r"model file .*gone\.safetensors does not exist"):
        load_model(ModelConfig(name="gone", source=str(tmp_path / "gone.safetensors")))


def test_folder_without_model_index_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"model_index\.json"):
        load_model(ModelConfig(name="empty", source=str(tmp_path)))


def test_uncached_hub_id_fails_fast_offline() -> None:
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="offline"):
        load_model(ModelConfig(name="sd", source="nobody-here/no-such-model"), offline=True)
    assert time.perf_counter() - started < 10


def test_tokenizer_that_does_not_match_the_text_encoder_is_refused(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    shutil.rmtree(broken / "tokenizer")
    build_clip_tokenizer(["only", "three", "words", "extra"]).save_pretrained(broken / "tokenizer")
    with pytest.raises(ModelLoadError, match="tokenizer has"):
        load_model(ModelConfig(name="broken", source=str(broken)))


def test_safety_checker_on_without_one_in_the_checkpoint_fails_loudly(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="safety_checker"):
        load_model(ModelConfig(name="tiny", source=str(tiny_model_dir), safety_checker=True))


def test_cpu_defaults_to_float32_and_overrides_are_honoured(tiny_config: ModelConfig) -> None:
    assert choose_dtype(torch.device("cpu")) == torch.float32
    assert choose_dtype(torch.device("cuda"), "float16") == torch.float16
    assert choose_device("cpu") == torch.device("cpu")
    model = load_model(tiny_config, device="cpu", dtype="bfloat16")
    assert model.pipeline.unet.dtype == torch.bfloat16


@pytest.mark.parametrize(("capability", "warned"), [("AVX2", True), ("AVX512", False)])
def test_half_precision_on_a_cpu_without_its_kernels_is_warned_about(
    capability: str, warned: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    with caplog.at_level(logging.WARNING, logger="generation.models.loading"):
        assert choose_dtype(torch.device("cpu"), "bfloat16") == torch.bfloat16
        choose_dtype(torch.device("cpu"), "float32")
        choose_dtype(torch.device("cuda"), "float16")
    warnings = [record.getMessage() for record in caplog.records]
    assert warnings == (["bfloat16 on this CPU (AVX2, no AVX-512) runs convolutions hundreds of times slower than float32 (measured: 600x); set dtype = \"float32\" for CPU work on this machine"] if warned else [])  # fmt: skip


@pytest.mark.parametrize(("device", "dtype"), [("tpu", "auto"), ("cpu", "float8")])
def test_unknown_device_or_dtype_is_refused(tiny_config: ModelConfig, device: str, dtype: str) -> None:
    with pytest.raises(ModelLoadError, match="must be one of"):
        load_model(tiny_config, device=device, dtype=dtype)


def test_model_cache_keeps_one_base_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    other = shutil.copytree(tiny_model_dir, tmp_path / "other")
    configs = {
        "a": ModelConfig(name="a", source=str(tiny_model_dir)),
        "b": ModelConfig(name="b", source=str(other)),
    }
    cache = ModelCache(configs, device="cpu")
    first = cache.get("a")
    assert cache.get("a") is first
    second = cache.get("b")
    assert second.config.name == "b" and cache.get("b") is second
    with pytest.raises(ModelNotFoundError, match="configured models: a, b"):
        cache.get("c")


def test_switching_families_frees_the_first_model_before_loading_the_second(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc
    import weakref

    from generation.models import loading
    from generation.models.tiny_flux import save_tiny_flux_model

    configs = {
        "sd": ModelConfig(name="sd", source=str(tiny_model_dir)),
        "flux": ModelConfig(name="flux", source=str(save_tiny_flux_model(tmp_path / "flux")), resolution=64),
    }
    cache = ModelCache(configs, device="cpu")
    first = weakref.ref(cache.get("sd").pipeline.unet)
    alive_while_loading: list[bool] = []
    real_load = loading.load_model

    def load_and_look(config: ModelConfig, **options: object) -> LoadedModel:
        gc.collect()
        alive_while_loading.append(first() is not None)  # one model in memory: the old one is gone
        return real_load(config, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(loading, "load_model", load_and_look)
    assert cache.get("flux").family.name == "flux"
    assert alive_while_loading == [False]


def test_scheduler_config_is_the_checkpoints_own(tiny_model: LoadedModel, tiny_model_dir: Path) -> None:
    saved = json.loads((tiny_model_dir / "scheduler" / "scheduler_config.json").read_text())
    assert tiny_model.scheduler_config["beta_schedule"] == saved["beta_schedule"] == "scaled_linear"


def test_native_resolution_is_read_without_loading_weights(
    tiny_config: ModelConfig, tiny_model: LoadedModel
) -> None:
    from generation.models.checkpoint_facts import native_resolution

    assert native_resolution(tiny_config) == tiny_model.resolution == 64
    assert native_resolution(ModelConfig(name="x", source="/nowhere", resolution=512)) == 512
