"""Checking an uploaded adapter file before anything loads it (no torch: the bot does this).

Only safetensors are accepted: the format is a JSON header plus raw tensor bytes, so reading it can
never run code, unlike the pickles inside .ckpt/.pt/.bin files, which are refused outright. From the
header alone we tell a LoRA (diffusers, peft or kohya/A1111 key names) from a textual-inversion
embedding; whether its shapes fit the base model is checked by a worker loading it for real.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from generation.errors import DreamcordError

MAX_ADAPTER_BYTES = 400 * 1024 * 1024
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")  # pickle, torch zip
_LORA_MARKERS = ("lora_A", "lora_B", "lora_down", "lora_up", "lora.down", "lora.up", "lora_unet_", "lora_te")


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


def inspect_adapter_file(data: bytes, filename: str = "the file") -> AdapterFileInfo:
    if filename.lower().endswith((".ckpt", ".pt", ".pth", ".bin", ".pkl")) or data.startswith(_PICKLE_MAGIC):
        raise AdapterFileError(
            f"{filename} is a pickle file, which can run code when loaded: upload a .safetensors file instead"
        )
    if len(data) > MAX_ADAPTER_BYTES:
        raise AdapterFileError(f"{filename} is larger than {MAX_ADAPTER_BYTES // 2**20} MiB")
    header = _read_header(data, filename)
    metadata = header.pop("__metadata__", None) or {}
    names = list(header)
    if not names:
        raise AdapterFileError(f"{filename} holds no tensors")
    if any(marker in name for name in names for marker in _LORA_MARKERS):
        return AdapterFileInfo("lora", len(names), _strings(metadata))
    if len(names) == 1 and len(header[names[0]]["shape"]) in (1, 2):
        return AdapterFileInfo("embedding", 1, _strings(metadata))
    raise AdapterFileError(f"{filename} is neither a LoRA nor a textual-inversion embedding")


def _read_header(data: bytes, filename: str) -> dict[str, Any]:
    not_safetensors = AdapterFileError(f"{filename} is not a safetensors file")
    if len(data) < 8:
        raise not_safetensors
    (length,) = struct.unpack("<Q", data[:8])
    if length > min(_MAX_HEADER_BYTES, len(data) - 8):
        raise not_safetensors
    try:
        header = json.loads(data[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise not_safetensors from None
    if not isinstance(header, dict) or not all(
        isinstance(entry, dict) and {"dtype", "shape", "data_offsets"} <= entry.keys()
        for name, entry in header.items()
        if name != "__metadata__"
    ):
        raise not_safetensors
    body = len(data) - 8 - length
    if any(entry["data_offsets"][1] > body for name, entry in header.items() if name != "__metadata__"):
        raise AdapterFileError(f"{filename} is cut off: its tensors run past the end of the file")
    return header


def _strings(metadata: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}
