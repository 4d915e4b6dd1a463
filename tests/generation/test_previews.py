"""Progress previews by the model's `preview` setting: a fitted latent-to-RGB map by default (the
bundled model ships its own), the full VAE on request (exactly the final picture at the last step),
or a tiny decoder (AutoencoderTiny) named by folder."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny
from PIL import Image

from generation.config import ModelConfig
from generation.errors import ModelLoadError
from generation.models.loading import LoadedModel, load_model
from generation.models.previews import LATENT_RGB_FILE, LatentToRgb, VaeDecoder, fit_latent_rgb
from generation.operations.imagine import run_imagine
from generation.specs import ImagineSpec

PROMPTS = ("a red circle", "a blue square on a yellow background", "a green star", "a white triangle")


class Previews:
    """A progress sink that wants a preview at every step."""

    def __init__(self) -> None:
        self.pictures: list[Image.Image] = []

    def __call__(self, step: int, total: int) -> None:
        pass

    def preview_due(self) -> bool:
        return True

    def preview(self, png: bytes) -> None:
        with Image.open(io.BytesIO(png)) as picture:
            self.pictures.append(picture.convert("RGB"))


def _spec(model: LoadedModel, prompt: str, seed: int = 1, steps: int = 4) -> ImagineSpec:
    return ImagineSpec(
        model=model.config.name, prompt=prompt, seeds=(seed,), width=64, height=64, steps=steps, guidance=7.0
    )


def _latents(model: LoadedModel, prompt: str, seed: int) -> torch.Tensor:
    pipeline = model.pipeline
    output = pipeline(
        prompt, num_inference_steps=12, output_type="latent", width=64, height=64,
        generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    return output.images  # type: ignore[no-any-return]


def _distance(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean())


def test_the_bundled_model_ships_its_map_and_each_preview_resembles_its_own_picture(
    bundled_model: LoadedModel,
) -> None:
    decoder = bundled_model.preview_decoder()
    shipped = (Path(bundled_model.config.source) / LATENT_RGB_FILE).read_text(encoding="utf-8")
    assert decoder == LatentToRgb.from_json(shipped)
    full = VaeDecoder(bundled_model.pipeline.vae, bundled_model.pipeline.image_processor)
    latents = [_latents(bundled_model, prompt, seed) for seed, prompt in enumerate(PROMPTS)]
    for index, latent in enumerate(latents):
        preview = decoder(latent)
        assert preview.size == (64, 64)
        distances = [_distance(preview, full(other)) for other in latents]
        assert distances[index] == min(distances), (PROMPTS[index], distances)


def test_a_map_fitted_at_load_is_close_to_the_shipped_one(bundled_model: LoadedModel) -> None:
    """The generic fit (random colour blocks and fields) on the bundled VAE, for models that ship none."""
    fitted = fit_latent_rgb(bundled_model.pipeline.vae)
    full = VaeDecoder(bundled_model.pipeline.vae, bundled_model.pipeline.image_processor)
    latent = _latents(bundled_model, "a red circle", 0)
    grey = Image.new("RGB", (64, 64), (128, 128, 128))
    assert _distance(fitted(latent), full(latent)) < 0.8 * _distance(grey, full(latent))


def test_preview_vae_shows_the_final_picture_at_the_last_step(tiny_config: ModelConfig) -> None:
    exact = load_model(dataclasses.replace(tiny_config, preview="vae"), device="cpu")
    approximate = load_model(tiny_config, device="cpu")
    for model, equal in ((exact, True), (approximate, False)):
        sink = Previews()
        result = run_imagine(model, _spec(model, "a red circle"), on_step=sink)
        assert len(sink.pictures) == 4
        assert np.array_equal(np.asarray(sink.pictures[-1]), np.asarray(result.images[0])) == equal


def test_a_tiny_decoder_named_by_folder_decodes_the_previews(
    tiny_config: ModelConfig, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    tiny = AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8), latent_channels=4,
        num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1), upsampling_scaling_factor=4,
    )  # fmt: skip  # 64x where the model's VAE is 8x: the preview's size says which decoder ran
    tiny.save_pretrained(tmp_path / "taesd")
    model = load_model(dataclasses.replace(tiny_config, preview=str(tmp_path / "taesd")), device="cpu")
    assert isinstance(model.preview_decoder(), VaeDecoder) and model.preview_vae is not None
    sink = Previews()
    run_imagine(model, _spec(model, "a red circle", steps=2), on_step=sink)
    assert len(sink.pictures) == 2 and sink.pictures[0].size == (128, 128)  # 8 latent pixels x 64, shrunk


def test_a_preview_setting_that_names_nothing_fails_at_load_in_one_line(
    tiny_config: ModelConfig, tmp_path: Path
) -> None:
    with pytest.raises(
        ModelLoadError, match=r'preview = .* is not "approximate", "vae" or an AutoencoderTiny'
    ):
        load_model(dataclasses.replace(tiny_config, preview=str(tmp_path / "nothing")), device="cpu")
