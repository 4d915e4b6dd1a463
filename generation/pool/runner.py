"""Runs one job spec on this process's models: what a worker process does for each job it is given.

Kept free of any process or queue machinery so it can be called directly (CLI, tests, benchmarks).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from PIL import Image

from generation.config import ModelConfig
from generation.errors import SpecError
from generation.models.adapters import AdapterCache
from generation.models.image_prompts import adapter_in, adapter_of
from generation.models.loading import LoadedModel, ModelCache
from generation.models.model_hash import a1111_model_hash
from generation.models.sources import hub_offline
from generation.models.turbo import turbo_cache, turbo_lora
from generation.operations.describe import Describer, load_describer, run_describe
from generation.operations.imagine import CancelCheck, ImagineResult, run_imagine, run_imagine_together
from generation.operations.inpaint import run_outpaint
from generation.operations.upscale import run_upscale
from generation.operations.vary import run_vary
from generation.outputs import AdapterOutput, ImageOutput, JobOutput, encode_png
from generation.pictures.provenance import ModelStamp, provenance_chunks
from generation.pictures.uploads import open_user_image
from generation.pool.job_runs import release_cached_memory
from generation.specs import (
    AdapterRef,
    DescribeSpec,
    ImagineSpec,
    ImportSpec,
    JobSpec,
    OutpaintSpec,
    PromptedSpec,
    TrainSpec,
    UpscaleSpec,
    VarySpec,
)
from generation.timings import recording, timed
from storage.files import FileStore, StoredFileDamaged, StoredFileMissing

log = logging.getLogger(__name__)


class ProgressCallback(Protocol):
    def __call__(self, step: int, total: int, note: str | None = None) -> None: ...


@dataclass(frozen=True)
class RunContext:
    """What a run function gets besides its spec: the job's id, where its steps go, how to ask
    whether it was cancelled."""

    job_id: int | None = None
    on_step: ProgressCallback | None = None
    should_cancel: CancelCheck | None = None


class JobRunner:
    """Keeps one base model (and the adapters its jobs used) warm and runs specs against it."""

    def __init__(
        self,
        models: dict[str, ModelConfig],
        *,
        device: str = "auto",
        dtype: str = "auto",
        data_dir: Path | None = None,
        read_file: Callable[[str], bytes] | None = None,
        offline: bool | None = None,
    ) -> None:
        """`data_dir`: scratch space for training, and the file store under it unless `read_file`
        fetches files by hash some other way (a Ray worker gets them from the object store)."""
        self.models = ModelCache(models, device=device, dtype=dtype, offline=offline)
        self.data_dir = data_dir
        self.files = FileStore(data_dir / "files") if data_dir and read_file is None else None
        self._fetch = read_file
        self.adapters = AdapterCache(self._read_file)
        self._stamps: dict[str, ModelStamp] = {}
        self._local_files: dict[str, Path] = {}  # hash -> path of server files models name
        self._describer: tuple[str, Describer] | None = None  # the last describer used, kept warm

    @property
    def warm_model(self) -> str | None:
        return self.models.current_name

    def run(
        self,
        spec: JobSpec,
        *,
        job_id: int | None = None,
        on_step: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> JobOutput:
        run_kind = RUNS.get(type(spec))
        if run_kind is None:
            raise SpecError(f"this worker cannot run {spec.kind!r} jobs")
        with recording() as timer:
            with timed("model switch"):
                model = self.models.get(spec.model)  # every kind runs on its model; loaded once, kept warm
            for operation in sorted(spec.needs()):
                model.require(operation)  # what its family cannot do is refused before any file is read
            output = run_kind(self, spec, RunContext(job_id, on_step, should_cancel))
        return replace(output, timings=timer.phases())

    def run_together(
        self,
        specs: list[ImagineSpec],
        *,
        on_step: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> list[JobOutput]:
        """Several jobs that may share one call (generation.pool.batching) in one: one output each,
        with the batch's phases and each job's share of its time."""
        with recording() as timer:
            first = specs[0]
            with timed("model switch"):
                model = self.models.get(first.model)
            self._activate(model, self._with_turbo(model, first))  # one set for all: same files, weights
            with turbo_cache(model.config, model.pipeline) if first.turbo else contextlib.nullcontext():
                results = run_imagine_together(model, specs, on_step=on_step, should_cancel=should_cancel)
            stamp = self._stamp(model)
            outputs = [_job_output([result], stamp, batch_retried=False) for result in results]
        return [replace(output, timings=timer.phases()) for output in outputs]

    def warm_up(self) -> None:
        """Run the first model that asks for `compile` once (one step at its native size), so the
        first user's job does not pay for the compilation (inductor caches it under the data folder)."""
        name = next((name for name, config in self.models.configs.items() if config.compile), None)
        if name is None:
            return
        started = time.perf_counter()
        model = self.models.get(name)
        side = model.resolution
        spec = ImagineSpec(model=name, prompt="a picture", seeds=(0,), width=side, height=side, steps=1,
                           guidance=model.config.guidance)  # fmt: skip
        run_imagine(model, spec)
        log.info("model %s compiled and warmed up in %.0f s", name, time.perf_counter() - started)

    def _read_file(self, digest: str) -> bytes:
        if digest in self._local_files:  # a server file the model's settings name (a turbo LoRA)
            return self._local_files[digest].read_bytes()
        if self._fetch is not None:
            return self._fetch(digest)
        if self.files is None:
            raise SpecError(f"file {digest[:12]}… is not in this worker's file store")
        try:
            return self.files.read(digest)
        except (StoredFileMissing, StoredFileDamaged) as error:  # the store logged it for the operator
            raise SpecError(f"{error}: this job cannot run") from None

    # ------------------------------------------------------------ imagine
    def _imagine(self, spec: ImagineSpec, context: RunContext) -> JobOutput:
        on_step, should_cancel = context.on_step, context.should_cancel
        model = self.models.get(spec.model)
        self._activate(model, self._with_turbo(model, spec))
        control = self._open(spec.control.image, "the control image") if spec.control else None
        image_prompt = None
        if spec.image_prompt is not None:
            pictures = [
                self._open(digest, f"picture {index + 1}")
                for index, digest in enumerate(spec.image_prompt.images)
            ]
            with timed("adapters"):
                image_prompt = (adapter_of(model, offline=self._offline()), pictures)
        with contextlib.ExitStack() as stack:
            if spec.turbo:
                stack.enter_context(turbo_cache(model.config, model.pipeline))
            if image_prompt is not None:
                stack.enter_context(adapter_in(model.pipeline, image_prompt[0]))
            return _halving_on_oom(
                spec,
                self._stamp(model),
                lambda part: run_imagine(
                    model,
                    part,
                    control_image=control,
                    image_prompt=image_prompt,
                    on_step=on_step,
                    should_cancel=should_cancel,
                ),
            )

    def _with_turbo(self, model: LoadedModel, spec: ImagineSpec) -> tuple[AdapterRef, ...]:
        """The job's adapters, and for `--turbo` the model's few-step LoRA (read from its server path)."""
        extra = turbo_lora(model.config) if spec.turbo else None
        if extra is None:
            return spec.adapters
        ref, path = extra
        assert ref.file is not None
        self._local_files[ref.file] = path
        return (*spec.adapters, ref)

    # ------------------------------------------------------------ vary, outpaint, upscale
    def _vary(self, spec: VarySpec, context: RunContext) -> JobOutput:
        on_step, should_cancel = context.on_step, context.should_cancel
        model = self.models.get(spec.model)
        self._activate(model, spec.adapters)
        source = self._open(spec.source, "the source image")
        mask = self._open(spec.mask, "the mask") if spec.mask else None
        return _halving_on_oom(
            spec,
            self._stamp(model),
            lambda part: run_vary(
                model, part, source, mask=mask, on_step=on_step, should_cancel=should_cancel
            ),
        )

    def _outpaint(self, spec: OutpaintSpec, context: RunContext) -> JobOutput:
        on_step, should_cancel = context.on_step, context.should_cancel
        model = self.models.get(spec.model)
        self._activate(model, spec.adapters)
        source = self._open(spec.source, "the source image")
        return _halving_on_oom(
            spec,
            self._stamp(model),
            lambda part: run_outpaint(model, part, source, on_step=on_step, should_cancel=should_cancel),
        )

    def _upscale(self, spec: UpscaleSpec, context: RunContext) -> JobOutput:
        on_step, should_cancel = context.on_step, context.should_cancel
        model = self.models.get(spec.model)
        self._activate(model, spec.adapters)
        source = self._open(spec.source, "the source image")
        result = run_upscale(model, spec, source, on_step=on_step, should_cancel=should_cancel)
        return _job_output([result], self._stamp(model), batch_retried=False)

    def _stamp(self, model: LoadedModel) -> ModelStamp:
        """What a picture's infotext says about its model (the checkpoint's hash: once per file)."""
        config = model.config
        if config.name not in self._stamps:
            short_hash = a1111_model_hash(config.source, self.data_dir)
            self._stamps[config.name] = ModelStamp(config.name, short_hash, config.clip_skip)
        return self._stamps[config.name]

    def _activate(self, model: LoadedModel, adapters: tuple[AdapterRef, ...]) -> None:
        """Switch the job's LoRAs and embeddings on (and every other one off)."""
        with timed("adapters"):
            self.adapters.activate(model.pipeline, adapters)

    def _open(self, digest: str, what: str) -> Image.Image:
        return open_user_image(self._read_file(digest), what)

    # ------------------------------------------------------------ import
    def _import(self, spec: ImportSpec, context: RunContext) -> JobOutput:
        """Load the file into the base model for real (shapes must fit), then switch it off again."""
        started = time.perf_counter()
        model = self.models.get(spec.model)
        self._activate(model, (spec.ref(),))  # SpecError when it does not fit
        self.adapters.activate(model.pipeline, ())
        return JobOutput(images=(), elapsed_s=time.perf_counter() - started)

    # ------------------------------------------------------------ describe
    def _describe(self, spec: DescribeSpec, context: RunContext) -> JobOutput:
        started = time.perf_counter()
        model = self.models.get(spec.model)
        source = model.config.describer
        assert source is not None  # run() checked what the spec needs of its model
        if self._describer is None or self._describer[0] != source:
            self._describer = None  # free the old one before loading the next
            with timed("model switch"):
                dtype = getattr(model.pipeline, "dtype", torch.float32)
                self._describer = (
                    source,
                    load_describer(source, device=model.device, dtype=dtype, offline=self._offline()),
                )
        image = self._open(spec.source, "the picture")
        with timed("describing"):
            suggestions = run_describe(self._describer[1], image)
        return JobOutput(images=(), elapsed_s=time.perf_counter() - started, texts=suggestions)

    def _offline(self) -> bool:
        offline = self.models.offline
        return hub_offline() if offline is None else offline

    # ------------------------------------------------------------ train
    def _train(self, spec: TrainSpec, context: RunContext) -> JobOutput:
        job_id, on_step, should_cancel = context.job_id, context.on_step, context.should_cancel
        # Imported here: only training workers need peft and the training code.
        from generation.training.loop import spec_fingerprint, train_adapter

        model = self.models.get(spec.model)
        self.adapters.reset()  # the LoRA trainer copies the UNet: no user's LoRA may ride along
        photos = [
            open_user_image(self._read_file(digest), f"photo {i + 1}") for i, digest in enumerate(spec.images)
        ]
        work = self.data_dir if self.data_dir else Path(tempfile.gettempdir()) / "dreamcord"
        # Keyed by job and spec: a retried job finds its own checkpoint and nothing else.
        run_name = f"job-{job_id}-{spec_fingerprint(spec)}" if job_id is not None else spec_fingerprint(spec)
        trained = train_adapter(
            model,
            spec,
            photos,
            checkpoint_path=work / "training" / run_name / "checkpoint.safetensors",
            class_cache=work / "class-images",
            on_progress=(lambda p: on_step(p.step, p.total, p.describe())) if on_step else None,
            should_cancel=should_cancel,
        )
        return JobOutput(
            images=tuple(
                ImageOutput(encode_png(image), None, image.width, image.height) for image in trained.samples
            ),
            elapsed_s=trained.elapsed_s,
            adapter=AdapterOutput(trained.kind, trained.safetensors, trained.trigger, trained.final_loss),
        )


# One row per job kind: a new kind is a spec module (generation/specs), a run function and this row.
RUNS: dict[type[Any], Callable[[JobRunner, Any, RunContext], JobOutput]] = {
    ImagineSpec: JobRunner._imagine,
    VarySpec: JobRunner._vary,
    OutpaintSpec: JobRunner._outpaint,
    UpscaleSpec: JobRunner._upscale,
    TrainSpec: JobRunner._train,
    ImportSpec: JobRunner._import,
    DescribeSpec: JobRunner._describe,
}

SpecT = TypeVar("SpecT", bound=PromptedSpec)


def _halving_on_oom(spec: SpecT, stamp: ModelStamp, render: Callable[[SpecT], ImagineResult]) -> JobOutput:
    """Render all seeds in one batch; out of GPU memory, render each half alone. Each seed has its
    own generator, so the halves give the same pictures; a second OOM fails the job."""
    try:
        return _job_output([render(spec)], stamp, batch_retried=False)
    except torch.OutOfMemoryError:
        if len(spec.seeds) == 1:
            raise
    log.warning("out of memory with %d images; retrying in halves", len(spec.seeds))
    release_cached_memory()
    middle = len(spec.seeds) // 2
    halves = [spec.model_copy(update={"seeds": part}) for part in (spec.seeds[:middle], spec.seeds[middle:])]
    return _job_output([render(half) for half in halves], stamp, batch_retried=True)


def _job_output(results: list[ImagineResult], stamp: ModelStamp, *, batch_retried: bool) -> JobOutput:
    with timed("picture encoding"):
        images = tuple(
            ImageOutput(
                encode_png(image, provenance_chunks(result.spec, seed, image.width, image.height, stamp)),
                seed,
                image.width,
                image.height,
            )
            for result in results
            for image, seed in zip(result.images, result.spec.seeds, strict=True)
        )
    return JobOutput(
        images=images,
        elapsed_s=sum(result.elapsed_s for result in results),
        nsfw=tuple(flag for result in results for flag in result.nsfw),
        batch_retried=batch_retried,
        tokens=results[0].tokens,
    )
