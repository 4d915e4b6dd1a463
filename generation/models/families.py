"""What differs per model family when it runs: the pipeline for each task and how prompts become
the pipeline's embedding arguments. Everything else (imagine, vary, region, outpaint, upscale)
goes through these two instead of naming a family's classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from diffusers import (
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    AutoPipelineForText2Image,
    DiffusionPipeline,
)

from generation.models.family_facts import FamilyFacts

Task = Literal["text2img", "img2img", "inpaint"]
# diffusers' AutoPipelines map a pipeline of any family to that family's pipeline for a task.
_AUTO_PIPELINES: dict[Task, Any] = {
    "text2img": AutoPipelineForText2Image,
    "img2img": AutoPipelineForImage2Image,
    "inpaint": AutoPipelineForInpainting,
}


def task_pipeline(base: DiffusionPipeline, task: Task) -> DiffusionPipeline:
    """The family's pipeline for `task`, sharing every weight tensor with `base` (`from_pipe`)."""
    pipeline: DiffusionPipeline = _AUTO_PIPELINES[task].from_pipe(base)
    pipeline.set_progress_bar_config(disable=True)  # from_pipe does not carry it over
    return pipeline


Embeddings = dict[str, torch.Tensor]  # the pipeline's own keyword arguments


def _encode_sd1(pipeline: Any, prompt: str, negative: str | None, count: int, guided: bool) -> Embeddings:
    positive, negative_embeds = pipeline.encode_prompt(
        prompt=prompt,
        device=pipeline.device,
        num_images_per_prompt=count,
        do_classifier_free_guidance=guided,
        negative_prompt=negative,
    )
    embeddings = {"prompt_embeds": positive}
    if negative_embeds is not None:
        embeddings["negative_prompt_embeds"] = negative_embeds
    return embeddings


def _encode_sdxl(pipeline: Any, prompt: str, negative: str | None, count: int, guided: bool) -> Embeddings:
    """Both text encoders (their hidden states side by side) and the second one's pooled output."""
    positive, negative_embeds, pooled, negative_pooled = pipeline.encode_prompt(
        prompt=prompt,
        device=pipeline.device,
        num_images_per_prompt=count,
        do_classifier_free_guidance=guided,
        negative_prompt=negative,
    )
    embeddings = {"prompt_embeds": positive, "pooled_prompt_embeds": pooled}
    if guided:
        embeddings |= {
            "negative_prompt_embeds": negative_embeds,
            "negative_pooled_prompt_embeds": negative_pooled,
        }
    return embeddings


_ENCODERS: dict[str, Callable[[Any, str, str | None, int, bool], Embeddings]] = {
    "sd1": _encode_sd1,
    "sdxl": _encode_sdxl,
}


@torch.no_grad()  # outside the pipeline's own no_grad: without it autograd would record the text encoder
def encode_prompt(
    family: FamilyFacts,
    pipeline: DiffusionPipeline,
    prompt: str,
    negative: str | None,
    count: int,
    *,
    guided: bool,
) -> Embeddings:
    """The pipeline arguments that carry `prompt` (and `negative`, when guided) for `count` images."""
    return _ENCODERS[family.name](pipeline, prompt, negative, count, guided)
