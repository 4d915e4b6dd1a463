"""Facts about a checkpoint read from its config files alone, without loading weights or torch.

The bot needs a model's native resolution to size a job, and its family to refuse what the family
cannot do, before any worker has loaded the model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from functools import cache
from pathlib import Path
from typing import Any

from generation.config import HUB_ID_PATTERN, ModelConfig
from generation.errors import ModelLoadError, ModelNotFoundError
from generation.models.family_facts import FAMILIES, FamilyFacts, family_named, family_of_pipeline_class
from generation.models.single_file import is_single_file, read_single_file, read_vae_file


def read_checkpoint_json(source: str, filename: str, subfolder: str = "") -> dict[str, Any]:
    """One JSON file of a checkpoint (a folder, or a hub id from the cache or the hub)."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        path = folder / subfolder / filename
    elif not HUB_ID_PATTERN.match(source) or source.startswith((".", "~")):  # the same rule as loading
        raise ModelNotFoundError(
            f"model folder {source!r} does not exist (give a folder or a hub id like owner/name)"
        )
    else:
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(source, filename, subfolder=subfolder or None))
        except Exception as error:  # offline and not cached, unknown repo, …: all "not found" to the user
            where = f"{subfolder}/{filename}" if subfolder else filename
            raise ModelNotFoundError(f"cannot read {where} of {source!r}: {error}") from None
    if not path.is_file():
        raise ModelNotFoundError(f"{path} does not exist: is {source!r} a diffusers model folder?")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _read_config(source: str, subfolder: str) -> dict[str, Any]:
    return read_checkpoint_json(source, "config.json", subfolder)


_FAMILIES_FOUND: dict[ModelConfig, FamilyFacts] = {}


def family_of(config: ModelConfig) -> FamilyFacts:
    """The model's family: the config's `family` if it names one, else the checkpoint's pipeline
    class (model_index.json; read once). A checkpoint of a family dreamcord does not run is refused
    by name."""
    if config.family:
        return family_named(config.family)
    if config in _FAMILIES_FOUND:
        return _FAMILIES_FOUND[config]
    if is_single_file(config.source):  # read from its tensors' names (a refusal says what it is)
        _FAMILIES_FOUND[config] = family_named(read_single_file(config.source).family)
        return _FAMILIES_FOUND[config]
    class_name = str(read_checkpoint_json(config.source, "model_index.json").get("_class_name", "?"))
    family = family_of_pipeline_class(class_name)
    if family is None:
        known = ", ".join(f"{f.label} ({', '.join(f.pipeline_classes)})" for f in FAMILIES.values())
        raise ModelLoadError(f"model {config.name!r} is a {class_name} checkpoint; dreamcord runs {known}")
    _FAMILIES_FOUND[config] = family
    return family


def known_family(config: ModelConfig) -> FamilyFacts | None:
    """The family if it is known without reading anything (named in the config, or read before):
    for the event loop, which must not wait on files or the hub."""
    return family_named(config.family) if config.family else _FAMILIES_FOUND.get(config)


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
    if side := family_of(config).native_side:  # a family whose configs do not say (Flux)
        return side
    if is_single_file(config.source):
        checkpoint = read_single_file(config.source)
        unet, vae = checkpoint.configs["unet"], checkpoint.configs["vae"]
    else:
        unet, vae = _read_config(config.source, "unet"), _read_config(config.source, "vae")
    if config.vae:
        vae = _vae_config(config)
    return resolution_of(unet, vae)


def _vae_config(config: ModelConfig) -> dict[str, Any]:
    """The config of the VAE a model's config names (a folder, a hub id or one file)."""
    assert config.vae
    if is_single_file(config.vae):
        return read_vae_file(config.vae, family_of(config).name)
    return read_checkpoint_json(config.vae, "config.json")


def operation_refusal(config: ModelConfig, family: FamilyFacts | None, needs: AbstractSet[str]) -> str | None:
    """One line refusing a job that needs `needs` of this model, or None when it can run: the
    family's operations, and training, which needs the weights where they stay (no offload)."""
    if family is not None and (unsupported := sorted(op for op in needs if not family.supports(op))):
        return family.refusal(unsupported[0], config.name)
    if "describe" in needs and config.describer is None:
        return f"model {config.name!r} has no describer configured, so it cannot /describe"
    if "image_prompt" in needs and config.ip_adapter is None:
        return (
            f"model {config.name!r} has no IP-Adapter configured, so it takes no image prompts "
            "(/blend, pictures on /imagine, --iw, --sref); the server's owner can add [models."
            f"{config.name}.ip_adapter]"
        )
    if needs & {"lora", "train", "image_prompt"} and config.fuse_qkv:
        return (
            f"model {config.name!r} runs with fused attention projections (fuse_qkv = true), which LoRAs "
            "cannot patch: use a model entry without it for LoRAs and training"
        )
    if "train" in needs and config.offload != "none":
        return (
            f"model {config.name!r} runs with offload = {config.offload!r}, which training does not "
            "support: train on a model entry without offload"
        )
    return None
