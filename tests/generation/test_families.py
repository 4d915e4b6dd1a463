"""The model family is the seam: an SDXL checkpoint (two text encoders, pooled embeddings, the
`text_time` UNet) is recognised before its weights load and runs every operation its family
supports through the same code as SD 1.x; what it does not support yet is refused in one line."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generation.config import ModelConfig
from generation.errors import ModelLoadError, SpecError
from generation.models.checkpoint_facts import family_of, native_resolution
from generation.models.family_facts import FamilyFacts
from generation.models.loading import LoadedModel, load_model
from generation.models.tiny import save_tiny_sdxl_model
from generation.operations.imagine import run_imagine
from generation.operations.inpaint import run_outpaint, seam_margin
from generation.operations.masks import box_mask
from generation.operations.outpaint import canvas_and_mask
from generation.operations.vary import run_vary
from generation.pool.runner import JobRunner
from generation.specs import ImagineSpec, RegionBox, TrainSpec, VarySpec, outpaint_spec
from tests.conftest import assert_images_close, pixels

MODEL = "tiny-xl"
SOURCE_HASH = "0" * 64


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_sdxl_model(tmp_path_factory.mktemp("models") / "tiny-xl")


@pytest.fixture(scope="module")
def sdxl_config(sdxl_dir: Path) -> ModelConfig:
    return ModelConfig(name=MODEL, source=str(sdxl_dir), steps=4, guidance=7.0)


@pytest.fixture(scope="module")
def sdxl(sdxl_config: ModelConfig) -> Iterator[LoadedModel]:
    yield load_model(sdxl_config, device="cpu")


def _imagine(seeds: tuple[int, ...], **changes: object) -> ImagineSpec:
    spec = ImagineSpec(
        model=MODEL, prompt="a red circle", seeds=seeds, width=64, height=64, steps=3, guidance=7.0
    )
    return spec.model_copy(update=changes)


def test_an_sdxl_folder_is_recognised_before_its_weights_load(
    sdxl: LoadedModel, sdxl_config: ModelConfig
) -> None:
    assert family_of(sdxl_config).name == "sdxl"  # from model_index.json alone: what the bot reads
    assert native_resolution(sdxl_config) == 64
    assert sdxl.family.name == "sdxl" and type(sdxl.pipeline).__name__ == "StableDiffusionXLPipeline"
    assert (
        sdxl.pipeline.text_encoder_2 is not None and sdxl.pipeline.tokenizer_2 is not None
    )  # nothing dropped


def test_sdxl_grid_images_equal_single_runs_and_repeat_exactly(sdxl: LoadedModel) -> None:
    grid = run_imagine(sdxl, _imagine((5, 6, 7, 8)))
    assert [image.size for image in grid.images] == [(64, 64)] * 4
    assert len({image.tobytes() for image in grid.images}) == 4
    again = run_imagine(sdxl, _imagine((5, 6, 7, 8)))
    assert [image.tobytes() for image in again.images] == [image.tobytes() for image in grid.images]
    for index, seed in enumerate((5, 6, 7, 8)):
        assert_images_close(run_imagine(sdxl, _imagine((seed,))).images[0], grid.images[index])


def test_sdxl_prompts_and_negative_prompts_steer_the_picture(sdxl: LoadedModel) -> None:
    plain = run_imagine(sdxl, _imagine((3,))).images[0]
    other = run_imagine(sdxl, _imagine((3,), prompt="a blue square")).images[0]
    negative = run_imagine(sdxl, _imagine((3,), negative_prompt="red")).images[0]
    assert np.abs(pixels(plain) - pixels(other)).mean() > 1
    assert np.abs(pixels(plain) - pixels(negative)).mean() > 1


def test_sdxl_task_pipelines_share_the_base_weights(sdxl: LoadedModel) -> None:
    for task in ("img2img", "inpaint"):
        pipeline = sdxl.task(task)
        assert type(pipeline).__name__.startswith("StableDiffusionXL")
        for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
            ours, theirs = getattr(sdxl.pipeline, name), getattr(pipeline, name)
            assert all(
                a.data_ptr() == b.data_ptr()
                for a, b in zip(ours.parameters(), theirs.parameters(), strict=True)
            ), (task, name)
        assert sdxl.task(task) is pipeline  # made once


@pytest.fixture(scope="module")
def source(sdxl: LoadedModel) -> Image.Image:
    return run_imagine(sdxl, _imagine((1,), steps=4)).images[0]


def _vary(**changes: object) -> VarySpec:
    spec = VarySpec(
        model=MODEL, prompt="a red circle", seeds=(10, 11), width=64, height=64, steps=8, guidance=7.0,
        source=SOURCE_HASH, strength=0.6,
    )  # fmt: skip
    return spec.model_copy(update=changes)


def test_sdxl_variations_redo_the_last_steps_and_repeat_exactly(
    sdxl: LoadedModel, source: Image.Image
) -> None:
    steps: list[tuple[int, int]] = []
    first = run_vary(sdxl, _vary(strength=0.35, steps=10), source, on_step=lambda s, t: steps.append((s, t)))
    second = run_vary(sdxl, _vary(strength=0.35, steps=10), source)
    assert [image.size for image in first.images] == [(64, 64)] * 2
    assert [image.tobytes() for image in first.images] == [image.tobytes() for image in second.images]
    assert steps[-1] == (3, 3)  # 10 steps at strength 0.35: only the last 3 are redone, from the source
    stronger = run_vary(sdxl, _vary(strength=0.9, steps=10), source)
    assert all(a.tobytes() != b.tobytes() for a, b in zip(first.images, stronger.images, strict=True))


def test_sdxl_region_vary_keeps_every_pixel_outside_the_region(
    sdxl: LoadedModel, source: Image.Image
) -> None:
    box = RegionBox(left=0.5, top=0.25, right=1.0, bottom=0.75)
    result = run_vary(sdxl, _vary(strength=1.0, box=box), source)
    mask = box_mask(source.size, box)
    from generation.operations.masks import grow

    kept = np.asarray(grow(mask, 2 * seam_margin(sdxl))) == 0
    inside = np.asarray(mask) == 255
    assert kept.mean() > 0.2
    for image in result.images:
        change = np.abs(pixels(image) - pixels(source)).max(axis=2)
        assert change[kept].max() == 0
        assert change[inside].mean() > 10


def test_sdxl_outpaint_keeps_the_source_and_fills_the_new_area(
    sdxl: LoadedModel, source: Image.Image
) -> None:
    big = source.resize((128, 128))
    spec = outpaint_spec(_imagine((1,), steps=8), SOURCE_HASH, big.size, "pan-left", 64)
    images = run_outpaint(sdxl, spec, big).images
    start, mask = canvas_and_mask(spec, big)
    from generation.operations.masks import grow

    kept = np.asarray(grow(mask, 2 * seam_margin(sdxl))) == 0
    new = np.asarray(mask) == 255
    for image in images:
        assert image.size == (spec.width, spec.height)
        assert np.abs(pixels(image) - pixels(start))[kept].max() == 0
        assert pixels(image)[new].std(axis=0).mean() > 5


def test_what_a_family_cannot_do_is_refused_in_one_line(sdxl: LoadedModel, sdxl_config: ModelConfig) -> None:
    still = FamilyFacts("still", "Still", (), frozenset({"imagine", "upscale"}))  # a family with less
    limited = dataclasses.replace(sdxl, family=still)
    with pytest.raises(
        SpecError, match=f"model '{MODEL}' \\(Still\\) cannot do training personal tokens yet"
    ):
        limited.require("train")
    sdxl.require("train")  # SDXL trains
    runner = JobRunner({MODEL: sdxl_config}, device="cpu")
    runner.models._current = limited  # the model loaded above, not a second copy
    training = TrainSpec(
        model=MODEL, token="my-dog", class_noun="dog", method="lora", images=("d" * 64,) * 4,
        resolution=64, steps=10, learning_rate=1e-4,
    )  # fmt: skip
    with pytest.raises(SpecError, match="cannot do training personal tokens yet"):
        runner.run(training)  # refused before any photo is looked for


def _embedding_file(**tensors: object) -> bytes:
    from safetensors.torch import save

    return save(tensors)  # type: ignore[arg-type]


def test_an_sdxl_embedding_loads_into_both_text_encoders_and_its_weight_counts(sdxl: LoadedModel) -> None:
    import hashlib

    import torch

    from generation.models.adapter_files import inspect_adapter_file
    from generation.models.adapters import AdapterCache, embedding_token
    from generation.specs import AdapterRef

    torch.manual_seed(3)
    sdxl_blob = _embedding_file(clip_l=torch.randn(2, 32), clip_g=torch.randn(2, 32))
    sd1_blob = _embedding_file(emb_params=torch.randn(1, 32))
    assert inspect_adapter_file(sdxl_blob, "style.safetensors").kind == "embedding"
    files = {hashlib.sha256(blob).hexdigest(): blob for blob in (sdxl_blob, sd1_blob)}
    digest, sd1_digest = list(files)
    cache = AdapterCache(files.__getitem__)
    style = AdapterRef(name="my-style", kind="embedding", file=digest)

    def render(weight: float | None) -> np.ndarray:
        refs = () if weight is None else (style.model_copy(update={"weight": weight}),)
        spec = _imagine((4,), prompt="a <my-style> circle" if refs else "a circle", adapters=refs)
        cache.activate(sdxl.pipeline, spec.adapters)
        return pixels(run_imagine(sdxl, spec).images[0])

    try:
        full, half, again = render(1.0), render(0.3), render(1.0)
        full_vocab = {id(t): t.get_vocab() for t in (sdxl.pipeline.tokenizer, sdxl.pipeline.tokenizer_2)}
        assert len(sdxl.pipeline.tokenizer) == len(sdxl.pipeline.tokenizer_2)  # the same tokens in both
        np.testing.assert_array_equal(again, full)
        assert np.abs(full - half).mean() > 1
        assert np.abs(full - render(None)).mean() > 1
        with pytest.raises(SpecError, match=r"does not fit .*made for a one-encoder model"):
            cache.activate(sdxl.pipeline, (AdapterRef(name="old", kind="embedding", file=sd1_digest),))
    finally:
        cache.reset()
    token = embedding_token(digest)
    for tokenizer in (sdxl.pipeline.tokenizer, sdxl.pipeline.tokenizer_2):  # unloaded from both again
        assert token in full_vocab[id(tokenizer)] and token not in tokenizer.get_vocab()


def test_a_family_the_config_names_must_match_the_checkpoint(tiny_model_dir: Path) -> None:
    with pytest.raises(
        ModelLoadError, match=r"says family = 'sdxl', but its checkpoint is a StableDiffusionPipeline"
    ):
        load_model(ModelConfig(name="tiny", source=str(tiny_model_dir), family="sdxl"), device="cpu")


def test_a_checkpoint_of_an_unknown_family_is_refused_by_its_class(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    other = shutil.copytree(tiny_model_dir, tmp_path / "sd3")
    index = json.loads((other / "model_index.json").read_text())
    (other / "model_index.json").write_text(json.dumps({**index, "_class_name": "StableDiffusion3Pipeline"}))
    config = ModelConfig(name="sd3", source=str(other))
    for load in (family_of, lambda c: load_model(c, device="cpu")):
        with pytest.raises(
            ModelLoadError, match=r"is a StableDiffusion3Pipeline checkpoint.*Flux \(FluxPipeline\)"
        ):
            load(config)


def _sdxl_lora(tmp_path: Path) -> bytes:
    """A LoRA on the tiny SDXL UNet's attention, with random (non-zero) weights, saved as diffusers
    saves SDXL LoRAs."""
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from generation.models.tiny import build_tiny_sdxl_pipeline

    unet = build_tiny_sdxl_pipeline(seed=0).unet
    unet.add_adapter(
        LoraConfig(
            r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"]
        )
    )
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionXLPipeline.save_lora_weights(tmp_path, unet_lora_layers=layers, safe_serialization=True)
    return (tmp_path / "pytorch_lora_weights.safetensors").read_bytes()


def test_an_sdxl_lora_changes_the_picture_and_weight_zero_restores_it(
    sdxl: LoadedModel, tmp_path: Path
) -> None:
    import hashlib

    from generation.models.adapters import AdapterCache
    from generation.specs import AdapterRef

    blob = _sdxl_lora(tmp_path)
    digest = hashlib.sha256(blob).hexdigest()
    cache = AdapterCache({digest: blob}.__getitem__)
    lora = AdapterRef(name="my-style", kind="lora", file=digest, trigger="a red circle")

    def render(*adapters: AdapterRef) -> np.ndarray:
        spec = _imagine((4,), adapters=adapters)
        cache.activate(sdxl.pipeline, spec.adapters)
        return pixels(run_imagine(sdxl, spec).images[0])

    try:
        base = render()
        with_lora = render(lora)
        weight_zero = render(lora.model_copy(update={"weight": 0.0}))
        after = render()
    finally:
        cache.reset()
    assert np.abs(with_lora - base).mean() > 1
    np.testing.assert_array_equal(weight_zero, base)
    np.testing.assert_array_equal(after, base)


def test_a_configured_vae_replaces_the_checkpoints_own(tiny_model_dir: Path, tmp_path: Path) -> None:
    import dataclasses

    import torch

    from generation.models.tiny import build_tiny_vae

    torch.manual_seed(7)
    build_tiny_vae().save_pretrained(tmp_path / "vae")
    base_config = ModelConfig(name="tiny", source=str(tiny_model_dir), steps=3)
    config = dataclasses.replace(base_config, vae=str(tmp_path / "vae"))
    assert native_resolution(config) == 64  # read from the override's config
    model, base = load_model(config, device="cpu"), load_model(base_config, device="cpu")
    saved = dict(load_model(config, device="cpu").pipeline.vae.state_dict())
    from diffusers import AutoencoderKL

    expected = AutoencoderKL.from_pretrained(tmp_path / "vae").state_dict()
    assert all(torch.equal(saved[key], expected[key]) for key in expected)
    spec = ImagineSpec(
        model="tiny", prompt="a red circle", seeds=(2,), width=64, height=64, steps=3, guidance=7.0
    )
    assert (
        np.abs(pixels(run_imagine(model, spec).images[0]) - pixels(run_imagine(base, spec).images[0])).mean()
        > 1
    )


def test_clip_skip_counts_as_a1111_does(tiny_model_dir: Path) -> None:
    import dataclasses

    base_config = ModelConfig(name="tiny", source=str(tiny_model_dir), steps=3)
    spec = ImagineSpec(
        model="tiny", prompt="a red circle", seeds=(2,), width=64, height=64, steps=3, guidance=7.0
    )

    def render(clip_skip: int | None) -> np.ndarray:
        model = load_model(dataclasses.replace(base_config, clip_skip=clip_skip), device="cpu")
        return pixels(run_imagine(model, spec).images[0])

    plain = render(None)
    np.testing.assert_array_equal(render(1), plain)  # 1: the last layer, as without the key
    assert np.abs(render(2) - plain).mean() > 1  # 2: the penultimate layer


def test_an_sdxl_controlnet_steers_the_picture_and_scale_zero_gives_the_plain_one(
    sdxl_config: ModelConfig, tmp_path: Path
) -> None:
    import dataclasses

    from generation.models.tiny import save_tiny_controlnet
    from generation.specs import ControlRef
    from tests.generation.test_control import square_picture

    controlnet = save_tiny_controlnet(tmp_path / "canny-xl", sdxl=True)
    model = load_model(dataclasses.replace(sdxl_config, controlnets={"canny": str(controlnet)}), device="cpu")
    on = ControlRef(image="c" * 64)
    plain = run_imagine(model, _imagine((1, 2))).images
    left = run_imagine(model, _imagine((1, 2), control=on), control_image=square_picture(4)).images
    right = run_imagine(model, _imagine((1, 2), control=on), control_image=square_picture(36)).images
    assert type(model.extras["controlnet:canny"]).__name__ == "StableDiffusionXLControlNetPipeline"
    for a, b, c in zip(left, right, plain, strict=True):
        assert np.abs(pixels(a) - pixels(b)).mean() > 2  # where the edges are moves the picture
        assert np.abs(pixels(a) - pixels(c)).mean() > 2
    off = run_imagine(
        model, _imagine((1, 2), control=on.model_copy(update={"scale": 0.0})), control_image=square_picture(4)
    )
    for a, c in zip(off.images, plain, strict=True):
        assert_images_close(a, c)


def test_clip_skip_keeps_every_vector_of_a_multi_vector_embedding(tiny_model_dir: Path) -> None:
    import torch

    from generation.models.families import PromptRequest, encode_prompt

    model = load_model(ModelConfig(name="tiny", source=str(tiny_model_dir), clip_skip=2), device="cpu")
    model.pipeline.load_textual_inversion(torch.randn(2, 32), token="dc-two")
    request = PromptRequest("a dc-two", None, 1, guided=False, clip_skip=2)
    before = encode_prompt(model.family, model.pipeline, request)["prompt_embeds"]
    table = model.pipeline.text_encoder.get_input_embeddings().weight
    with torch.no_grad():  # change only the second vector: the prompt must have used it
        table[model.pipeline.tokenizer.convert_tokens_to_ids("dc-two_1")] += torch.randn(
            32
        )  # not uniform: LayerNorm would undo that
    after = encode_prompt(model.family, model.pipeline, request)["prompt_embeds"]
    assert (after - before).abs().max() > 1e-3
