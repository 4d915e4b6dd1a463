"""How much memory a checkpoint's weights take, read from its safetensors headers alone (no weights
loaded, no torch): the parameter count, and its size in the dtype it would run in. For `dreamcord
doctor`, before anything is loaded."""

from __future__ import annotations

import math
from pathlib import Path

from generation.config import HUB_ID_PATTERN
from generation.models.adapter_files import head_of_file, read_header
from generation.models.single_file import is_single_file

BYTES_PER_PARAMETER = {"float32": 4, "float16": 2, "bfloat16": 2}


def parameter_count(source: str, base: str | None = None) -> int | None:
    """Parameters in a single file, a diffusers folder or a downloaded hub model (a Flux transformer
    file with the rest of its `base`); None when its weights are not on this machine (or not safetensors)."""
    if is_single_file(source):
        path = Path(source).expanduser()
        if not path.is_file():
            return None
        rest = _folder_count(base, skip="transformer") if base else 0
        return None if rest is None else _count(path) + rest
    return _folder_count(source)


def _folder_count(source: str, skip: str = "") -> int | None:
    folder = _local_folder(source)
    if folder is None:
        return None
    components = [c for c in folder.iterdir() if (c / "config.json").is_file() and c.name != skip]
    counted = [_count(file) for component in components for file in _preferred(component)]
    return sum(counted) if counted else None


def weight_bytes(parameters: int, dtype: str) -> int:
    return parameters * BYTES_PER_PARAMETER[dtype]


def _count(path: Path) -> int:
    tensors, _ = read_header(head_of_file(path), path.stat().st_size)
    return sum(math.prod(tensor.shape) for tensor in tensors)


def _preferred(component: Path) -> list[Path]:
    """A component's weight files; the plain ones where fp16 variants lie beside them (as on the hub)."""
    files = sorted(component.glob("*.safetensors"))
    plain = [file for file in files if ".fp16." not in file.name and ".bf16." not in file.name]
    return plain or files


def _local_folder(source: str) -> Path | None:
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if not HUB_ID_PATTERN.match(source):
        return None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source, "model_index.json")
    return Path(cached).parent if isinstance(cached, str) else None
