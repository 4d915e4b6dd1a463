"""/train on SDXL (tiny random model in SDXL's layout): conditioned exactly as the SDXL pipeline
conditions at inference, and written in SDXL's diffusers formats, which plain diffusers loads with no
dreamcord code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline
from PIL import Image
from safetensors.torch import load

from generation.config import ModelConfig
from generation.models.loading import LoadedModel, load_model
from generation.models.tiny import save_tiny_sdxl_model
from generation.training.conditioning import encode_for_training, text_encoders
from generation.training.data import encode_images
from generation.training.loop import TrainedAdapter, train_adapter
from tests.generation.training.conftest import make_spec


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_sdxl_model(tmp_path_factory.mktemp("models") / "tiny-xl")


@pytest.fixture(scope="module")
def sdxl(sdxl_dir: Path) -> Iterator[LoadedModel]:
    yield load_model(ModelConfig(name="tiny", source=str(sdxl_dir), steps=2, guidance=7.0), device="cpu")


def _train(
    model: LoadedModel, photos: list[Image.Image], tmp_path: Path, method: str, **fields: object
) -> TrainedAdapter:
    spec = make_spec(photos, method, **fields)
    return train_adapter(
        model, spec, photos, checkpoint_path=tmp_path / "c.st", class_cache=tmp_path / "classes"
    )


def _plain(folder: Path) -> StableDiffusionXLPipeline:
    pipeline = StableDiffusionXLPipeline.from_pretrained(folder)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _render(pipeline: StableDiffusionXLPipeline, prompt: str) -> np.ndarray:
    output = pipeline(prompt, num_inference_steps=2, guidance_scale=1.0, height=64, width=64,
                      generator=torch.Generator("cpu").manual_seed(3), output_type="np")  # fmt: skip
    return output.images[0]


def test_training_conditions_the_unet_as_the_sdxl_pipeline_does(sdxl: LoadedModel) -> None:
    ours = encode_for_training(text_encoders(sdxl.pipeline), ["a photo of a red circle"])
    theirs, _, pooled, _ = sdxl.pipeline.encode_prompt(
        "a photo of a red circle", do_classifier_free_guidance=False
    )
    assert ours.pooled is not None
    torch.testing.assert_close(ours.hidden, theirs)
    torch.testing.assert_close(ours.pooled, pooled)
    arguments = ours.unet_arguments(64, torch.float32)
    assert arguments["added_cond_kwargs"]["time_ids"].tolist() == [[64, 64, 0, 0, 64, 64]]


@pytest.mark.parametrize("text_encoder", [False, True], ids=["unet", "unet+text-encoders"])
def test_an_sdxl_lora_loads_in_plain_diffusers_and_changes_the_output(
    text_encoder: bool, sdxl: LoadedModel, sdxl_dir: Path, photos: list[Image.Image], tmp_path: Path
) -> None:
    trained = _train(sdxl, photos, tmp_path, "lora", train_text_encoder=text_encoder)
    keys = set(load(trained.safetensors))
    assert any(key.startswith("unet.") for key in keys)
    assert any(key.startswith("text_encoder_2.") for key in keys) == text_encoder
    lora_file = tmp_path / "hexy.safetensors"
    lora_file.write_bytes(trained.safetensors)

    pipeline = _plain(sdxl_dir)  # from here on only diffusers
    base = _render(pipeline, "a sks shape")
    pipeline.load_lora_weights(str(lora_file), adapter_name="hexy")
    with_lora = _render(pipeline, "a sks shape")
    pipeline.set_adapters(["hexy"], [0.0])
    weight_zero = _render(pipeline, "a sks shape")
    assert np.abs(with_lora - base).max() > 1e-3
    np.testing.assert_array_equal(weight_zero, base)


def test_an_sdxl_embedding_holds_both_encoders_and_loads_in_plain_diffusers(
    sdxl: LoadedModel, sdxl_dir: Path, photos: list[Image.Image], tmp_path: Path
) -> None:
    trained = _train(sdxl, photos, tmp_path, "embedding", vectors=2)
    state = load(trained.safetensors)
    width_l = sdxl.pipeline.text_encoder.config.hidden_size
    width_g = sdxl.pipeline.text_encoder_2.config.hidden_size
    assert {k: tuple(v.shape) for k, v in state.items()} == {"clip_l": (2, width_l), "clip_g": (2, width_g)}

    pipeline = _plain(sdxl_dir)  # diffusers' documented way to load an SDXL embedding
    before = _render(pipeline, "a shape")
    pipeline.load_textual_inversion(state["clip_l"], token="<hexy>", text_encoder=pipeline.text_encoder,
                                    tokenizer=pipeline.tokenizer)  # fmt: skip
    pipeline.load_textual_inversion(state["clip_g"], token="<hexy>", text_encoder=pipeline.text_encoder_2,
                                    tokenizer=pipeline.tokenizer_2)  # fmt: skip
    np.testing.assert_array_equal(_render(pipeline, "a shape"), before)  # other prompts are untouched
    assert np.abs(_render(pipeline, "a <hexy>") - before).max() > 1e-3


def test_an_sdxl_lora_learns_its_photos(
    sdxl: LoadedModel, sdxl_dir: Path, photos: list[Image.Image], tmp_path: Path
) -> None:
    """The UNet predicts the noise on the photos better with the trained LoRA than without it, with
    the prompt conditioned by the pipeline itself: what was learnt is what a job will use."""
    trained = _train(sdxl, photos, tmp_path, "lora", steps=100, learning_rate=2e-2, class_images=0,
                     prior_preservation=False)  # fmt: skip
    (tmp_path / "hexy.safetensors").write_bytes(trained.safetensors)
    pipeline = _plain(sdxl_dir)
    latents = encode_images(sdxl, photos, flip=False).sample(
        torch.arange(len(photos)), torch.Generator().manual_seed(0)
    )

    def error() -> float:
        generator = torch.Generator().manual_seed(1)
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(100, 900, (len(photos),), generator=generator)
        noisy = pipeline.scheduler.add_noise(latents, noise, timesteps)
        hidden, _, pooled, _ = pipeline.encode_prompt(
            ["a sks shape"] * len(photos), do_classifier_free_guidance=False
        )
        time_ids = torch.tensor([[64.0, 64, 0, 0, 64, 64]]).repeat(len(photos), 1)
        with torch.no_grad():
            predicted = pipeline.unet(noisy, timesteps, encoder_hidden_states=hidden,
                                      added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample  # fmt: skip
        return float(torch.nn.functional.mse_loss(predicted, noise))

    before = error()
    pipeline.load_lora_weights(str(tmp_path / "hexy.safetensors"))
    assert error() < 0.95 * before  # measured: 1.20 -> 1.10 (a random UNet learns only so much)


def test_sdxl_tokens_trained_here_work_in_jobs(
    sdxl: LoadedModel, photos: list[Image.Image], tmp_path: Path
) -> None:
    """A trained SDXL LoRA and embedding load through the worker's adapter cache into jobs: each
    changes the picture, and weight 0 gives the picture without it."""
    import hashlib

    from generation.models.adapters import AdapterCache
    from generation.operations.imagine import run_imagine
    from generation.specs import AdapterRef, ImagineSpec

    blobs = [_train(sdxl, photos, tmp_path / m, m, steps=3).safetensors for m in ("lora", "embedding")]
    files = {hashlib.sha256(blob).hexdigest(): blob for blob in blobs}
    lora, embedding = (AdapterRef(name=f"tok{i}", kind=kind, file=digest, trigger="sks shape" if kind == "lora" else "")
                       for i, (digest, kind) in enumerate(zip(files, ("lora", "embedding"), strict=True)))  # fmt: skip
    cache = AdapterCache(files.__getitem__)

    def picture(prompt: str, *adapters: AdapterRef) -> np.ndarray:
        spec = ImagineSpec(model="tiny", prompt=prompt, seeds=(5,), width=64, height=64, steps=2, guidance=7.0,
                           adapters=adapters)  # fmt: skip
        cache.activate(sdxl.pipeline, spec.adapters)
        return np.asarray(run_imagine(sdxl, spec).images[0], dtype=np.int16)

    try:
        base = picture("a sks shape")
        assert np.abs(picture("a <tok0>", lora) - base).max() > 0
        np.testing.assert_array_equal(picture("a <tok0>", lora.model_copy(update={"weight": 0.0})), base)
        assert np.abs(picture("a <tok1>", embedding) - picture("a shape")).max() > 0
    finally:
        cache.reset()


def test_an_sdxl_lora_in_kohyas_format_gives_the_same_pictures(
    sdxl: LoadedModel, photos: list[Image.Image], tmp_path: Path
) -> None:
    """kohya's sd-scripts name SDXL UNet modules by LDM blocks (`lora_unet_input_blocks_4_1_…`) and
    the encoders `lora_te1_`/`lora_te2_`: the same LoRA in that form loads and draws the same."""
    import hashlib

    from safetensors.torch import save

    from generation.models.adapter_files import inspect_adapter_file
    from generation.models.adapters import AdapterCache
    from generation.operations.imagine import run_imagine
    from generation.specs import AdapterRef, ImagineSpec
    from tests.conftest import assert_images_close
    from tests.generation.original_layout import kohya_sdxl_lora

    ours = _train(sdxl, photos, tmp_path, "lora", steps=3, train_text_encoder=True).safetensors
    kohya = save(kohya_sdxl_lora(load(ours), sdxl.pipeline.unet))
    assert inspect_adapter_file(kohya).kind == "lora"
    files = {hashlib.sha256(blob).hexdigest(): blob for blob in (ours, kohya)}
    cache = AdapterCache(files.__getitem__)
    pictures = []
    try:
        for digest in files:
            ref = AdapterRef(name="hexy", kind="lora", file=digest, trigger="sks shape")
            spec = ImagineSpec(model="tiny", prompt="a <hexy>", seeds=(5,), width=64, height=64, steps=2,
                               guidance=7.0, adapters=(ref,))  # fmt: skip
            cache.activate(sdxl.pipeline, spec.adapters)
            pictures.append(run_imagine(sdxl, spec).images[0])
        cache.activate(sdxl.pipeline, ())
        plain = run_imagine(sdxl, spec.model_copy(update={"adapters": (), "prompt": "a sks shape"})).images[0]
    finally:
        cache.reset()
    assert_images_close(pictures[1], pictures[0])
    assert np.abs(np.asarray(pictures[0], dtype=np.int16) - np.asarray(plain, dtype=np.int16)).max() > 0
