"""Single-file checkpoints: one `.safetensors` in the original (LDM/A1111) key layout, as A1111,
ComfyUI and model sites distribute them.

What such a file is (family, channels, depths, text-encoder widths) is read from its header alone, as
ComfyUI does, so pruned or unusually sized files load too and the bot can size jobs without torch.
Loading goes through diffusers' `from_single_file` with a config folder written from the standard
configs shipped in `original_configs/` (JSON and tokenizer files, no weights), adjusted to the shapes
found: nothing is fetched. Only safetensors are read; a pickle (`.ckpt`) is refused, never opened.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from generation.config import SINGLE_FILE_SUFFIXES
from generation.errors import ModelLoadError, ModelNotFoundError
from generation.models.adapter_files import AdapterFileError, head_of_file, read_header
from generation.models.flux_file import UnusualFluxFile, count_blocks, flux_shape_config, is_flux

ORIGINAL_CONFIGS = Path(__file__).with_name("original_configs")
CLIP_VOCABULARY = 49408  # the shipped tokenizer's; a file whose text encoder has another cannot use it
NATIVE_SIDE = {"sd1": 512, "sd2": 768, "sdxl": 1024}  # trained at (the UNet's sample size x 8)
SD2_TEXT_LAYERS = 24  # OpenCLIP-H; SD 2.x uses the penultimate layer, so diffusers keeps 23
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")

UNET = "model.diffusion_model."
VAE = "first_stage_model."
SD1_CLIP = "cond_stage_model.transformer.text_model."
SD2_OPEN_CLIP = "cond_stage_model.model."
SDXL_CLIP = "conditioner.embedders.0.transformer.text_model."
SDXL_OPEN_CLIP = "conditioner.embedders.1.model."
SDXL_REFINER_OPEN_CLIP = "conditioner.embedders.0.model."

Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class SingleFileCheckpoint:
    """What one checkpoint file holds, and the diffusers configs that describe it."""

    path: Path
    variant: str  # which shipped configs describe it: "sd1", "sd2" or "sdxl"; or "flux" (models/flux_file)
    # By diffusers subfolder, adjusted to the file's shapes (Flux: the transformer entries its shapes
    # decide, the rest coming from the model's `base`).
    configs: dict[str, dict[str, Any]] = field(hash=False)
    has_vae: bool = True

    @property
    def family(self) -> str:
        """Its generation.models.family_facts name (SD 2.x runs as the SD 1.x/2.x family)."""
        return "sd1" if self.variant == "sd2" else self.variant

    @property
    def resolution(self) -> int:
        """The image side it was trained at (the UNet's latent size times the VAE's downscale)."""
        levels = len(self.configs["vae"]["block_out_channels"])
        return int(self.configs["unet"]["sample_size"]) * (1 << (levels - 1))

    def write_config_folder(self, folder: Path) -> Path:
        """A diffusers folder without weights for `from_single_file(config=folder)`: the family's
        shipped configs with the shapes of this file, and CLIP's tokenizer files."""
        shutil.copytree(ORIGINAL_CONFIGS / self.variant, folder, dirs_exist_ok=True)
        for subfolder, config in self.configs.items():
            name = "scheduler_config.json" if subfolder == "scheduler" else "config.json"
            (folder / subfolder / name).write_text(json.dumps(config, indent=2), encoding="utf-8")
        for tokenizer in folder.glob("tokenizer*"):
            for name in ("vocab.json", "merges.txt"):
                shutil.copyfile(ORIGINAL_CONFIGS / "clip_tokenizer" / name, tokenizer / name)
        return folder


def is_single_file(source: str) -> bool:
    """Whether a configured `source` names one file rather than a folder or a hub id."""
    path = Path(source).expanduser()
    return path.is_file() or path.suffix.lower() in SINGLE_FILE_SUFFIXES


def read_single_file(source: str) -> SingleFileCheckpoint:
    """Inspect a checkpoint file from its header (no weights read), or raise one line saying why it
    cannot be loaded."""
    path = Path(source).expanduser().resolve()
    if not path.is_file():
        raise ModelNotFoundError(f"model file {source} does not exist")
    stat = path.stat()
    return _read(path, stat.st_size, stat.st_mtime_ns)


@cache
def _read(path: Path, size: int, mtime_ns: int) -> SingleFileCheckpoint:  # cached per file version
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelLoadError(
            f"{path.name} is a pickle checkpoint, which can run code when loaded: dreamcord loads only "
            ".safetensors files (most model sites offer one; or convert it once where you trust it)"
        )
    shapes = _tensor_shapes(path, size)
    try:
        return _inspect(path, shapes)
    except KeyError as missing:
        raise ModelLoadError(f"{path.name} lacks tensor {missing}: a damaged or unusual checkpoint") from None
    except (_Unusual, UnusualFluxFile) as reason:
        raise ModelLoadError(f"{path.name}: {reason}") from None


class _Unusual(Exception):
    """Why a file cannot load, as a clause after its name."""


def _inspect(path: Path, shapes: Shapes) -> SingleFileCheckpoint:
    variant = _variant(shapes)
    if variant == "flux":  # the transformer alone (the rest comes from the model's `base`)
        return SingleFileCheckpoint(path, variant, {"transformer": flux_shape_config(shapes)}, has_vae=False)
    configs = {"unet": _unet_config(variant, shapes)}
    has_vae = f"{VAE}decoder.conv_in.weight" in shapes
    configs["vae"] = _vae_config(variant, shapes) if has_vae else _template(variant, "vae")
    if variant == "sd1":
        configs["text_encoder"] = _clip_config(variant, "text_encoder", shapes, SD1_CLIP)
    elif variant == "sd2":
        configs["text_encoder"] = _open_clip_config(variant, "text_encoder", shapes, SD2_OPEN_CLIP)
    else:
        configs["text_encoder"] = _clip_config(variant, "text_encoder", shapes, SDXL_CLIP)
        configs["text_encoder_2"] = _open_clip_config(variant, "text_encoder_2", shapes, SDXL_OPEN_CLIP)
        pooled = configs["text_encoder_2"]["projection_dim"]
        added = shapes[f"{UNET}label_emb.0.0.weight"][1]  # pooled text + six size/crop numbers' features
        configs["unet"]["projection_class_embeddings_input_dim"] = added
        configs["unet"]["addition_time_embed_dim"] = (added - pooled) // 6
    factor = 1 << (len(configs["vae"]["block_out_channels"]) - 1)
    configs["unet"]["sample_size"] = NATIVE_SIDE[variant] // factor
    configs["vae"]["sample_size"] = NATIVE_SIDE[variant]
    scheduler = _template(variant, "scheduler", "scheduler_config.json")
    if "v_pred" in shapes:  # the marker v-prediction fine-tunes carry (ComfyUI's convention)
        scheduler["prediction_type"] = "v_prediction"
    configs["scheduler"] = scheduler
    return SingleFileCheckpoint(path=path, variant=variant, configs=configs, has_vae=has_vae)


def _tensor_shapes(path: Path, size: int) -> Shapes:
    try:
        tensors, _ = read_header(head_of_file(path), size)
    except AdapterFileError as error:
        raise ModelLoadError(f"{path.name} is {error}") from None
    return {tensor.name: tensor.shape for tensor in tensors}


def _variant(shapes: Shapes) -> str:
    """Which shipped configs fit (the key names say), or a one-line refusal naming what the file is."""
    keys = shapes.keys()

    def has(prefix: str) -> bool:
        return any(key.startswith(prefix) for key in keys)

    if is_flux(keys):
        return "flux"
    if any("joint_blocks." in key for key in keys):
        found = "a Stable Diffusion 3 checkpoint"
    elif not has(UNET):
        found = "not a whole checkpoint (no UNet in the original layout: a LoRA, a VAE or a part?)"
    elif has(SDXL_REFINER_OPEN_CLIP):
        found = "an SDXL refiner, which only refines SDXL pictures"
    elif shapes.get(f"{UNET}input_blocks.0.0.weight", (0, 4))[1] != 4:
        found = "an inpainting or other special-purpose checkpoint (its UNet does not take plain latents)"
    elif has(SDXL_OPEN_CLIP) and has(SDXL_CLIP) and f"{UNET}label_emb.0.0.weight" in shapes:
        return "sdxl"
    elif has(SD1_CLIP):
        return "sd1"
    elif has(SD2_OPEN_CLIP):
        layers = count_blocks(shapes, re.escape(f"{SD2_OPEN_CLIP}transformer.resblocks.") + r"(\d+)\.")
        if layers == SD2_TEXT_LAYERS:
            return "sd2"
        found = f"an SD 2.x-like checkpoint with {layers} text-encoder layers (SD 2.x has {SD2_TEXT_LAYERS})"
    else:
        found = "a checkpoint without a text encoder dreamcord knows"
    raise _Unusual(f"it is {found}; dreamcord loads single files of SD 1.x, SD 2.x, SDXL and Flux")


def _template(variant: str, subfolder: str, name: str = "config.json") -> dict[str, Any]:
    config: dict[str, Any] = json.loads((ORIGINAL_CONFIGS / variant / subfolder / name).read_text())
    return config


def _unet_config(variant: str, shapes: Shapes) -> dict[str, Any]:
    """The UNet's levels, depths and widths from its tensors (the LDM layout numbers input blocks
    consecutively: per level `layers` res-blocks, each maybe with a transformer, then a downsampler)."""
    config = _template(variant, "unet")
    levels: list[tuple[int, int]] = []  # (channels, transformer depth) per level
    layers: list[int] = []
    block, resnets, depth = 1, 0, 0
    while True:
        prefix = f"{UNET}input_blocks.{block}."
        if f"{prefix}0.op.weight" in shapes or f"{prefix}0.in_layers.0.weight" not in shapes:
            if resnets:  # a downsampler, or the end: the level is complete
                levels.append((shapes[f"{UNET}input_blocks.{block - 1}.0.out_layers.3.weight"][0], depth))
                layers.append(resnets)
            if f"{prefix}0.op.weight" not in shapes:
                break
            resnets, depth = 0, 0
        else:
            resnets += 1
            depth = max(depth, count_blocks(shapes, re.escape(f"{prefix}1.transformer_blocks.") + r"(\d+)\."))
        block += 1
    if not levels or len(set(layers)) != 1:
        raise _Unusual(f"its UNet has an unusual layout ({layers} res-blocks per level)")
    channels = [level[0] for level in levels]
    attention = [level[1] > 0 for level in levels]
    config["block_out_channels"] = channels
    config["layers_per_block"] = layers[0]
    config["in_channels"] = shapes[f"{UNET}input_blocks.0.0.weight"][1]
    config["out_channels"] = shapes[f"{UNET}out.2.weight"][0]
    config["down_block_types"] = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention]
    config["up_block_types"] = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)]
    attention_keys = [key for key in shapes if key.endswith("attn2.to_k.weight") and key.startswith(UNET)]
    if not attention_keys:
        raise _Unusual("its UNet has no cross-attention layers")
    config["cross_attention_dim"] = shapes[attention_keys[0]][1]
    proj_in = next(shapes[key] for key in shapes if key.startswith(UNET) and key.endswith("proj_in.weight"))
    config["use_linear_projection"] = len(proj_in) == 2
    if variant != "sd1":  # SD 2.x and SDXL: heads of 64 channels
        config["attention_head_dim"] = [max(1, c // 64) for c in channels]
    if variant == "sdxl":  # and the transformer depth of each level
        config["transformer_layers_per_block"] = [max(1, level[1]) for level in levels]
    return config


def read_vae_file(source: str, family: str) -> dict[str, Any]:
    """The diffusers config of a VAE distributed as one file (its keys bare or under `first_stage_model.`),
    for a base model of `family` (whose latent scaling it shares: that is not in the weights)."""
    path = Path(source).expanduser().resolve()
    if not path.is_file():
        raise ModelNotFoundError(f"VAE file {source} does not exist")
    if not (ORIGINAL_CONFIGS / family / "vae").is_dir():
        raise ModelLoadError(
            f"a VAE file for a {family} model cannot be read yet: give a VAE folder or hub id"
        )
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelLoadError(
            f"{path.name} is a pickle, which can run code when loaded: use a .safetensors VAE"
        )
    shapes = _tensor_shapes(path, path.stat().st_size)
    prefix = VAE if any(key.startswith(VAE) for key in shapes) else ""
    try:
        return _vae_config(family, shapes, prefix)
    except KeyError as missing:
        raise ModelLoadError(
            f"{path.name} is not a VAE in the original layout (no tensor {missing})"
        ) from None


def _vae_config(variant: str, shapes: Shapes, prefix: str = VAE) -> dict[str, Any]:
    config = _template(variant, "vae")
    levels = count_blocks(shapes, re.escape(f"{prefix}encoder.down.") + r"(\d+)\.")
    config["block_out_channels"] = [
        shapes[f"{prefix}encoder.down.{level}.block.0.conv1.weight"][0] for level in range(levels)
    ]
    config["down_block_types"] = ["DownEncoderBlock2D"] * levels
    config["up_block_types"] = ["UpDecoderBlock2D"] * levels
    config["layers_per_block"] = count_blocks(
        shapes, re.escape(f"{prefix}encoder.down.0.block.") + r"(\d+)\."
    )
    config["in_channels"] = shapes[f"{prefix}encoder.conv_in.weight"][1]
    config["out_channels"] = shapes[f"{prefix}decoder.conv_out.weight"][0]
    config["latent_channels"] = shapes[f"{prefix}decoder.conv_in.weight"][1]
    return config


def _check_vocabulary(vocabulary: int, where: str) -> None:
    if vocabulary != CLIP_VOCABULARY:
        raise _Unusual(
            f"its {where} has a vocabulary of {vocabulary:,} tokens, not CLIP's {CLIP_VOCABULARY:,}: "
            "load it as a diffusers folder with its own tokenizer"
        )


def _clip_config(variant: str, subfolder: str, shapes: Shapes, prefix: str) -> dict[str, Any]:
    """An OpenAI CLIP text encoder in transformers' own key names (SD 1.x, SDXL's first)."""
    config = _template(variant, subfolder)
    vocabulary, width = shapes[f"{prefix}embeddings.token_embedding.weight"]
    _check_vocabulary(vocabulary, "text encoder")
    config["hidden_size"] = width
    config["num_attention_heads"] = max(1, width // 64)  # CLIP's heads are 64 wide
    config["num_hidden_layers"] = count_blocks(shapes, re.escape(f"{prefix}encoder.layers.") + r"(\d+)\.")
    config["intermediate_size"] = shapes[f"{prefix}encoder.layers.0.mlp.fc1.weight"][0]
    config["max_position_embeddings"] = shapes[f"{prefix}embeddings.position_embedding.weight"][0]
    config["projection_dim"] = width
    return config


def _open_clip_config(variant: str, subfolder: str, shapes: Shapes, prefix: str) -> dict[str, Any]:
    """An OpenCLIP text encoder in OpenCLIP's key names: SDXL's second (all its layers, and its
    projection) or SD 2.x's (diffusers keeps all but the last layer: SD 2.x reads the penultimate)."""
    config = _template(variant, subfolder)
    vocabulary, width = shapes[f"{prefix}token_embedding.weight"]
    _check_vocabulary(vocabulary, "second text encoder" if variant == "sdxl" else "text encoder")
    layers = count_blocks(shapes, re.escape(f"{prefix}transformer.resblocks.") + r"(\d+)\.")
    config["hidden_size"] = width
    config["num_attention_heads"] = max(1, width // 64)
    config["num_hidden_layers"] = layers if variant == "sdxl" else layers - 1
    config["intermediate_size"] = shapes[f"{prefix}transformer.resblocks.0.mlp.c_fc.weight"][0]
    config["max_position_embeddings"] = shapes[f"{prefix}positional_embedding"][0]
    if variant == "sdxl":
        config["projection_dim"] = shapes[f"{prefix}text_projection"][1]
    return config
