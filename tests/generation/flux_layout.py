"""Test helpers: a diffusers Flux transformer's weights written in Black Forest Labs' key layout (the
reverse of what generation.models.flux_file reads), and row-labelled stand-ins for a full-width
FLUX.1 file, cheap enough to run diffusers' own converter on.

Written from the two layouts' structure (fused q/k/v per stream, fused q/k/v/MLP in single blocks,
shift before scale in the final modulation), so that a mistake in either direction breaks the round
trip."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import FluxTransformer2DModel
from safetensors.torch import save_file

Weights = dict[str, torch.Tensor]

_LINEARS = {  # diffusers name → BFL name, per double block
    "norm1.linear": "img_mod.lin",
    "norm1_context.linear": "txt_mod.lin",
    "ff.net.0.proj": "img_mlp.0",
    "ff.net.2": "img_mlp.2",
    "ff_context.net.0.proj": "txt_mlp.0",
    "ff_context.net.2": "txt_mlp.2",
    "attn.to_out.0": "img_attn.proj",
    "attn.to_add_out": "txt_attn.proj",
}
_NORMS = {
    "attn.norm_q.weight": "img_attn.norm.query_norm.scale",
    "attn.norm_k.weight": "img_attn.norm.key_norm.scale",
    "attn.norm_added_q.weight": "txt_attn.norm.query_norm.scale",
    "attn.norm_added_k.weight": "txt_attn.norm.key_norm.scale",
}
_EMBEDDERS = {
    "time_text_embed.timestep_embedder": "time_in",
    "time_text_embed.text_embedder": "vector_in",
    "time_text_embed.guidance_embedder": "guidance_in",
}


def flux_to_bfl(transformer: FluxTransformer2DModel) -> Weights:
    """The transformer's weights under BFL's names (as in flux1-dev.safetensors)."""
    weights = {name: tensor.detach().clone() for name, tensor in transformer.state_dict().items()}
    out: Weights = {}
    for parameter in ("weight", "bias"):
        for new, old in _EMBEDDERS.items():
            if f"{new}.linear_1.{parameter}" in weights:
                out[f"{old}.in_layer.{parameter}"] = weights.pop(f"{new}.linear_1.{parameter}")
                out[f"{old}.out_layer.{parameter}"] = weights.pop(f"{new}.linear_2.{parameter}")
        out[f"txt_in.{parameter}"] = weights.pop(f"context_embedder.{parameter}")
        out[f"img_in.{parameter}"] = weights.pop(f"x_embedder.{parameter}")
        out[f"final_layer.linear.{parameter}"] = weights.pop(f"proj_out.{parameter}")
        scale, shift = weights.pop(f"norm_out.linear.{parameter}").chunk(2)
        out[f"final_layer.adaLN_modulation.1.{parameter}"] = torch.cat([shift, scale])
        for block in range(transformer.config.num_layers):
            new_block, old_block = f"transformer_blocks.{block}.", f"double_blocks.{block}."
            for new, old in _LINEARS.items():
                out[f"{old_block}{old}.{parameter}"] = weights.pop(f"{new_block}{new}.{parameter}")
            for stream, names in (("img", ("to_q", "to_k", "to_v")), ("txt", ("add_q_proj", "add_k_proj", "add_v_proj"))):  # fmt: skip
                parts = [weights.pop(f"{new_block}attn.{name}.{parameter}") for name in names]
                out[f"{old_block}{stream}_attn.qkv.{parameter}"] = torch.cat(parts)
        for block in range(transformer.config.num_single_layers):
            new_block, old_block = f"single_transformer_blocks.{block}.", f"single_blocks.{block}."
            out[f"{old_block}modulation.lin.{parameter}"] = weights.pop(f"{new_block}norm.linear.{parameter}")
            out[f"{old_block}linear2.{parameter}"] = weights.pop(f"{new_block}proj_out.{parameter}")
            parts = [weights.pop(f"{new_block}{name}.{parameter}") for name in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")]  # fmt: skip
            out[f"{old_block}linear1.{parameter}"] = torch.cat(parts)
    for block in range(transformer.config.num_layers):
        for new, old in _NORMS.items():
            out[f"double_blocks.{block}.{old}"] = weights.pop(f"transformer_blocks.{block}.{new}")
    for block in range(transformer.config.num_single_layers):
        for end in ("q", "k"):
            old_name = f"single_blocks.{block}.norm.{'query' if end == 'q' else 'key'}_norm.scale"
            out[old_name] = weights.pop(f"single_transformer_blocks.{block}.attn.norm_{end}.weight")
    assert not weights, f"not written: {sorted(weights)}"
    return out


def save_flux_file(transformer: FluxTransformer2DModel, path: Path, *, prefix: str = "", extra: Weights | None = None) -> Path:  # fmt: skip
    """One .safetensors of the transformer in BFL's layout (under `prefix`, as ComfyUI writes it,
    with `extra` tensors beside it)."""
    weights = {prefix + name: tensor.contiguous() for name, tensor in flux_to_bfl(transformer).items()}
    save_file(weights | (extra or {}), str(path))
    return path


def full_width_bfl_labels() -> Weights:
    """One double and one single block of FLUX.1's full width (3072: 24 heads of 128, MLP 12288, T5's
    4096, CLIP's 768), each tensor's rows numbered uniquely and broadcast along its columns, so a
    wrong split or rename shows as wrong numbers without gigabytes of memory."""
    inner, mlp, head = 3072, 12288, 128
    shapes: dict[str, tuple[int, ...]] = {
        "img_in.weight": (inner, 64), "txt_in.weight": (inner, 4096),
        "time_in.in_layer.weight": (inner, 256), "time_in.out_layer.weight": (inner, inner),
        "vector_in.in_layer.weight": (inner, 768), "vector_in.out_layer.weight": (inner, inner),
        "guidance_in.in_layer.weight": (inner, 256), "guidance_in.out_layer.weight": (inner, inner),
        "final_layer.linear.weight": (64, inner), "final_layer.adaLN_modulation.1.weight": (2 * inner, inner),
        "single_blocks.0.linear1.weight": (3 * inner + mlp, inner), "single_blocks.0.linear2.weight": (inner, inner + mlp),
        "single_blocks.0.modulation.lin.weight": (3 * inner, inner),
        "single_blocks.0.norm.query_norm.scale": (head,), "single_blocks.0.norm.key_norm.scale": (head,),
    }  # fmt: skip
    for stream in ("img", "txt"):
        shapes |= {
            f"double_blocks.0.{stream}_mod.lin.weight": (6 * inner, inner),
            f"double_blocks.0.{stream}_attn.qkv.weight": (3 * inner, inner),
            f"double_blocks.0.{stream}_attn.proj.weight": (inner, inner),
            f"double_blocks.0.{stream}_mlp.0.weight": (mlp, inner),
            f"double_blocks.0.{stream}_mlp.2.weight": (inner, mlp),
            f"double_blocks.0.{stream}_attn.norm.query_norm.scale": (head,),
            f"double_blocks.0.{stream}_attn.norm.key_norm.scale": (head,),
        }
    for name, shape in list(shapes.items()):
        if name.endswith(".weight") and len(shape) == 2:
            shapes[name.removesuffix("weight") + "bias"] = (shape[0],)
    labels: Weights = {}
    for index, (name, shape) in enumerate(sorted(shapes.items())):
        rows = torch.arange(shape[0], dtype=torch.int32) + index * 100_000
        labels[name] = rows if len(shape) == 1 else rows[:, None].expand(shape)
    return labels
