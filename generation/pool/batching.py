"""Which queued jobs may share one pipeline call (cross-user batching), decided from specs alone.

Two /imagine jobs share a call when everything the call takes once is the same: model, size, steps,
sampler, guidance, tiling, --turbo, --stop and the set of adapters (file, kind, weight); prompts, negative
prompts, chaos and seeds are per image. The pool batches only the run of compatible jobs at the
head of the fair order (a job never starts before one that is ahead of it), up to the model's
`batch_images` pictures in one call.
"""

from __future__ import annotations

from collections.abc import Hashable

from generation.config import ModelConfig
from generation.specs import ImagineSpec, JobSpec

BatchKey = tuple[Hashable, ...]


def batch_key(spec: JobSpec) -> BatchKey | None:
    """What must be equal for jobs to share a call; None for a job that runs alone (not an /imagine,
    or one with a control picture: its ControlNet pipeline takes one map per call)."""
    if type(spec) is not ImagineSpec or spec.control is not None:
        return None
    adapters = tuple(sorted((ref.kind or "", ref.file or "", ref.weight) for ref in spec.adapters))
    return (
        spec.model,
        spec.width,
        spec.height,
        spec.steps,
        spec.scheduler,
        spec.guidance,
        spec.tile,
        spec.turbo,
        spec.stop,
        adapters,
    )


def batch_limit(spec: JobSpec, models: dict[str, ModelConfig]) -> int:
    """Pictures one call of the spec's model may render (its `batch_images`; 0 or 1: no batching)."""
    config = models.get(getattr(spec, "model", ""))
    return config.batch_images if config is not None else 0


def images_of(spec: JobSpec) -> int:
    return len(getattr(spec, "seeds", ())) or 1
