"""A Flux transformer file's weights in diffusers' layout (models/flux_file reads what the file is).

The renames are diffusers' `convert_flux_transformer_checkpoint_to_diffusers`'s, at any width;
tensors are read, split and cast one at a time, so the peak memory is about one transformer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import safe_open

from generation.errors import ModelLoadError
from generation.models.flux_file import UnusualFluxFile, bare_name, count_blocks, transformer_names

# Renamed whole (the BFL name without .weight/.bias → diffusers' name), per double block, per single
# block, and once; the fused q/k/v tensors and the final modulation are handled in `_convert`.
_DOUBLE = {
    "img_mod.lin": "norm1.linear",
    "txt_mod.lin": "norm1_context.linear",
    "img_mlp.0": "ff.net.0.proj",
    "img_mlp.2": "ff.net.2",
    "txt_mlp.0": "ff_context.net.0.proj",
    "txt_mlp.2": "ff_context.net.2",
    "img_attn.proj": "attn.to_out.0",
    "txt_attn.proj": "attn.to_add_out",
}
_DOUBLE_NORMS = {
    "img_attn.norm.query_norm.scale": "attn.norm_q.weight",
    "img_attn.norm.key_norm.scale": "attn.norm_k.weight",
    "txt_attn.norm.query_norm.scale": "attn.norm_added_q.weight",
    "txt_attn.norm.key_norm.scale": "attn.norm_added_k.weight",
}
_SINGLE = {"modulation.lin": "norm.linear", "linear2": "proj_out"}
_SINGLE_NORMS = {"norm.query_norm.scale": "attn.norm_q.weight", "norm.key_norm.scale": "attn.norm_k.weight"}
_ONCE = {
    "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",  # FLUX.1 dev, not schnell
    "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
    "txt_in": "context_embedder",
    "img_in": "x_embedder",
    "final_layer.linear": "proj_out",
}


class TensorSource(Protocol):
    """Tensors by name that the conversion takes one at a time (a dict, or a file read lazily)."""

    def pop(self, name: str, /) -> torch.Tensor: ...
    def __contains__(self, name: object, /) -> bool: ...
    def __iter__(self) -> Iterator[str]: ...
    def __len__(self) -> int: ...


class _FileTensors:
    """A file's transformer tensors by bare name, each read when the conversion takes it."""

    def __init__(self, file: Any, names: list[str]) -> None:
        self._file, self._names = file, {bare_name(name): name for name in names}

    def pop(self, name: str, /) -> torch.Tensor:
        tensor: torch.Tensor = self._file.get_tensor(self._names.pop(name))
        return tensor

    def __contains__(self, name: object, /) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def __len__(self) -> int:
        return len(self._names)


def read_flux_transformer(path: Path, config: Mapping[str, Any], dtype: torch.dtype) -> Any:
    """The diffusers FluxTransformer2DModel of a BFL-layout file with `config` (`transformer_config`),
    its weights read one tensor at a time (about one model's memory at the peak) and cast to `dtype`."""
    from diffusers import FluxTransformer2DModel

    def finish(tensor: torch.Tensor) -> torch.Tensor:  # its own storage: a view of a fused tensor
        return tensor.to(dtype, copy=tensor._base is not None)  # would keep it alive, and slow kernels

    with safe_open(str(path), framework="pt") as file:
        tensors = _FileTensors(file, transformer_names(list(file.keys())))
        try:
            inner = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
            weights = convert_flux_state_dict(tensors, inner, finish)
        except UnusualFluxFile as reason:
            raise ModelLoadError(f"{path.name}: {reason}") from None
    with torch.device("meta"):  # no memory for weights that the file's replace at once
        transformer = FluxTransformer2DModel.from_config(dict(config))
    try:
        transformer.load_state_dict(weights, strict=True, assign=True)
    except RuntimeError as error:
        raise ModelLoadError(
            f"{path.name} does not fit a Flux transformer of its own shapes: {error}"
        ) from None
    return transformer.eval()


def convert_flux_state_dict(
    tensors: TensorSource, inner: int, finish: Callable[[torch.Tensor], torch.Tensor] = lambda t: t
) -> dict[str, torch.Tensor]:
    """BFL key layout → diffusers' (the same renames as diffusers' converter, any width), each tensor
    passed through `finish` as it is made. Consumes `tensors`; one left over means a file this does
    not understand, and is refused."""
    out: dict[str, torch.Tensor] = {}

    def put(name: str, tensor: torch.Tensor) -> None:
        out[name] = finish(tensor)

    def move(old: str, new: str) -> None:  # every linear layer of Flux has a bias
        for parameter in (".weight", ".bias"):
            put(new + parameter, tensors.pop(old + parameter))

    def rename_block(old_block: str, new_block: str, linears: dict[str, str], norms: dict[str, str]) -> None:
        for old, new in linears.items():
            move(old_block + old, new_block + new)
        for old, new in norms.items():
            put(new_block + new, tensors.pop(old_block + old))

    try:
        for old, new in _ONCE.items():
            if old.startswith("guidance_in") and f"{old}.weight" not in tensors:
                continue
            move(old, new)
        shift, scale = tensors.pop("final_layer.adaLN_modulation.1.weight").chunk(2)
        put("norm_out.linear.weight", torch.cat([scale, shift]))  # AdaLayerNormContinuous's order
        shift, scale = tensors.pop("final_layer.adaLN_modulation.1.bias").chunk(2)
        put("norm_out.linear.bias", torch.cat([scale, shift]))
        for block in range(count_blocks(tensors, r"double_blocks\.(\d+)\.")):
            old_block, new_block = f"double_blocks.{block}.", f"transformer_blocks.{block}."
            rename_block(old_block, new_block, _DOUBLE, _DOUBLE_NORMS)
            for stream, names in (
                ("img", ("to_q", "to_k", "to_v")),
                ("txt", ("add_q_proj", "add_k_proj", "add_v_proj")),
            ):
                for parameter in ("weight", "bias"):
                    parts = tensors.pop(f"{old_block}{stream}_attn.qkv.{parameter}").chunk(3)
                    for name, part in zip(names, parts, strict=True):
                        put(f"{new_block}attn.{name}.{parameter}", part)
        for block in range(count_blocks(tensors, r"single_blocks\.(\d+)\.")):
            old_block, new_block = f"single_blocks.{block}.", f"single_transformer_blocks.{block}."
            rename_block(old_block, new_block, _SINGLE, _SINGLE_NORMS)
            for parameter in ("weight", "bias"):
                fused = tensors.pop(f"{old_block}linear1.{parameter}")
                parts = torch.split(fused, [inner, inner, inner, fused.shape[0] - 3 * inner])
                for name, part in zip(
                    ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), parts, strict=True
                ):
                    put(f"{new_block}{name}.{parameter}", part)
    except KeyError as missing:
        raise UnusualFluxFile(f"it lacks the Flux transformer's tensor {missing}") from None
    if tensors:
        raise UnusualFluxFile(
            f"it holds tensors a Flux transformer does not have, such as {sorted(tensors)[0]!r}"
        )
    return out
