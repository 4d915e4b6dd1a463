"""Flux transformers distributed as one file in Black Forest Labs' key layout: `flux1-dev.safetensors`,
its fine-tunes and merges as model sites offer them, and ComfyUI's files with the transformer under
`model.diffusion_model.`.

Such a file holds the transformer alone, so the rest of the model (both text encoders and their
tokenizers, the VAE, the scheduler) comes from the model's `base`: the Flux hub id or folder the file
was made from. The transformer's dimensions are read from its tensors' shapes, as for SD files
(diffusers' own converter assumes FLUX.1's width of 3072, so a pruned or differently sized file, or a
tiny one in a test, would not load through it); the keys are renamed (models/flux_weights) as diffusers'
`convert_flux_transformer_checkpoint_to_diffusers` renames them, and a test checks the two agree on a
full-width block. This module reads the header alone (no torch: the bot sizes jobs with it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

COMFY_PREFIX = "model.diffusion_model."
MLP_RATIO = 4  # diffusers' Flux blocks are built with it; a file with another cannot load into them
HEAD_NORM = "double_blocks.0.img_attn.norm.query_norm.scale"  # one scale per channel of a head

Shapes = Mapping[str, tuple[int, ...]]


class UnusualFluxFile(Exception):
    """Why a Flux file cannot load, as a clause after its name."""


def is_flux(keys: Iterable[str]) -> bool:
    """Whether tensor names are a Flux transformer's (bare or under ComfyUI's prefix)."""
    return any(key.startswith(("double_blocks.", f"{COMFY_PREFIX}double_blocks.")) for key in keys)


def flux_shape_config(shapes: Shapes) -> dict[str, Any]:
    """The transformer config entries its tensors' shapes decide (the rest comes from the base's config)."""
    shapes = _transformer_part(shapes)
    try:
        inner, in_channels = shapes["img_in.weight"]
        head = shapes[HEAD_NORM][0]
        mlp = shapes["double_blocks.0.img_mlp.0.weight"][0]
        config = {
            "in_channels": in_channels,
            "out_channels": shapes["final_layer.linear.weight"][0],
            "num_layers": count_blocks(shapes, r"double_blocks\.(\d+)\."),
            "num_single_layers": count_blocks(shapes, r"single_blocks\.(\d+)\."),
            "attention_head_dim": head,
            "num_attention_heads": inner // head,
            "joint_attention_dim": shapes["txt_in.weight"][1],
            "pooled_projection_dim": shapes["vector_in.in_layer.weight"][1],
            "guidance_embeds": "guidance_in.in_layer.weight" in shapes,
        }
    except KeyError as missing:
        raise UnusualFluxFile(f"it lacks the Flux transformer's tensor {missing}") from None
    if mlp != MLP_RATIO * inner:
        raise UnusualFluxFile(f"its feed-forward layers are {mlp / inner:g}x wide, not Flux's {MLP_RATIO}x")
    if inner % head:
        raise UnusualFluxFile(f"its width {inner} is not a whole number of {head}-wide heads")
    return config


def transformer_config(shape_config: Mapping[str, Any], base_config: Mapping[str, Any]) -> dict[str, Any]:
    """The base model's transformer config with the file's shapes; its rotary embedding must fit them."""
    config = {key: value for key, value in base_config.items() if not key.startswith("_")}
    config.update(shape_config)
    rope = config.get("axes_dims_rope", ())
    if sum(rope) != config["attention_head_dim"]:
        raise UnusualFluxFile(
            f"its heads are {config['attention_head_dim']} wide, while the base model's rotary embedding "
            f"covers {sum(rope)}: the file was not made from this base"
        )
    return config


def _transformer_part(shapes: Shapes) -> dict[str, tuple[int, ...]]:
    return {bare_name(name): shapes[name] for name in transformer_names(list(shapes))}


def transformer_names(names: list[str]) -> list[str]:
    """A ComfyUI file keeps the transformer under its prefix, beside text encoders and a VAE (which
    the base model supplies here); a BFL file holds only the transformer, with bare names."""
    if any(name.startswith(COMFY_PREFIX) for name in names):
        return [name for name in names if name.startswith(COMFY_PREFIX)]
    return names


def bare_name(name: str) -> str:
    return name.removeprefix(COMFY_PREFIX)


def count_blocks(names: Any, pattern: str) -> int:
    """How many numbered blocks match `pattern` (a regex with one `(\\d+)`), in any checkpoint's names."""
    compiled = re.compile(pattern)
    found = {int(match.group(1)) for key in names if (match := compiled.match(key))}
    return max(found) + 1 if found else 0
