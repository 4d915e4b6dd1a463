"""ControlNet: control maps (canny edges computed here, with OpenCV) and the ControlNet pipeline,
derived from the base model so the UNet, VAE and text encoder stay one copy in memory."""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np
from diffusers import AutoPipelineForText2Image, ControlNetModel
from PIL import Image

from generation.errors import ModelLoadError
from generation.models.loading import LoadedModel
from generation.models.sources import hub_offline, resolve_source
from generation.specs import ControlRef, check_control_mode

log = logging.getLogger(__name__)


def canny_map(image: Image.Image, low: int = 100, high: int = 200) -> Image.Image:
    """White edges on black, as canny ControlNets were trained on (3 channels)."""
    grey = np.asarray(image.convert("L"))
    edges = cv2.Canny(grey, low, high)
    return Image.fromarray(edges).convert("RGB")


def control_map(ref: ControlRef, picture: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The conditioning picture at the job's size: edges found at that size, or the map as given."""
    fitted = picture.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    if ref.mode == "canny" and not ref.preprocessed:
        return canny_map(fitted, ref.low_threshold, ref.high_threshold)
    return fitted


def control_pipeline(model: LoadedModel, mode: str) -> Any:
    """The ControlNet pipeline for `mode`, loading that ControlNet on first use (kept afterwards)."""
    check_control_mode(model.config.name, model.config.controlnets, mode)
    key = f"controlnet:{mode}"
    if key not in model.extras:
        model.extras[key] = _controlnet_pipeline(model, model.config.controlnets[mode])
    return model.extras[key]


def _controlnet_pipeline(model: LoadedModel, source: str) -> Any:
    where, local_only = resolve_source(source, offline=hub_offline(), marker="config.json")
    base = model.pipeline
    try:
        controlnet = ControlNetModel.from_pretrained(
            where, dtype=base.unet.dtype, local_files_only=local_only
        )
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"could not load ControlNet {source!r}: {error}") from error
    controlnet.to(model.device)
    if controlnet.config.cross_attention_dim != base.unet.config.cross_attention_dim:
        raise ModelLoadError(
            f"ControlNet {source!r} does not fit model {model.config.name!r} "
            f"(text width {controlnet.config.cross_attention_dim} vs {base.unet.config.cross_attention_dim})"
        )
    # The family's ControlNet pipeline (SD 1.x or SDXL), sharing the base model's weights.
    pipeline = AutoPipelineForText2Image.from_pipe(base, controlnet=controlnet)
    pipeline.set_progress_bar_config(disable=True)
    log.info("loaded ControlNet %s for %s", where, model.config.name)
    return pipeline
