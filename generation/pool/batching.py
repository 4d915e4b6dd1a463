"""Which queued jobs may share one pipeline call (cross-user batching), decided from specs alone.

Two /imagine jobs share a call when everything the call takes once is the same: model, size, steps,
sampler, guidance, tiling, --turbo, --stop and the set of adapters (file, kind, weight); prompts, negative
prompts, chaos and seeds are per image. The pool batches only the run of compatible jobs at the
head of the fair order (a job never starts before one that is ahead of it), up to the model's
`batch_images` pictures in one call.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Protocol, TypeVar

from generation.config import ModelConfig
from generation.pool.fair_queues import FairQueues, Waiting
from generation.specs import ImagineSpec, JobSpec

BatchKey = tuple[Hashable, ...]


def batch_key(spec: JobSpec) -> BatchKey | None:
    """What must be equal for jobs to share a call; None for a job that runs alone (not an /imagine,
    or one with a control picture: its ControlNet pipeline takes one map per call; or with image
    prompts: the adapter goes into the UNet for that job alone)."""
    if type(spec) is not ImagineSpec or spec.control is not None or spec.image_prompt is not None:
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


class Queued(Waiting, Protocol):
    spec: JobSpec
    queued_at: float  # time.monotonic() when it was queued


QueuedT = TypeVar("QueuedT", bound=Queued)


def take_partners(
    queues: FairQueues[QueuedT], first: QueuedT, models: dict[str, ModelConfig]
) -> list[QueuedT]:
    """Take from `queues` the jobs right behind `first` in the fair order that can share its call, up
    to its model's picture limit; the first one that cannot ends the run, so nobody jumps the queue."""
    key = batch_key(first.spec)
    limit = batch_limit(first.spec, models)
    partners: list[QueuedT] = []
    pictures = images_of(first.spec)
    while key is not None and (after := queues.peek_next()) is not None:
        if batch_key(after.spec) != key or pictures + images_of(after.spec) > limit:
            break
        partners.append(after)
        pictures += images_of(after.spec)
        popped = queues.pop_next()
        assert popped is after
    return partners


def partner_wait(queues: FairQueues[QueuedT], wait_s: float, models: dict[str, ModelConfig]) -> float:
    """Seconds the next job should still wait for a partner (`batch_wait_s` after it was queued): more
    than 0 only when it could share a call and none is right behind it yet."""
    head = queues.peek_next()
    if wait_s <= 0 or head is None or (key := batch_key(head.spec)) is None:
        return 0.0
    if batch_limit(head.spec, models) < 2 * images_of(head.spec):
        return 0.0
    behind = queues.order()[1:2]
    if any(batch_key(queued.spec) == key for queued in behind):
        return 0.0
    return max(0.0, head.queued_at + wait_s - time.monotonic())
