"""ControlNet: canny maps computed locally, and a tiny ControlNet (made from the tiny UNet) that
changes the picture with its control image and adds nothing at conditioning scale 0."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from generation.config import ModelConfig
from generation.errors import SpecError
from generation.models.loading import LoadedModel, load_model
from generation.operations.control import canny_map
from generation.operations.imagine import run_imagine
from generation.specs import ControlRef, ImagineSpec
from tests.conftest import assert_images_close, pixels

CONTROL_HASH = "c" * 64


@pytest.fixture(scope="module")
def controlled(tiny_controlnet_dir: Path, tiny_config: ModelConfig) -> LoadedModel:
    config = dataclasses.replace(tiny_config, controlnets={"canny": str(tiny_controlnet_dir)})
    return load_model(config, device="cpu")


def square_picture(left: int, size: int = 64) -> Image.Image:
    picture = Image.new("RGB", (size, size), (20, 20, 20))
    ImageDraw.Draw(picture).rectangle((left, 16, left + 24, 40), fill=(230, 230, 230))
    return picture


def spec(control: ControlRef | None = None) -> ImagineSpec:
    return ImagineSpec(
        model="tiny",
        prompt="a square",
        seeds=(1, 2),
        width=64,
        height=64,
        steps=4,
        guidance=7.0,
        control=control,
    )


def test_canny_map_outlines_the_shape_in_white_on_black() -> None:
    edges = pixels(canny_map(square_picture(16)))[..., 0]
    assert set(np.unique(edges)) == {0, 255}
    assert edges[16:41, 15:18].any() and edges[16:41, 39:42].any()  # the left and right sides
    assert not edges[22:36, 22:36].any() and not edges[50:, :].any()  # nothing inside or far away


def test_the_control_image_changes_the_picture_and_scale_zero_gives_the_plain_one(
    controlled: LoadedModel,
) -> None:
    plain = run_imagine(controlled, spec()).images
    left = run_imagine(
        controlled, spec(ControlRef(image=CONTROL_HASH)), control_image=square_picture(4)
    ).images
    right = run_imagine(
        controlled, spec(ControlRef(image=CONTROL_HASH)), control_image=square_picture(36)
    ).images
    for a, b in zip(left, right, strict=True):
        assert np.abs(pixels(a) - pixels(b)).mean() > 2  # where the edges are moves the picture
    for a, b in zip(left, plain, strict=True):
        assert np.abs(pixels(a) - pixels(b)).mean() > 2
    off = ControlRef(image=CONTROL_HASH, scale=0.0)
    for a, b in zip(
        run_imagine(controlled, spec(off), control_image=square_picture(4)).images, plain, strict=True
    ):
        assert_images_close(a, b)


def test_a_mode_without_a_configured_controlnet_is_a_clear_error(controlled: LoadedModel) -> None:
    depth = ControlRef(image=CONTROL_HASH, mode="depth")
    with pytest.raises(SpecError, match="no depth ControlNet configured \\(configured: canny\\)"):
        run_imagine(controlled, spec(depth), control_image=square_picture(4))


def test_the_controlnet_shares_the_base_models_weights(controlled: LoadedModel) -> None:
    from generation.operations.control import control_pipeline

    pipeline = control_pipeline(controlled, "canny")
    assert pipeline.unet is controlled.pipeline.unet and pipeline.vae is controlled.pipeline.vae
    assert control_pipeline(controlled, "canny") is pipeline  # loaded once


def test_a_preprocessed_map_is_used_as_given(tmp_path: Path) -> None:
    from generation.operations.control import control_map

    edges = Image.new("RGB", (32, 32), (0, 0, 0))
    edges.putpixel((5, 5), (255, 255, 255))
    ref = ControlRef(image=CONTROL_HASH, preprocessed=True)
    assert control_map(ref, edges, (32, 32)).tobytes() == edges.tobytes()
