"""Runs one job spec on this process's models: what a worker process does for each job it is given.

Kept free of any process or queue machinery so it can be called directly (CLI, tests, benchmarks).
"""

from __future__ import annotations

import logging

import torch

from generation.config import ModelConfig
from generation.errors import SpecError
from generation.imagine import CancelCheck, ImagineResult, StepCallback, run_imagine
from generation.models import ModelCache
from generation.outputs import ImageOutput, JobOutput, encode_png
from generation.specs import ImagineSpec, JobSpec

log = logging.getLogger(__name__)


class JobRunner:
    """Keeps one base model warm and runs specs against it."""

    def __init__(self, models: dict[str, ModelConfig], *, device: str = "auto", dtype: str = "auto") -> None:
        self.models = ModelCache(models, device=device, dtype=dtype)

    @property
    def warm_model(self) -> str | None:
        return self.models.current_name

    def run(
        self, spec: JobSpec, *, on_step: StepCallback | None = None, should_cancel: CancelCheck | None = None
    ) -> JobOutput:
        if isinstance(spec, ImagineSpec):
            return self._imagine(spec, on_step, should_cancel)
        raise SpecError(f"this worker cannot run {spec.kind!r} jobs")

    def _imagine(
        self, spec: ImagineSpec, on_step: StepCallback | None, should_cancel: CancelCheck | None
    ) -> JobOutput:
        model = self.models.get(spec.model)
        try:
            results = [run_imagine(model, spec, on_step=on_step, should_cancel=should_cancel)]
        except torch.OutOfMemoryError:
            if len(spec.seeds) == 1:
                raise
            # Each seed has its own generator, so halves give the same images; a second OOM fails the job.
            log.warning("out of memory with %d images; retrying in halves", len(spec.seeds))
            _release_cached_memory()
            middle = len(spec.seeds) // 2
            halves = [
                spec.model_copy(update={"seeds": part}) for part in (spec.seeds[:middle], spec.seeds[middle:])
            ]
            results = [
                run_imagine(model, half, on_step=on_step, should_cancel=should_cancel) for half in halves
            ]
        return _job_output(results, batch_retried=len(results) > 1)


def _job_output(results: list[ImagineResult], *, batch_retried: bool) -> JobOutput:
    return JobOutput(
        images=tuple(
            ImageOutput(encode_png(image), seed, image.width, image.height)
            for result in results
            for image, seed in zip(result.images, result.spec.seeds, strict=True)
        ),
        elapsed_s=sum(result.elapsed_s for result in results),
        nsfw=tuple(flag for result in results for flag in result.nsfw),
        batch_retried=batch_retried,
    )


def _release_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
