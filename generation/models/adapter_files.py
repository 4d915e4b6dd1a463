"""Checking an uploaded adapter file before anything stores or loads it (no torch: the bot does this).

Only safetensors are accepted: the format is a JSON header plus raw tensor bytes, so reading it can
never run code, unlike the pickles inside .ckpt/.pt/.bin files, which are refused outright. The header
is checked completely, with the rules of the safetensors library itself (known dtypes, sizes that
match shapes, offsets that tile the data exactly, string metadata) plus bounds of our own (header
size, nesting, tensor count, name length and characters), so that every malformed file gets one clear
message here instead of an error in the worker. From the names we tell a LoRA (diffusers, peft or
kohya/A1111 key names) from a textual-inversion embedding; whether its values are finite and its
shapes fit the base model is checked by a worker loading it for real.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generation.errors import DreamcordError, excerpt

MAX_ADAPTER_BYTES = 400 * 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024 * 1024  # a 1,000-tensor LoRA with kohya's metadata is well under 1 MiB
MAX_TENSORS = 10_000
MAX_NAME_CHARS = 300
MAX_RANK = 8
MAX_METADATA_ENTRIES = 1_000
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")  # pickle, torch zip
_LORA_MARKERS = ("lora_A", "lora_B", "lora_down", "lora_up", "lora.down", "lora.up", "lora_unet_", "lora_te")
# Bytes per element of safetensors' dtypes; adapters hold weights, so only the float ones are allowed.
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})


class AdapterFileError(DreamcordError):
    """The uploaded file cannot be used as a LoRA or an embedding; the message says why."""


@dataclass(frozen=True)
class AdapterFileInfo:
    kind: str  # "lora" | "embedding"
    tensors: int
    metadata: dict[str, str]

    @property
    def trigger(self) -> str:
        """Trigger words recorded in the file by dreamcord (kohya files keep theirs in ss_tag_frequency)."""
        return self.metadata.get("dreamcord.trigger", "")

    @property
    def tags(self) -> str:
        """The captions' most frequent tags of a kohya-trained LoRA (`ss_tag_frequency`), most used
        first: the words it was trained with, which its maker usually means as its trigger."""
        return most_frequent_tags(self.metadata.get("ss_tag_frequency", ""))


def most_frequent_tags(tag_frequency: str, limit: int = 8, max_chars: int = 200) -> str:
    """kohya's `{"folder": {"tag": count, …}, …}` as "tag, tag, …" (counts summed over folders);
    "" when absent or malformed (metadata is the uploader's free text)."""
    try:
        folders = json.loads(tag_frequency) if tag_frequency else {}
    except ValueError:
        return ""
    counts: dict[str, float] = {}
    for tags in folders.values() if isinstance(folders, dict) else ():
        for tag, count in tags.items() if isinstance(tags, dict) else ():
            if isinstance(tag, str) and tag.strip() and isinstance(count, int | float):
                counts[tag.strip()] = counts.get(tag.strip(), 0) + count
    ranked = sorted(counts, key=lambda tag: (-counts[tag], tag))[:limit]
    text = ", ".join(" ".join(tag.split()) for tag in ranked)
    return text if len(text) <= max_chars else text[: max_chars - 1].rsplit(",", 1)[0]


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def inspect_adapter_file(data: bytes, filename: str = "the file") -> AdapterFileInfo:
    """What the file is, or AdapterFileError with the first thing wrong with it."""
    return inspect_adapter_head(head_of(data), len(data), filename)


def head_of(data: bytes) -> bytes:
    """The part of a file the checks read: its first bytes and its header (at most 8 + MAX_HEADER_BYTES + 1
    bytes), small enough to hand to another process."""
    length = struct.unpack("<Q", data[:8])[0] if len(data) >= 8 else 0
    return data[: 8 + min(length, MAX_HEADER_BYTES + 1)]


def head_of_file(path: Path) -> bytes:
    """`head_of` a file on disk, reading only that part of it (a checkpoint may be gigabytes)."""
    with path.open("rb") as file:
        return head_of(file.read(8 + MAX_HEADER_BYTES + 1))


def inspect_adapter_head(head: bytes, size: int, filename: str = "the file") -> AdapterFileInfo:
    """`inspect_adapter_file` from the file's `head_of` and its size in bytes."""
    shown = excerpt(filename, 60, quote=False)
    if filename.lower().endswith((".ckpt", ".pt", ".pth", ".bin", ".pkl")) or head.startswith(_PICKLE_MAGIC):
        raise AdapterFileError(
            f"{shown} is a pickle file, which can run code when loaded: upload a .safetensors file instead"
        )
    if size > MAX_ADAPTER_BYTES:
        raise AdapterFileError(f"{shown} is larger than {MAX_ADAPTER_BYTES // 2**20} MiB")
    try:
        tensors, metadata = read_header(head, size)
    except AdapterFileError as error:
        raise AdapterFileError(f"{shown}: {error}") from None
    names = [tensor.name for tensor in tensors]
    if not names:
        raise AdapterFileError(f"{shown} holds no tensors")
    if any(marker in name for name in names for marker in _LORA_MARKERS):
        return AdapterFileInfo("lora", len(names), metadata)
    if len(tensors) == 1 and len(tensors[0].shape) in (1, 2):
        return AdapterFileInfo("embedding", 1, metadata)
    if sorted(names) == ["clip_g", "clip_l"] and all(len(tensor.shape) == 2 for tensor in tensors):
        return AdapterFileInfo("embedding", 2, metadata)  # SDXL: one tensor per text encoder
    raise AdapterFileError(f"{shown} is neither a LoRA nor a textual-inversion embedding")


def read_header(head: bytes, size: int | None = None) -> tuple[list[TensorEntry], dict[str, str]]:
    """The tensors and metadata of a safetensors file (`head`: the file or its first bytes; `size`:
    the whole file's length), checked as the safetensors library checks them and within our bounds;
    AdapterFileError (a short, user-facing reason) otherwise."""
    size = len(head) if size is None else size
    if size < 8 or len(head) < 8:
        raise AdapterFileError("not a safetensors file (too short)")
    (length,) = struct.unpack("<Q", head[:8])
    if length > size - 8:
        raise AdapterFileError("not a safetensors file, or cut off (its header runs past the end)")
    if length > MAX_HEADER_BYTES:
        limit = MAX_HEADER_BYTES // 2**20
        raise AdapterFileError(f"not a usable safetensors file (its header is over {limit} MiB)")
    raw = head[8 : 8 + length]
    if not raw.lstrip(b" ").startswith(b"{"):
        raise AdapterFileError("not a safetensors file (its header is not a JSON object)")
    try:
        header = json.loads(raw, object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else "not valid JSON"
        raise AdapterFileError(f"not a safetensors file (its header is {reason})") from None
    if not isinstance(header, dict):
        raise AdapterFileError("not a safetensors file (its header is not a JSON object)")
    metadata = _metadata(header.pop("__metadata__", None))
    if len(header) > MAX_TENSORS:
        raise AdapterFileError(f"holds {len(header):,} tensors; at most {MAX_TENSORS:,} are accepted")
    tensors = [_tensor(name, entry) for name, entry in header.items()]
    _check_layout(tensors, size - 8 - length)
    return tensors, metadata


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise AdapterFileError("its __metadata__ must map names to strings")
    if len(value) > MAX_METADATA_ENTRIES:
        raise AdapterFileError(f"its __metadata__ has over {MAX_METADATA_ENTRIES:,} entries")
    return dict(value)


def _tensor(name: str, entry: object) -> TensorEntry:
    shown = excerpt(name, 40)
    if not 0 < len(name) <= MAX_NAME_CHARS or not name.isprintable():
        raise AdapterFileError(f"tensor name {shown} is empty, too long or holds control characters")
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise AdapterFileError(f"tensor {shown} must have exactly dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in _DTYPE_BYTES:
        raise AdapterFileError(f"tensor {shown} has an unknown dtype {excerpt(str(dtype), 20)}")
    if dtype not in FLOAT_DTYPES:
        raise AdapterFileError(
            f"tensor {shown} is {dtype}: adapter weights are floating point (F16, BF16, F32)"
        )
    if not _ints(shape) or len(shape) > MAX_RANK:
        raise AdapterFileError(f"tensor {shown} has a malformed shape (a list of at most {MAX_RANK} sizes)")
    if not _ints(offsets) or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise AdapterFileError(f"tensor {shown} has malformed data_offsets (two increasing byte offsets)")
    if math.prod(shape) * _DTYPE_BYTES[dtype] != offsets[1] - offsets[0]:
        raise AdapterFileError(f"tensor {shown}: its shape and dtype do not match its byte size")
    return TensorEntry(name, dtype, tuple(shape), offsets[0], offsets[1])


def _ints(value: object) -> bool:
    """A list of non-negative ints (JSON's true/false are not sizes)."""
    return isinstance(value, list) and all(
        isinstance(item, int) and not isinstance(item, bool) and 0 <= item < 2**48 for item in value
    )


def _check_layout(tensors: list[TensorEntry], body_bytes: int) -> None:
    """Like safetensors: the tensors' byte ranges follow one another with no gap or overlap and end
    exactly where the file does."""
    position = 0
    for tensor in sorted(tensors, key=lambda t: (t.begin, t.end)):
        if tensor.begin != position:
            raise AdapterFileError(f"tensor {excerpt(tensor.name, 40)} overlaps another or leaves a gap")
        position = tensor.end
    if position > body_bytes:
        raise AdapterFileError("cut off: its tensors run past the end of the file")
    if position != body_bytes:
        raise AdapterFileError("has bytes after its last tensor")
