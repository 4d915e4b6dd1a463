"""Facts about a checkpoint read from its config files alone, without loading weights or torch.

The bot needs a model's native resolution to size a job before any worker has loaded the model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from generation.config import HUB_ID_PATTERN, ModelConfig
from generation.errors import ModelNotFoundError


def _read_config(source: str, subfolder: str) -> dict[str, Any]:
    folder = Path(source).expanduser()
    if folder.is_dir():
        path = folder / subfolder / "config.json"
    elif not HUB_ID_PATTERN.match(source) or source.startswith((".", "~")):  # the same rule as loading
        raise ModelNotFoundError(
            f"model folder {source!r} does not exist (give a folder or a hub id like owner/name)"
        )
    else:
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(source, "config.json", subfolder=subfolder))
        except Exception as error:  # offline and not cached, unknown repo, …: all "not found" to the user
            raise ModelNotFoundError(f"cannot read {subfolder}/config.json of {source!r}: {error}") from None
    if not path.is_file():
        raise ModelNotFoundError(f"{path} does not exist: is {source!r} a diffusers model folder?")
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return config


def resolution_of(unet: Mapping[str, Any], vae: Mapping[str, Any]) -> int:
    """The image side a UNet was trained at, from its and the VAE's config: the UNet's latent sample
    size times the VAE's downscale factor (each VAE block after the first halves the side)."""
    return int(unet["sample_size"]) * (1 << (len(vae["block_out_channels"]) - 1))


@cache
def native_resolution(config: ModelConfig) -> int:
    """The configured model's image side: `resolution` if set, else read from the checkpoint's
    config files (no weights loaded). A loaded model uses the same rule (generation.models.loading)."""
    if config.resolution:
        return config.resolution
    return resolution_of(_read_config(config.source, "unet"), _read_config(config.source, "vae"))
