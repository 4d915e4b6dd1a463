"""`--turbo` on the worker: what a model's `turbo` settings add to a job beyond its steps, sampler
and guidance (those are in the spec already, generation.specs.imagine):
- a few-step LoRA (LCM, Lightning, Hyper-SD, TCD) from the server, activated for the job next to
  the user's own adapters (cached like them, so switching costs `set_adapters`, not a reload);
- first-block caching on transformer models (diffusers' `FirstBlockCacheConfig`): the rest of the
  blocks are skipped at a step where the first block's output barely changed.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from generation.config import ModelConfig
from generation.errors import SpecError
from generation.specs import AdapterRef

TURBO_ADAPTER_NAME = "turbo"


def turbo_lora(config: ModelConfig) -> tuple[AdapterRef, Path] | None:
    """The job's extra adapter for `--turbo` (and the file it is read from), if the model names one."""
    if config.turbo is None or config.turbo.lora is None:
        return None
    path = Path(config.turbo.lora).expanduser()
    if not path.is_file():
        raise SpecError(f"model {config.name!r}: its turbo LoRA {path} is missing on this worker")
    digest = _sha256(str(path), path.stat().st_mtime_ns, path.stat().st_size)
    ref = AdapterRef(name=TURBO_ADAPTER_NAME, weight=config.turbo.lora_weight, kind="lora", file=digest)
    return ref, path


@lru_cache(maxsize=8)
def _sha256(
    path: str, mtime_ns: int, size: int
) -> str:  # keyed by mtime and size: a replaced file is read again
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def turbo_cache(config: ModelConfig, pipeline: Any) -> Iterator[None]:
    """First-block caching on the denoiser for the job, when the model's turbo asks for it."""
    threshold = config.turbo.first_block_cache if config.turbo else None
    denoiser = getattr(pipeline, "transformer", None)
    if threshold is None or denoiser is None or not hasattr(denoiser, "enable_cache"):
        yield
        return
    from diffusers import FirstBlockCacheConfig

    denoiser.enable_cache(FirstBlockCacheConfig(threshold=threshold))
    try:
        yield
    finally:
        denoiser.disable_cache()
