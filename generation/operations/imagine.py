"""Text to image: build an `ImagineSpec` from a parsed prompt, and run one (validate, prepare, run)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline
from PIL import Image

from generation.errors import JobCancelled, SpecError
from generation.models.adapters import expand_tokens
from generation.models.families import Embeddings, PromptRequest, encode_prompt
from generation.models.image_prompts import ImagePromptAdapter, image_prompt_inputs
from generation.models.loading import LoadedModel
from generation.models.previews import PreviewDecoder
from generation.models.schedulers import make_scheduler
from generation.models.weighted_prompts import encode_weighted, prompt_tokens
from generation.operations.preview import BatchPreviewSink, PreviewSink, preview_png
from generation.operations.seamless import tileable_rendering
from generation.outputs import PromptTokens
from generation.pictures.grid import compose_grid
from generation.prompt_weights import negative_fragments, weigh
from generation.specs import MAX_AREA_FACTOR, ImagineSpec, PromptedSpec
from generation.timings import step_ended, timed, timed_pipeline_call

log = logging.getLogger(__name__)

CHAOS_STRENGTH = 0.5  # at --chaos 100, each image's text embedding gets noise of half its own spread
_CHAOS_SEED_SALT = 0x5EED_C4A0  # keeps the chaos noise stream apart from the latent noise stream

StepCallback = Callable[[int, int], None]
PromptedPipeline: TypeAlias = (
    DiffusionPipeline  # txt2img, img2img, inpaint, ControlNet: all share encode_prompt
)
CancelCheck = Callable[[], bool]
SpecT = TypeVar("SpecT", bound=PromptedSpec)


@dataclass
class ImagineResult:
    """The images of one imagine job, in seed order, with what the safety checker said of each."""

    spec: PromptedSpec
    images: list[Image.Image]
    elapsed_s: float
    nsfw: list[bool] = field(default_factory=list)
    tokens: PromptTokens | None = None  # the prompt's length in its text encoder's tokens

    def grid(self) -> Image.Image:
        return compose_grid(self.images)


def run_imagine(
    model: LoadedModel,
    spec: ImagineSpec,
    *,
    control_image: Image.Image | None = None,
    image_prompt: tuple[ImagePromptAdapter, list[Image.Image]] | None = None,
    on_step: StepCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> ImagineResult:
    """Render every image of `spec` in one batched pipeline call with one generator per seed.

    `control_image` is the picture `spec.control` names (the runner reads it from the file store);
    `image_prompt` the model's IP-Adapter, in its UNet (image_prompts.adapter_in), and the pictures
    `spec.image_prompt` names.
    """
    pipeline: PromptedPipeline = model.pipeline
    inputs: dict[str, Any] = {"width": spec.width, "height": spec.height}
    if spec.image_prompt is not None:
        if image_prompt is None:
            raise ValueError("an ImagineSpec with image prompts needs the adapter and the pictures")
        adapter, pictures = image_prompt
        guided = spec.guidance > 1.0 and pipeline.unet.config.time_cond_proj_dim is None
        inputs |= image_prompt_inputs(
            pipeline, adapter, spec.image_prompt, pictures, family=model.family.name,
            count=len(spec.seeds), guided=guided,
        )  # fmt: skip
    if spec.control is not None:
        from generation.operations.control import control_map, control_pipeline

        if control_image is None:
            raise ValueError("an ImagineSpec with control needs the control image")
        pipeline = control_pipeline(model, spec.control.mode)
        inputs["image"] = control_map(spec.control, control_image, (spec.width, spec.height))
        inputs["controlnet_conditioning_scale"] = spec.control.scale
    # Only families that tile get here with --tile (a UNet of convolutions); Flux has no `unet`.
    tiling = tileable_rendering(pipeline.unet, pipeline.vae) if spec.tile else contextlib.nullcontext()
    with tiling:
        return render_batch(model, pipeline, spec, on_step, should_cancel, **inputs)


def run_imagine_together(
    model: LoadedModel,
    specs: list[ImagineSpec],
    *,
    on_step: StepCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> list[ImagineResult]:
    """Several users' /imagine jobs in one pipeline call (cross-user batching: generation.pool.batching
    says which may share one). Each job's pictures are what it gets alone, within the tolerance of a
    grid against single runs. `BatchMismatch` when their prompt embeddings differ in length (one
    prompt past a CLIP window): run them apart."""
    first = specs[0]
    pipeline: PromptedPipeline = model.pipeline
    tiling = tileable_rendering(pipeline.unet, pipeline.vae) if first.tile else contextlib.nullcontext()
    with tiling:
        return render_specs(
            model, pipeline, specs, on_step, should_cancel, width=first.width, height=first.height
        )


class BatchMismatch(SpecError):
    """Jobs that cannot share a call after all (their prompt embeddings differ in length)."""


def render_batch(
    model: LoadedModel,
    pipeline: PromptedPipeline,
    spec: PromptedSpec,
    on_step: StepCallback | None,
    should_cancel: CancelCheck | None,
    *,
    check_safety: bool = True,
    **inputs: Any,
) -> ImagineResult:
    """What every prompted job does: check the spec, give the pipeline a fresh scheduler, encode the
    prompts, then one batched call with a generator per seed, reporting steps and honouring cancel.
    `inputs` are the pipeline's own arguments (size for txt2img; image and strength for img2img)."""
    (result,) = render_specs(
        model, pipeline, [spec], on_step, should_cancel, check_safety=check_safety, **inputs
    )
    return result


def render_specs(
    model: LoadedModel,
    pipeline: PromptedPipeline,
    specs: list[SpecT],
    on_step: StepCallback | None,
    should_cancel: CancelCheck | None,
    *,
    check_safety: bool = True,
    **inputs: Any,
) -> list[ImagineResult]:
    """`render_batch` for one spec or several that share the call's settings (their prompts and seeds
    side by side in the batch); one result per spec."""
    for spec in specs:
        check_imagine(model, spec)
    first = specs[0]
    started = time.perf_counter()
    pipeline.scheduler = make_scheduler(first.scheduler, model.scheduler_config)
    with timed("text encoding"):
        encoded = [encode_prompts(model, pipeline, spec) for spec in specs]
    embeddings = _side_by_side([embeddings for embeddings, _ in encoded])
    with timed_pipeline_call():
        output = pipeline(
            **embeddings,
            num_inference_steps=first.steps,
            guidance_scale=first.guidance,
            generator=[torch.Generator("cpu").manual_seed(seed) for spec in specs for seed in spec.seeds],
            callback_on_step_end=step_reporter(
                on_step,
                should_cancel,
                (first.width, first.height),
                first.stop,
                previews=model.preview_decoder,
            ),
            **inputs,
        )
    images = list(output.images)
    with timed("safety check"):
        nsfw = model.nsfw_flags(images) if check_safety else [False] * len(images)
    elapsed = time.perf_counter() - started
    log.debug("%s %s: %d images in %.2fs", type(first).__name__, first.model, len(images), elapsed)
    results, start = [], 0
    for spec, (_, tokens) in zip(specs, encoded, strict=True):
        end = start + len(spec.seeds)
        share = elapsed * len(spec.seeds) / len(images)  # a batch's time, shared by pictures
        results.append(ImagineResult(spec, images[start:end], share, nsfw[start:end], tokens))
        start = end
    return results


def _side_by_side(per_spec: list[Embeddings]) -> Embeddings:
    if len(per_spec) == 1:
        return per_spec[0]
    for key in per_spec[0]:
        if len({embeddings[key].shape[1:] for embeddings in per_spec}) > 1:
            raise BatchMismatch("these jobs' prompts encode to different lengths; they run one by one")
    return {key: torch.cat([embeddings[key] for embeddings in per_spec]) for key in per_spec[0]}


def check_imagine(model: LoadedModel, spec: PromptedSpec) -> None:
    if spec.model != model.config.name:
        raise SpecError(f"spec is for model {spec.model!r} but {model.config.name!r} is loaded")
    if spec.width * spec.height > MAX_AREA_FACTOR * model.resolution**2:
        side = 2 * model.resolution
        raise SpecError(
            f"{spec.width}x{spec.height} is too large for model {spec.model!r}: at most about "
            f"{side}x{side} pixels in all (it was trained at {model.resolution}x{model.resolution})"
        )
    unresolved = [f"<{ref.name}>" for ref in spec.adapters if not ref.resolved]
    if unresolved:
        raise SpecError(f"{', '.join(unresolved)}: personal tokens must be looked up in a library first")


def encode_prompts(
    model: LoadedModel, pipeline: PromptedPipeline, spec: PromptedSpec
) -> tuple[Embeddings, PromptTokens]:
    """The pipeline's embedding arguments for every image, as the model's family makes them (with
    chaos applied to each image's text embedding), the negative ones when CFG is on, and the
    prompt's token count. A plain prompt that fits one window is encoded by the pipeline itself;
    weights (`::`, `(word:1.3)`) and longer prompts go through compel."""
    text = expand_tokens(spec.prompt, spec.adapters)
    negative_text = expand_tokens(spec.negative_prompt, spec.adapters)
    positive = weigh(text)
    negative = negative_fragments(negative_text, positive.avoided)
    request = PromptRequest(
        prompt=text,
        negative=negative_text or None,
        count=len(spec.seeds),
        guided=spec.guidance > 1.0,
        clip_skip=model.config.clip_skip,
    )
    tokens = prompt_tokens(model.family, pipeline, positive.text)
    negative_tokens = prompt_tokens(model.family, pipeline, negative_text) if negative_text else None
    plain = positive.plain and (
        negative == ((negative_text, 1.0),) if negative_text else not positive.avoided
    )
    if plain and not tokens.chunked and not (negative_tokens and negative_tokens.chunked):
        embeddings = encode_prompt(model.family, pipeline, request)
    else:
        embeddings = encode_weighted(model.family, pipeline, request, positive, negative)
    chaos = spec.chaos if isinstance(spec, ImagineSpec) else 0
    embeddings["prompt_embeds"] = apply_chaos(embeddings["prompt_embeds"], spec.seeds, chaos)
    return embeddings, tokens


def apply_chaos(embeds: torch.Tensor, seeds: tuple[int, ...], chaos: int) -> torch.Tensor:
    """Perturb each image's text embedding by noise drawn from its own seed, scaled by `chaos`.

    Drawn per seed, so an image keeps its look when rendered alone; the start token is left alone
    because it is identical for every prompt.
    """
    if chaos == 0:
        return embeds
    scale = CHAOS_STRENGTH * chaos / 100
    perturbed = embeds.clone()
    for index, seed in enumerate(seeds):
        generator = torch.Generator("cpu").manual_seed(seed ^ _CHAOS_SEED_SALT)
        noise = torch.randn(embeds.shape[1:], generator=generator).to(embeds.device, embeds.dtype)
        noise[0] = 0
        perturbed[index] += scale * embeds[index, 1:].std() * noise
    return perturbed


def step_reporter(
    on_step: StepCallback | None,
    should_cancel: CancelCheck | None,
    size: tuple[int, int] = (0, 0),
    stop_percent: int = 100,
    previews: Callable[[], PreviewDecoder] | None = None,
) -> Callable[[StableDiffusionPipeline, int, int, dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """A diffusers `callback_on_step_end` that reports (step, total), stops when cancelled, and ends the
    denoising after `stop_percent` of the steps (--stop: the pipeline skips the rest and decodes the
    latents as they are)."""

    def callback(
        pipeline: StableDiffusionPipeline, step: int, timestep: int, tensors: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        if previews is not None and "latents" in tensors:  # before the step report carries it
            latents = tensors["latents"]
            if isinstance(on_step, BatchPreviewSink) and on_step.preview_due():
                decoder = previews()
                on_step.previews(
                    [preview_png(decoder, pipeline, latents[row : row + 1], size) for row in on_step.rows]
                )
            elif isinstance(on_step, PreviewSink) and on_step.preview_due():
                on_step.preview(preview_png(previews(), pipeline, latents, size))
        if on_step is not None:
            on_step(step + 1, pipeline.num_timesteps)
        if should_cancel is not None and should_cancel():
            raise JobCancelled()  # raised, not pipeline._interrupt: that would still decode the latents
        if stop_percent < 100 and step + 1 >= max(1, round(pipeline.num_timesteps * stop_percent / 100)):
            pipeline._interrupt = True  # the steps left are skipped; what is there is decoded
        step_ended()
        return tensors

    return callback
