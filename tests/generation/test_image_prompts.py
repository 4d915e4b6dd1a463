"""Image prompts through the model's IP-Adapter, on the tiny model with a random adapter in h94's
layout: --iw 0 is exactly no image prompt, the pictures steer the result, the adapter leaves no trace
in later jobs (plain or img2img), a grid's picture i is the single run with seed i, /blend's several
pictures and --sref's style layers each change the result, and a model without one refuses."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from generation.config import IpAdapterConfig, ModelConfig
from generation.errors import DreamcordError, SpecError
from generation.models.image_prompts import ProjectionKind, fresh_adapter_state, loaded_adapter_state
from generation.models.loading import load_model
from generation.models.tiny import TINY_IP_ADAPTER_FILE, save_tiny_ip_adapter
from generation.pool.runner import JobRunner
from generation.prompt import parse_prompt
from generation.specs import ImagineSpec, imagine_spec, vary_spec
from tests.conftest import assert_images_close


@pytest.fixture(scope="module")
def adapted(tiny_config: ModelConfig, tmp_path_factory: pytest.TempPathFactory) -> ModelConfig:
    unet = load_model(tiny_config, device="cpu").pipeline.unet
    folder = save_tiny_ip_adapter(tmp_path_factory.mktemp("ip-adapter"), unet)
    settings = IpAdapterConfig(source=str(folder), weight_name=TINY_IP_ADAPTER_FILE, scale=1.0)
    return replace(tiny_config, ip_adapter=settings)


@pytest.fixture(scope="module")
def runner(adapted: ModelConfig, tmp_path_factory: pytest.TempPathFactory) -> JobRunner:
    return JobRunner({"tiny": adapted}, device="cpu", data_dir=tmp_path_factory.mktemp("data"))


def _store(runner: JobRunner, colour: tuple[int, int, int], shape: str = "box") -> str:
    image = Image.new("RGB", (64, 64), (240, 240, 240))
    pixels = np.asarray(image).copy()
    if shape == "box":
        pixels[16:48, 16:48] = colour
    else:
        pixels[:, 24:40] = colour
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    assert runner.files is not None
    return runner.files.put(buffer.getvalue())


def _spec(runner: JobRunner, text: str, pictures: tuple[str, ...] = (), count: int = 4) -> ImagineSpec:
    config = runner.models.configs["tiny"]
    return imagine_spec(
        parse_prompt(text, pictures=bool(pictures)), config, 64, count=count, pictures=pictures
    )


def _pixels(runner: JobRunner, spec: ImagineSpec) -> list[np.ndarray]:
    return [np.asarray(image.image(), dtype=np.int16) for image in runner.run(spec).images]


def test_iw_0_is_exactly_no_image_prompt_and_iw_1_steers(runner: JobRunner) -> None:
    red = _store(runner, (220, 20, 20))
    plain = _pixels(runner, _spec(runner, "a photo of a cat --seed 3 --steps 3"))
    zero = _pixels(runner, _spec(runner, "a photo of a cat --seed 3 --steps 3 --iw 0", (red,)))
    assert all(np.array_equal(a, b) for a, b in zip(plain, zero, strict=True))
    steered = _pixels(runner, _spec(runner, "a photo of a cat --seed 3 --steps 3", (red,)))
    assert min(np.abs(a - b).mean() for a, b in zip(plain, steered, strict=True)) > 1.0
    again = _pixels(runner, _spec(runner, "a photo of a cat --seed 3 --steps 3", (red,)))
    assert all(np.array_equal(a, b) for a, b in zip(steered, again, strict=True))  # deterministic
    other = _pixels(
        runner, _spec(runner, "a photo of a cat --seed 3 --steps 3", (_store(runner, (20, 20, 220), "bar"),))
    )
    assert np.abs(steered[0] - other[0]).mean() > 0.5  # the picture itself matters


def test_the_adapter_leaves_no_trace_in_later_jobs(runner: JobRunner, tiny_config: ModelConfig) -> None:
    plain_spec = _spec(runner, "a photo of a dog --seed 8 --steps 3", count=1)
    before = _pixels(runner, plain_spec)
    _pixels(runner, _spec(runner, "a photo of a dog --seed 8 --steps 3", (_store(runner, (10, 200, 10)),)))
    assert np.array_equal(before[0], _pixels(runner, plain_spec)[0])
    assert runner.models.get("tiny").pipeline.unet.encoder_hid_proj is None
    source = _store(runner, (120, 60, 200))
    varied = runner.run(vary_spec(plain_spec, source, (64, 64), 64, 0.6, seed=2))  # img2img shares the UNet
    assert len(varied.images) == 4


def test_a_grid_picture_equals_its_single_run_with_an_image_prompt(runner: JobRunner) -> None:
    red = _store(runner, (220, 20, 20))
    grid = runner.run(_spec(runner, "a photo of a cat --seed 11 --steps 3 --iw 1.5", (red,))).images
    single = runner.run(
        _spec(runner, "a photo of a cat --seed 13 --steps 3 --iw 1.5", (red,), count=1)
    ).images
    assert_images_close(grid[2].image(), single[0].image())


def test_a_blend_of_two_and_a_style_reference_each_change_the_result(runner: JobRunner) -> None:
    red, blue = _store(runner, (220, 20, 20)), _store(runner, (20, 20, 220), "bar")
    one = _pixels(runner, _spec(runner, "--seed 5 --steps 3", (red,), count=1))[0]
    both = _pixels(runner, _spec(runner, "--seed 5 --steps 3", (red, blue), count=1))[0]
    assert np.abs(one - both).mean() > 0.5
    style = _pixels(runner, _spec(runner, "--seed 5 --steps 3 --sref", (red,), count=1))[0]
    assert np.abs(one - style).mean() > 0.5  # only the up blocks listen (the sd1 family's style layers)
    spec = _spec(runner, "--seed 5 --steps 3", (red, blue), count=1)
    assert spec.prompt == "" and spec.title() == "blend of 2 pictures, --iw 1"


@pytest.mark.parametrize(
    ("kind", "loaded_as"),
    [("full", "IPAdapterFullImageProjection"), ("plus", "IPAdapterPlusImageProjection")],
)
def test_adapters_reading_patches_steer_and_save_back_as_they_were_loaded(
    tiny_config: ModelConfig, tmp_path: Path, kind: ProjectionKind, loaded_as: str
) -> None:
    pipeline = load_model(tiny_config, device="cpu").pipeline
    folder = save_tiny_ip_adapter(tmp_path / kind, pipeline.unet, kind=kind)
    pipeline.load_ip_adapter(str(folder), subfolder="", weight_name=TINY_IP_ADAPTER_FILE)
    projection = pipeline.unet.encoder_hid_proj.image_projection_layers[0]
    assert type(projection).__name__ == loaded_as
    saved = load_file(folder / TINY_IP_ADAPTER_FILE)
    again = loaded_adapter_state(pipeline.unet)
    assert again.keys() == saved.keys()
    assert all(torch.equal(again[key], saved[key]) for key in saved)
    settings = IpAdapterConfig(source=str(folder), weight_name=TINY_IP_ADAPTER_FILE, scale=1.0)
    runner = JobRunner({"tiny": replace(tiny_config, ip_adapter=settings)}, device="cpu", data_dir=tmp_path)
    red, blue = _store(runner, (220, 20, 20)), _store(runner, (20, 20, 220), "bar")
    plain = _pixels(runner, _spec(runner, "a cat --seed 5 --steps 3", count=1))[0]
    reds = _pixels(runner, _spec(runner, "a cat --seed 5 --steps 3", (red,), count=1))[0]
    blues = _pixels(runner, _spec(runner, "a cat --seed 5 --steps 3", (blue,), count=1))[0]
    assert np.abs(plain - reds).mean() > 1.0 and np.abs(reds - blues).mean() > 0.5


def test_a_plus_resampler_wider_than_the_unet_loads_at_its_own_width(
    tiny_config: ModelConfig,
) -> None:
    pipeline = load_model(tiny_config, device="cpu").pipeline
    cross = pipeline.unet.config.cross_attention_dim
    state = fresh_adapter_state(pipeline.unet, 16, 5, seed=0, kind="plus", resampler_width=4 * cross)
    pipeline.load_ip_adapter(state, subfolder=None, weight_name=None, image_encoder_folder=None)
    projection = pipeline.unet.encoder_hid_proj.image_projection_layers[0]
    assert projection.latents.shape == (1, 5, 4 * cross)  # its queries, as wide as asked
    assert projection.layers[0].attn.heads == max(4 * cross // 64, 1)  # heads of 64, as the loader counts
    tokens = projection(torch.randn(2, 9, 16))  # nine hidden states of a 16-wide encoder
    assert tokens.shape == (2, 5, cross)  # what the UNet's attention reads
    flat = {f"{part}.{key}": value for part, tensors in state.items() for key, value in tensors.items()}
    again = loaded_adapter_state(pipeline.unet)
    assert again.keys() == flat.keys() and all(torch.equal(again[key], flat[key]) for key in flat)


def test_a_model_without_an_adapter_refuses_image_prompts(tiny_config: ModelConfig, tmp_path: Path) -> None:
    runner = JobRunner({"tiny": tiny_config}, device="cpu", data_dir=tmp_path)
    red = _store(runner, (220, 20, 20))
    with pytest.raises(SpecError, match="has no IP-Adapter configured"):
        runner.run(_spec(runner, "a cat --seed 1 --steps 2", (red,)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a cat --iw 9", "--iw got '9'"),
        ("a cat --iw 1", "--iw needs a picture"),
        ("a cat --sref", "--sref needs a picture"),
        ("a cat --sref strong", "--sref takes no value"),
    ],
)
def test_image_prompt_flags_are_checked(tiny_config: ModelConfig, text: str, message: str) -> None:
    with pytest.raises(DreamcordError, match=message):
        imagine_spec(parse_prompt(text), tiny_config, 64)


def test_an_sdxl_model_takes_image_prompts_and_style_references(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from generation.models.tiny import save_tiny_sdxl_model

    folder = save_tiny_sdxl_model(tmp_path_factory.mktemp("models") / "tiny-xl")
    config = ModelConfig(name="tiny", source=str(folder), steps=3, guidance=7.0)
    unet = load_model(config, device="cpu").pipeline.unet
    adapter = save_tiny_ip_adapter(tmp_path_factory.mktemp("ip-xl"), unet)
    config = replace(
        config, ip_adapter=IpAdapterConfig(source=str(adapter), weight_name=TINY_IP_ADAPTER_FILE, scale=1.0)
    )
    runner = JobRunner({"tiny": config}, device="cpu", data_dir=tmp_path_factory.mktemp("data-xl"))
    red = _store(runner, (220, 20, 20))
    plain = _pixels(runner, _spec(runner, "a photo of a cat --seed 3", count=1))[0]
    zero = _pixels(runner, _spec(runner, "a photo of a cat --seed 3 --iw 0", (red,), count=1))[0]
    steered = _pixels(runner, _spec(runner, "a photo of a cat --seed 3", (red,), count=1))[0]
    style = _pixels(runner, _spec(runner, "a photo of a cat --seed 3 --sref", (red,), count=1))[0]
    assert np.array_equal(plain, zero)
    assert np.abs(plain - steered).mean() > 0.5 and np.abs(steered - style).mean() > 0.5
