"""Flux through the family seam (tiny random Flux: transformer, CLIP + T5, 16-channel VAE): every
operation the family supports runs through the same code as SD 1.x and SDXL; the rest is refused
in one line (negative prompts, tiling, embeddings, ControlNet, training)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generation.config import ModelConfig
from generation.errors import SpecError
from generation.models.checkpoint_facts import family_of, native_resolution, operation_refusal
from generation.models.loading import LoadedModel, load_model
from generation.models.tiny_flux import save_tiny_flux_model
from generation.operations.imagine import run_imagine
from generation.operations.inpaint import seam_margin
from generation.operations.masks import box_mask, grow
from generation.operations.vary import run_vary
from generation.specs import ImagineSpec, RegionBox, VarySpec
from tests.conftest import assert_images_close, pixels

MODEL = "tiny-flux"
SOURCE_HASH = "0" * 64


@pytest.fixture(scope="module")
def flux_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_flux_model(tmp_path_factory.mktemp("models") / "tiny-flux")


@pytest.fixture(scope="module")
def flux_config(flux_dir: Path) -> ModelConfig:
    return ModelConfig(name=MODEL, source=str(flux_dir), steps=4, guidance=3.5, resolution=64)


@pytest.fixture(scope="module")
def flux(flux_config: ModelConfig) -> Iterator[LoadedModel]:
    yield load_model(flux_config, device="cpu")


def _imagine(seeds: tuple[int, ...], **changes: object) -> ImagineSpec:
    spec = ImagineSpec(
        model=MODEL, prompt="a red circle", seeds=seeds, width=64, height=64, steps=3, guidance=3.5
    )
    return spec.model_copy(update=changes)


def test_a_flux_folder_is_recognised_before_its_weights_load(flux: LoadedModel, flux_dir: Path) -> None:
    assert family_of(ModelConfig(name="f", source=str(flux_dir))).name == "flux"
    assert native_resolution(ModelConfig(name="f2", source=str(flux_dir))) == 1024  # FluxPipeline's default
    assert flux.family.name == "flux" and type(flux.pipeline).__name__ == "FluxPipeline"


def test_flux_grid_images_equal_single_runs_and_repeat_exactly(flux: LoadedModel) -> None:
    grid = run_imagine(flux, _imagine((5, 6, 7, 8)))
    assert [image.size for image in grid.images] == [(64, 64)] * 4
    assert len({image.tobytes() for image in grid.images}) == 4
    again = run_imagine(flux, _imagine((5, 6, 7, 8)))
    assert [image.tobytes() for image in again.images] == [image.tobytes() for image in grid.images]
    for index, seed in enumerate((5, 6, 7, 8)):
        assert_images_close(run_imagine(flux, _imagine((seed,))).images[0], grid.images[index])


def test_flux_prompt_and_guidance_steer_the_picture(flux: LoadedModel) -> None:
    plain = pixels(run_imagine(flux, _imagine((3,))).images[0])
    assert (
        np.abs(plain - pixels(run_imagine(flux, _imagine((3,), prompt="a blue square")).images[0])).mean()
        > 0.1
    )
    assert np.abs(plain - pixels(run_imagine(flux, _imagine((3,), guidance=8.0)).images[0])).mean() > 0.1


def test_flux_previews_decode_its_packed_latents(flux: LoadedModel) -> None:
    previews: list[bytes] = []

    class Sink:
        def __call__(self, step: int, total: int) -> None:
            pass

        def preview_due(self) -> bool:
            return True

        def preview(self, png: bytes) -> None:
            previews.append(png)

    run_imagine(flux, _imagine((1,), width=96, height=64), on_step=Sink())
    assert len(previews) == 3
    with Image.open(io.BytesIO(previews[-1])) as picture:
        assert picture.size == (96, 64)  # unpacked to the picture's own shape


def test_flux_task_pipelines_share_the_base_weights(flux: LoadedModel) -> None:
    for task in ("img2img", "inpaint"):
        pipeline = flux.task(task)
        assert type(pipeline).__name__.startswith("Flux")
        for name in ("transformer", "vae", "text_encoder", "text_encoder_2"):
            ours, theirs = getattr(flux.pipeline, name), getattr(pipeline, name)
            assert all(
                a.data_ptr() == b.data_ptr()
                for a, b in zip(ours.parameters(), theirs.parameters(), strict=True)
            )


@pytest.fixture(scope="module")
def source(flux: LoadedModel) -> Image.Image:
    return run_imagine(flux, _imagine((1,), steps=4)).images[0]


def _vary(**changes: object) -> VarySpec:
    spec = VarySpec(model=MODEL, prompt="a red circle", seeds=(10, 11), width=64, height=64, steps=8, guidance=3.5,
                    source=SOURCE_HASH, strength=0.6)  # fmt: skip
    return spec.model_copy(update=changes)


def test_flux_variations_follow_strength_and_repeat_exactly(flux: LoadedModel, source: Image.Image) -> None:
    weak = run_vary(flux, _vary(strength=0.3), source)
    assert [image.size for image in weak.images] == [(64, 64)] * 2
    assert [i.tobytes() for i in run_vary(flux, _vary(strength=0.3), source).images] == [
        i.tobytes() for i in weak.images
    ]
    strong = run_vary(flux, _vary(strength=0.9), source)
    change = [np.abs(pixels(r.images[0]) - pixels(source)).mean() for r in (weak, strong)]
    assert 0 < change[0] < change[1]


def test_flux_region_vary_keeps_every_pixel_outside_the_region(
    flux: LoadedModel, source: Image.Image
) -> None:
    box = RegionBox(left=0.5, top=0.25, right=1.0, bottom=0.75)
    result = run_vary(flux, _vary(strength=1.0, box=box), source)
    kept = np.asarray(grow(box_mask(source.size, box), 2 * seam_margin(flux))) == 0
    inside = np.asarray(box_mask(source.size, box)) == 255
    for image in result.images:
        change = np.abs(pixels(image) - pixels(source)).max(axis=2)
        assert change[kept].max() == 0 and change[inside].mean() > 5


def test_flux_outpaint_and_upscale_keep_their_sizes(flux: LoadedModel, source: Image.Image) -> None:
    from generation.operations.inpaint import run_outpaint
    from generation.operations.upscale import run_upscale
    from generation.specs import outpaint_spec, upscale_spec

    spec = outpaint_spec(_imagine((1,), steps=4), SOURCE_HASH, source.size, "pan-left", 64)
    assert all(image.size == (spec.width, spec.height) for image in run_outpaint(flux, spec, source).images)
    upscale = upscale_spec(_imagine((1,), steps=4), SOURCE_HASH, source.size, 2, "subtle", 64)
    assert run_upscale(flux, upscale, source).images[0].size == (128, 128)


def test_a_flux_lora_changes_the_picture_and_weight_zero_restores_it(
    flux: LoadedModel, tmp_path: Path
) -> None:
    import torch
    from diffusers import FluxPipeline
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    from generation.models.adapters import AdapterCache
    from generation.specs import AdapterRef

    transformer = type(flux.pipeline.transformer).from_config(flux.pipeline.transformer.config)
    torch.manual_seed(3)
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                       target_modules=["to_q", "to_k", "to_v"]), transformer)  # fmt: skip
    FluxPipeline.save_lora_weights(tmp_path, transformer_lora_layers=get_peft_model_state_dict(transformer))
    blob = (tmp_path / "pytorch_lora_weights.safetensors").read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    cache = AdapterCache({digest: blob}.__getitem__)
    ref = AdapterRef(name="style", kind="lora", file=digest, trigger="")
    try:
        cache.activate(flux.pipeline, ())
        base = pixels(run_imagine(flux, _imagine((2,))).images[0])
        cache.activate(flux.pipeline, (ref,))
        with_lora = pixels(run_imagine(flux, _imagine((2,), adapters=(ref,))).images[0])
        off = (ref.model_copy(update={"weight": 0.0}),)
        cache.activate(flux.pipeline, off)
        weight_zero = pixels(run_imagine(flux, _imagine((2,), adapters=off)).images[0])
    finally:
        cache.reset()
    assert np.abs(with_lora - base).max() > 0
    np.testing.assert_array_equal(weight_zero, base)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"negative_prompt": "blur"}, "negative prompts"),
        ({"tile": True}, "seamless tiling"),
    ],
)
def test_what_flux_cannot_do_is_refused_in_one_line(
    flux: LoadedModel, flux_config: ModelConfig, changes: dict[str, object], words: str
) -> None:
    spec = _imagine((1,), **changes)
    refusal = operation_refusal(flux_config, flux.family, spec.needs())
    assert (
        refusal == f"model '{MODEL}' (Flux) cannot do {words}{refusal.split(words)[1]}" and "yet" in refusal
    )
    for operation in ("embedding", "control", "train"):
        with pytest.raises(SpecError, match=r"\(Flux\) cannot do"):
            flux.require(operation)


def test_a_configured_flux_fill_model_paints_regions_with_the_shared_encoders(
    flux_config: ModelConfig, source: Image.Image, tmp_path: Path
) -> None:
    import dataclasses

    from generation.models.tiny_flux import save_tiny_flux_fill_model

    filled = load_model(dataclasses.replace(flux_config, fill=str(save_tiny_flux_fill_model(tmp_path / "fill"))),
                        device="cpu")  # fmt: skip
    box = RegionBox(left=0.5, top=0.25, right=1.0, bottom=0.75)
    result = run_vary(filled, _vary(strength=1.0, box=box), source)
    fill = filled.extras["fill"]
    assert type(fill).__name__ == "FluxFillPipeline" and fill.transformer.config.in_channels == 384
    for name in ("vae", "text_encoder", "text_encoder_2"):
        assert getattr(fill, name) is getattr(filled.pipeline, name)  # one copy of the shared parts
    kept = np.asarray(grow(box_mask(source.size, box), 2 * seam_margin(filled))) == 0
    without_fill = run_vary(load_model(flux_config, device="cpu"), _vary(strength=1.0, box=box), source)
    for image, plain in zip(result.images, without_fill.images, strict=True):
        assert np.abs(pixels(image) - pixels(source)).max(axis=2)[kept].max() == 0
        assert np.abs(pixels(image) - pixels(plain)).mean() > 0.5  # drawn by the Fill transformer


def test_fill_is_refused_for_models_that_are_not_flux(tiny_config: ModelConfig, tmp_path: Path) -> None:
    import dataclasses

    from generation.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match=r"fill = … is for Flux models, and this is SD 1.x/2.x"):
        load_model(dataclasses.replace(tiny_config, fill=str(tmp_path)), device="cpu")
