"""The training loop shared by both methods: sample a batch, noise it, predict, step, checkpoint."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from PIL import Image

from generation.errors import JobCancelled
from generation.models.loading import LoadedModel
from generation.specs import TrainSpec
from generation.training.checkpoints import Checkpoint
from generation.training.data import LatentSet, class_images, encode_images
from generation.training.methods import TrainingMethod, make_method, serialise

log = logging.getLogger(__name__)

ADAPTER_FORMAT_VERSION = "1"


@dataclass(frozen=True)
class TrainingProgress:
    step: int
    total: int
    loss: float
    seconds_left: float

    def describe(self) -> str:
        return f"loss {self.loss:.4f}, about {_duration(self.seconds_left)} left"


@dataclass(frozen=True)
class TrainedAdapter:
    kind: str  # "lora" | "embedding"
    safetensors: bytes
    trigger: str
    samples: list[Image.Image]
    final_loss: float
    elapsed_s: float


ProgressCallback = Callable[[TrainingProgress], None]


def train_adapter(
    model: LoadedModel,
    spec: TrainSpec,
    photos: list[Image.Image],
    *,
    checkpoint_path: Path,
    class_cache: Path,
    on_progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> TrainedAdapter:
    """Train `spec`'s token on `photos` (square, at spec.resolution); resume from a checkpoint if any."""
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # LoRA's random init from the job's seed, not the process's
        torch.manual_seed(spec.seed)
        method = make_method(model, spec)
    instances = encode_images(model, photos, flip=spec.flip)
    classes = _prior_latents(model, spec, class_cache)
    noise_schedule = DDPMScheduler.from_config(model.scheduler_config)
    optimizer = torch.optim.AdamW(method.parameters, lr=spec.learning_rate, weight_decay=0.0)
    checkpoint = Checkpoint(checkpoint_path, fingerprint=spec_fingerprint(spec))
    first_step = checkpoint.restore(method.parameters, optimizer)
    loss = float("nan")
    loop_started = time.perf_counter()
    for step in range(first_step, spec.steps):
        if should_cancel is not None and should_cancel():
            raise JobCancelled()
        loss = _training_step(method, spec, instances, classes, noise_schedule, optimizer, step)
        done = step + 1
        if done % spec.checkpoint_every == 0 and done < spec.steps:
            checkpoint.save(done, method.parameters, optimizer)
        if on_progress is not None:
            per_step = (time.perf_counter() - loop_started) / (done - first_step)
            on_progress(TrainingProgress(done, spec.steps, loss, per_step * (spec.steps - done)))
    samples = render_samples(model, method, spec)
    data = serialise(method.export(), adapter_metadata(model, spec))
    checkpoint.remove()
    return TrainedAdapter(spec.method, data, spec.trigger, samples, loss, time.perf_counter() - started)


def spec_fingerprint(spec: TrainSpec) -> str:
    return hashlib.sha256(spec.to_json().encode()).hexdigest()[:16]


def step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step) % 2**63


def _prior_latents(model: LoadedModel, spec: TrainSpec, class_cache: Path) -> LatentSet | None:
    if spec.method != "lora" or not spec.prior_preservation or spec.class_images == 0:
        return None
    images = class_images(model, spec.class_noun, spec.class_images, class_cache)
    return encode_images(model, images, flip=False)


def _training_step(
    method: TrainingMethod,
    spec: TrainSpec,
    instances: LatentSet,
    classes: LatentSet | None,
    noise_schedule: DDPMScheduler,
    optimizer: torch.optim.Optimizer,
    step: int,
) -> float:
    generator = torch.Generator("cpu").manual_seed(step_seed(spec.seed, step))
    batch = min(spec.batch_size, len(instances))
    picks = torch.randperm(len(instances), generator=generator)[:batch]
    latents = instances.sample(picks, generator)
    embeddings = method.instance_embeddings(batch, generator)
    if classes is not None:
        class_picks = torch.randint(len(classes), (batch,), generator=generator)
        latents = torch.cat([latents, classes.sample(class_picks, generator)])
        embeddings = embeddings + method.class_embeddings(batch)
    unet = method.unet
    latents = latents.to(unet.device, unet.dtype)
    noise = torch.randn(latents.shape, generator=generator).to(latents.device, latents.dtype)
    timesteps = torch.randint(
        noise_schedule.config.num_train_timesteps, (latents.shape[0],), generator=generator
    ).to(latents.device)
    noisy = noise_schedule.add_noise(latents, noise, timesteps)
    with _autocast(unet.device, unet.dtype):
        prediction = unet(noisy, timesteps, **embeddings.unet_arguments(spec.resolution, unet.dtype)).sample
    target = (
        noise_schedule.get_velocity(latents, noise, timesteps)
        if noise_schedule.config.prediction_type == "v_prediction"
        else noise
    )
    loss = F.mse_loss(prediction[:batch].float(), target[:batch].float())
    if classes is not None:  # DreamBooth's prior-preservation term keeps the class noun's meaning
        loss = loss + spec.prior_weight * F.mse_loss(prediction[batch:].float(), target[batch:].float())
    loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward carries no annotations
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def _autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager[object]:
    # Half-precision models train under autocast so the fp32 trainable weights meet fp16 activations.
    if device.type == "cuda" and dtype != torch.float32:
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


@torch.no_grad()
def render_samples(model: LoadedModel, method: TrainingMethod, spec: TrainSpec) -> list[Image.Image]:
    """A few images of "a <token>" straight from the trained weights, shown when training ends."""
    if spec.samples == 0:
        return []
    from generation.models.schedulers import make_scheduler

    pipeline = method.sampling_pipeline(model.pipeline)
    pipeline.scheduler = make_scheduler(model.config.scheduler, model.scheduler_config)
    seeds = [spec.seed + index for index in range(spec.samples)]
    output = pipeline(
        prompt=[method.sample_prompt()] * len(seeds),
        num_inference_steps=spec.sample_steps,
        guidance_scale=model.config.guidance,
        height=spec.resolution,
        width=spec.resolution,
        generator=[torch.Generator("cpu").manual_seed(seed) for seed in seeds],
    )
    return list(output.images)


def adapter_metadata(model: LoadedModel, spec: TrainSpec) -> dict[str, str]:
    """Written into the safetensors header: enough to import the file elsewhere and know what it is."""
    return {
        "format": "pt",
        "dreamcord.format_version": ADAPTER_FORMAT_VERSION,
        "dreamcord.method": spec.method,
        "dreamcord.token": spec.token,
        "dreamcord.class_noun": spec.class_noun,
        "dreamcord.trigger": spec.trigger,
        "dreamcord.base_model": model.config.name,
        "dreamcord.steps": str(spec.steps),
    }


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
