"""What differs per model family when it runs: the pipeline for each task and how prompts become
the pipeline's embedding arguments. Everything else (imagine, vary, region, outpaint, upscale)
goes through these two instead of naming a family's classes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import diffusers
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


def text2img_class(family: FamilyFacts) -> Any:
    """The diffusers class of the family's text-to-image pipeline (what single files load into)."""
    return getattr(diffusers, family.pipeline_classes[0])


def task_pipeline(base: DiffusionPipeline, task: Task) -> DiffusionPipeline:
    """The family's pipeline for `task`, sharing every weight tensor with `base` (`from_pipe`)."""
    pipeline: DiffusionPipeline = _AUTO_PIPELINES[task].from_pipe(base)
    pipeline.set_progress_bar_config(disable=True)  # from_pipe does not carry it over
    return pipeline


Embeddings = dict[str, torch.Tensor]  # the pipeline's own keyword arguments


def img2img_size(family: FamilyFacts, width: int, height: int) -> dict[str, int]:
    """The size arguments of the family's img2img call: SD pipelines take the picture's own size
    (and refuse these arguments); Flux's would otherwise draw at its default 1024x1024."""
    return {"width": width, "height": height} if family.name == "flux" else {}


@dataclass(frozen=True)
class PromptRequest:
    prompt: str
    negative: str | None
    count: int  # images, one embedding each
    guided: bool  # classifier-free guidance on: negative embeddings too
    clip_skip: int | None = None  # A1111's number: 2 = the text encoder's penultimate layer


def _arguments(pipeline: Any, request: PromptRequest) -> dict[str, Any]:
    return {
        "prompt": request.prompt,
        "device": pipeline._execution_device,  # the GPU, also under offload
        "num_images_per_prompt": request.count,
        "do_classifier_free_guidance": request.guided,
        "negative_prompt": request.negative,
        # diffusers counts the layers skipped: A1111's "clip skip 2" is diffusers' 1, and 1 is none.
        "clip_skip": request.clip_skip - 1 if request.clip_skip and request.clip_skip > 1 else None,
    }


def _encode_sd1(pipeline: Any, request: PromptRequest) -> Embeddings:
    if request.clip_skip and request.clip_skip > 1:
        return _encode_sd1_skipping(pipeline, request)
    positive, negative_embeds = pipeline.encode_prompt(**_arguments(pipeline, request))
    embeddings = {"prompt_embeds": positive}
    if negative_embeds is not None:
        embeddings["negative_prompt_embeds"] = negative_embeds
    return embeddings


def _encode_sd1_skipping(pipeline: Any, request: PromptRequest) -> Embeddings:
    """SD 1.x with clip skip, done here: diffusers 0.42 reads `text_encoder.text_model.final_layer_norm`,
    which transformers 5 moved to `text_encoder.final_layer_norm` (AttributeError)."""
    layer = -(request.clip_skip or 1)  # A1111's 2: the penultimate layer's hidden state

    def encode(text: str) -> torch.Tensor:
        text = pipeline.maybe_convert_prompt(text, pipeline.tokenizer)  # a multi-vector embedding's tokens
        tokens = pipeline.tokenizer(
            text,
            padding="max_length",
            max_length=pipeline.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(pipeline._execution_device)
        hidden = pipeline.text_encoder(tokens, output_hidden_states=True).hidden_states[layer]
        normed: torch.Tensor = pipeline.text_encoder.final_layer_norm(hidden)
        return normed.to(pipeline.text_encoder.dtype).repeat(request.count, 1, 1)

    embeddings = {"prompt_embeds": encode(request.prompt)}
    if request.guided:
        embeddings["negative_prompt_embeds"] = encode(request.negative or "")
    return embeddings


def _encode_sdxl(pipeline: Any, request: PromptRequest) -> Embeddings:
    """Both text encoders (their hidden states side by side) and the second one's pooled output."""
    positive, negative_embeds, pooled, negative_pooled = pipeline.encode_prompt(
        **_arguments(pipeline, request)
    )
    embeddings = {"prompt_embeds": positive, "pooled_prompt_embeds": pooled}
    if request.guided:
        embeddings |= {
            "negative_prompt_embeds": negative_embeds,
            "negative_pooled_prompt_embeds": negative_pooled,
        }
    return embeddings


# FluxPipeline's limit for T5's tokens (schnell was trained with 256: its tokenizer may say less).
FLUX_MAX_TEXT_TOKENS = 512


def _encode_flux(pipeline: Any, request: PromptRequest) -> Embeddings:
    """CLIP's pooled output and T5's hidden states; no negative side (the guidance is distilled into
    the model: `guidance_scale` is an input of the transformer, not a second pass)."""
    longest = min(FLUX_MAX_TEXT_TOKENS, pipeline.tokenizer_2.model_max_length)
    positive, pooled, _ = pipeline.encode_prompt(
        prompt=request.prompt,
        prompt_2=None,
        device=pipeline._execution_device,
        num_images_per_prompt=request.count,
        max_sequence_length=longest,
    )
    return {"prompt_embeds": positive, "pooled_prompt_embeds": pooled}


_ENCODERS: dict[str, Callable[[Any, PromptRequest], Embeddings]] = {
    "sd1": _encode_sd1,
    "sdxl": _encode_sdxl,
    "flux": _encode_flux,
}


@torch.no_grad()  # outside the pipeline's own no_grad: without it autograd would record the text encoder
def encode_prompt(family: FamilyFacts, pipeline: DiffusionPipeline, request: PromptRequest) -> Embeddings:
    """The pipeline arguments that carry the prompt (and the negative one, when guided)."""
    return _ENCODERS[family.name](pipeline, request)
