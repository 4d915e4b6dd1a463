"""Pipelines from single checkpoint files (models/single_file reads what a file is; this loads it).

SD 1.x/2.x and SDXL files hold a whole model and go through diffusers' `from_single_file` with the
configs and tokenizers they lack written beside them for the call. A Flux file holds the transformer
alone (models/flux_file): it joins the rest of its `base` model, whose own transformer is never read.
Nothing is fetched either way.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoPipelineForText2Image

from generation.config import ModelConfig
from generation.errors import ModelLoadError
from generation.models.checkpoint_facts import read_checkpoint_json
from generation.models.families import text2img_class
from generation.models.family_facts import FamilyFacts
from generation.models.flux_file import UnusualFluxFile, transformer_config
from generation.models.flux_weights import read_flux_transformer
from generation.models.single_file import SingleFileCheckpoint, read_single_file
from generation.models.sources import resolve_source

FLUX_TRANSFORMER = "FluxTransformer2DModel"


def load_file_pipeline(
    config: ModelConfig,
    checkpoint: SingleFileCheckpoint,
    family: FamilyFacts,
    dtype: torch.dtype,
    extra: dict[str, Any],
    *,
    offline: bool,
) -> Any:
    """The family's text-to-image pipeline for a checkpoint file."""
    if checkpoint.variant == "flux":
        return _flux_pipeline(config, checkpoint, dtype, extra, offline=offline)
    if config.base:
        raise ModelLoadError(
            f"model {config.name!r}: base = … is for a Flux transformer file; {checkpoint.path.name} "
            f"is a whole {family.label} checkpoint"
        )
    if not checkpoint.has_vae and "vae" not in extra:
        raise ModelLoadError(
            f"model {config.name!r}: {checkpoint.path.name} holds no VAE; name one with vae = … in its config"
        )
    with tempfile.TemporaryDirectory(prefix="dreamcord-configs-") as folder:
        checkpoint.write_config_folder(Path(folder))
        return text2img_class(family).from_single_file(
            str(checkpoint.path), config=folder, local_files_only=True, torch_dtype=dtype, **extra
        )


def flux_file_transformer(source: str, base_transformer_config: dict[str, Any], dtype: torch.dtype) -> Any:
    """The transformer of a Flux file (a model's own, or a Fill model's) for a base whose transformer
    has `base_transformer_config`: the base decides what the file's shapes do not (its rotary axes)."""
    checkpoint = read_single_file(source)
    if checkpoint.variant != "flux":
        raise ModelLoadError(
            f"{checkpoint.path.name} is a {checkpoint.variant} checkpoint, not a Flux transformer"
        )
    try:
        config = transformer_config(checkpoint.configs["transformer"], base_transformer_config)
    except UnusualFluxFile as reason:
        raise ModelLoadError(f"{checkpoint.path.name}: {reason}") from None
    return read_flux_transformer(checkpoint.path, config, dtype)


def _flux_pipeline(
    config: ModelConfig,
    checkpoint: SingleFileCheckpoint,
    dtype: torch.dtype,
    extra: dict[str, Any],
    *,
    offline: bool,
) -> Any:
    if not config.base:
        raise ModelLoadError(
            f"model {config.name!r}: {checkpoint.path.name} holds a Flux transformer alone; name the Flux "
            "model it was made from with base = … (a hub id such as black-forest-labs/FLUX.1-dev, or a "
            "diffusers folder), which supplies its text encoders, VAE and scheduler"
        )
    where, local_only = resolve_source(config.base, offline=offline)
    base_transformer = read_checkpoint_json(config.base, "config.json", "transformer")
    if base_transformer.get("_class_name") != FLUX_TRANSFORMER:
        raise ModelLoadError(
            f"model {config.name!r}: base {config.base!r} is not a Flux model (its transformer is "
            f"{base_transformer.get('_class_name', 'missing')})"
        )
    transformer = flux_file_transformer(str(checkpoint.path), base_transformer, dtype)
    return AutoPipelineForText2Image.from_pretrained(
        where, transformer=transformer, dtype=dtype, local_files_only=local_only, **extra
    )
