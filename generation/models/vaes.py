"""The VAEs a model's settings name besides its checkpoint's own: a replacement (`vae = …`, a folder,
hub id or one original-layout file) and a tiny preview decoder (`preview = …`, an AutoencoderTiny)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, AutoencoderTiny

from generation.config import ModelConfig
from generation.errors import ModelLoadError, ModelNotFoundError, excerpt
from generation.models.family_facts import FamilyFacts
from generation.models.single_file import is_single_file, read_vae_file
from generation.models.sources import resolve_source


def load_preview_vae(config: ModelConfig, dtype: torch.dtype, offline: bool) -> AutoencoderTiny | None:
    """The tiny decoder `preview = …` names (folder or hub id), or None for "approximate" and "vae"."""
    if config.preview in ("approximate", "vae"):
        return None
    try:
        where, local_only = resolve_source(config.preview, offline=offline, marker="config.json")
        tiny: AutoencoderTiny = AutoencoderTiny.from_pretrained(
            where, dtype=dtype, local_files_only=local_only
        )
    except (OSError, ValueError, ModelNotFoundError) as error:
        raise ModelLoadError(
            f'model {config.name!r}: preview = {config.preview!r} is not "approximate", "vae" or an '
            f"AutoencoderTiny folder or hub id ({excerpt(str(error))})"
        ) from error
    return tiny


def load_vae(source: str, family: FamilyFacts, dtype: torch.dtype, offline: bool) -> AutoencoderKL:
    """The VAE a config names instead of the checkpoint's own (a folder or hub id with config.json, or
    one file in the original layout)."""
    if is_single_file(source):
        with tempfile.TemporaryDirectory(prefix="dreamcord-vae-") as folder:
            config = read_vae_file(source, family.name)
            (Path(folder) / "config.json").write_text(json.dumps(config), encoding="utf-8")
            from_file: AutoencoderKL = AutoencoderKL.from_single_file(
                str(Path(source).expanduser()), config=folder, local_files_only=True, torch_dtype=dtype
            )
            return from_file
    where, local_only = resolve_source(source, offline=offline, marker="config.json")
    vae: AutoencoderKL = AutoencoderKL.from_pretrained(where, dtype=dtype, local_files_only=local_only)
    return vae
