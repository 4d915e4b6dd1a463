"""Prompts with weights, or longer than one CLIP window, encoded through compel for each family.

A plain prompt that fits one window never comes here: the pipeline's own `encode_prompt` makes it,
so its pixels are exactly what they were before weights existed. Here:
- SD 1.x/2.x: one compel over the text encoder; long prompts are encoded in 75-token chunks
  (split at sentence ends) and concatenated, as A1111 does;
- SDXL: one compel per text encoder (penultimate hidden states, side by side) and the second
  encoder's pooled output of the words without syntax;
- Flux: weights on T5's hidden states (T5 reads up to 512 tokens: no chunks), CLIP's pooled
  output as the pipeline makes it.
compel objects are made per call: they cache the empty prompt's embedding, which a LoRA on the
text encoder changes.
"""

from __future__ import annotations

from typing import Any

import torch
from compel import Compel, ReturnedEmbeddingsType
from compel.embeddings_provider import BaseTextualInversionManager
from compel.prompt_parser import Blend, Conjunction, FlattenedPrompt
from diffusers import DiffusionPipeline

from generation.models.families import FLUX_MAX_TEXT_TOKENS, Embeddings, PromptRequest
from generation.models.family_facts import FamilyFacts
from generation.outputs import PromptTokens
from generation.prompt_weights import Fragment, WeightedPrompt

CLIP_WINDOW = 75  # a CLIP encoder's 77 positions less its start and end tokens


def prompt_tokens(family: FamilyFacts, pipeline: Any, text: str) -> PromptTokens:
    """How many tokens the main text encoder sees for `text` (a multi-vector embedding counts its vectors)."""
    if family.name == "flux":
        tokenizer = pipeline.tokenizer_2
        window = min(FLUX_MAX_TEXT_TOKENS, tokenizer.model_max_length)
        ids = tokenizer(text, truncation=False, add_special_tokens=False).input_ids
        return PromptTokens(len(ids), window - 1, chunks=False)  # T5 appends its end token
    tokenizer = pipeline.tokenizer
    if hasattr(pipeline, "maybe_convert_prompt"):
        text = pipeline.maybe_convert_prompt(text, tokenizer)
    ids = tokenizer(text, truncation=False, add_special_tokens=False).input_ids
    return PromptTokens(len(ids), tokenizer.model_max_length - 2)


@torch.no_grad()
def encode_weighted(
    family: FamilyFacts,
    pipeline: DiffusionPipeline,
    request: PromptRequest,
    positive: WeightedPrompt,
    negative: tuple[Fragment, ...],
) -> Embeddings:
    """The pipeline's embedding arguments for a weighted or long prompt (and its negative one)."""
    encoder = {"sd1": _encode_sd1, "sdxl": _encode_sdxl, "flux": _encode_flux}[family.name]
    return encoder(pipeline, request, positive, negative)


def _encode_sd1(
    pipeline: Any, request: PromptRequest, positive: WeightedPrompt, negative: tuple[Fragment, ...]
) -> Embeddings:
    compel = _compel(pipeline, pipeline.tokenizer, pipeline.text_encoder, request.clip_skip)
    conditionings = [_conditioning(compel, _prompt_object(positive))]
    if request.guided:
        conditionings.append(_conditioning(compel, FlattenedPrompt(list(negative))))
    conditionings = compel.pad_conditioning_tensors_to_same_length(conditionings)
    embeddings = {"prompt_embeds": _per_image(conditionings[0], request.count)}
    if request.guided:
        embeddings["negative_prompt_embeds"] = _per_image(conditionings[1], request.count)
    return embeddings


def _encode_sdxl(
    pipeline: Any, request: PromptRequest, positive: WeightedPrompt, negative: tuple[Fragment, ...]
) -> Embeddings:
    hidden = ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
    compels = [
        _compel(pipeline, pipeline.tokenizer, pipeline.text_encoder, request.clip_skip, hidden),
        _compel(pipeline, pipeline.tokenizer_2, pipeline.text_encoder_2, request.clip_skip, hidden),
    ]
    prompts = [_prompt_object(positive)] + ([FlattenedPrompt(list(negative))] if request.guided else [])
    # Each encoder's conditionings padded to one length; then the two encoders side by side.
    sides = [
        compel.pad_conditioning_tensors_to_same_length([_conditioning(compel, p) for p in prompts])
        for compel in compels
    ]
    joined = [torch.cat([first, second], dim=-1) for first, second in zip(*sides, strict=True)]
    pooled_of = compels[1].conditioning_provider.get_pooled_embeddings
    embeddings = {
        "prompt_embeds": _per_image(joined[0], request.count),
        "pooled_prompt_embeds": _per_image(_blended_pooled(pooled_of, positive), request.count),
    }
    if request.guided:
        negative_text = "".join(text for text, _ in negative).strip()
        negative_embeds, negative_pooled = joined[1], pooled_of([negative_text])
        if not negative_text and pipeline.config.force_zeros_for_empty_prompt:  # as the pipeline does
            negative_embeds, negative_pooled = (
                torch.zeros_like(negative_embeds),
                torch.zeros_like(negative_pooled),
            )
        embeddings |= {
            "negative_prompt_embeds": _per_image(negative_embeds, request.count),
            "negative_pooled_prompt_embeds": _per_image(negative_pooled, request.count),
        }
    return embeddings


def _encode_flux(
    pipeline: Any, request: PromptRequest, positive: WeightedPrompt, negative: tuple[Fragment, ...]
) -> Embeddings:
    """T5 carries the weights; no negative side (Flux's guidance is distilled into the model)."""
    longest = min(FLUX_MAX_TEXT_TOKENS, pipeline.tokenizer_2.model_max_length)
    t5 = Compel(
        tokenizer=pipeline.tokenizer_2,
        text_encoder=pipeline.text_encoder_2,
        dtype_for_device_getter=lambda _: pipeline.text_encoder_2.dtype,
        truncate_long_prompts=True,
        device=pipeline._execution_device,
        model_max_length=longest,
    )
    clip = _compel(pipeline, pipeline.tokenizer, pipeline.text_encoder, None)
    pooled = _blended_pooled(clip.conditioning_provider.get_pooled_embeddings, positive)
    embeds = _conditioning(t5, _prompt_object(positive)).to(pipeline.text_encoder_2.dtype)
    return {
        "prompt_embeds": _per_image(embeds, request.count),
        "pooled_prompt_embeds": _per_image(pooled.to(pipeline.text_encoder.dtype), request.count),
    }


def _compel(
    pipeline: Any,
    tokenizer: Any,
    text_encoder: Any,
    clip_skip: int | None,
    kind: ReturnedEmbeddingsType = ReturnedEmbeddingsType.LAST_HIDDEN_STATES_NORMALIZED,
) -> Compel:
    skipped = clip_skip - 1 if clip_skip and clip_skip > 1 else 0  # A1111's 2 skips one layer
    return Compel(
        tokenizer=tokenizer,
        text_encoder=_SkippedLayers(text_encoder, skipped) if skipped else text_encoder,
        textual_inversion_manager=_EmbeddingTokens(pipeline, tokenizer),
        dtype_for_device_getter=lambda _: text_encoder.dtype,
        truncate_long_prompts=False,
        returned_embeddings_type=kind,
        device=pipeline._execution_device,  # the GPU, also under offload
    )


def _prompt_object(prompt: WeightedPrompt) -> FlattenedPrompt | Blend:
    """One part: its fragments; several (Midjourney's `::`): a blend by their shares of the weights."""
    if len(prompt.parts) == 1:
        return FlattenedPrompt(list(prompt.parts[0].fragments))
    return Blend(
        [FlattenedPrompt(list(part.fragments)) for part in prompt.parts],
        [part.weight for part in prompt.parts],
        normalize_weights=True,
    )


def _blended_pooled(pooled_of: Any, prompt: WeightedPrompt) -> torch.Tensor:
    """A pooled embedding (one vector per prompt, no tokens to weigh) blended like the parts: by
    their shares of the weights, from each part's words without syntax."""
    if len(prompt.parts) == 1:
        return pooled_of([prompt.parts[0].text])  # type: ignore[no-any-return]
    total = sum(part.weight for part in prompt.parts)
    shares = [pooled_of([part.text]) * (part.weight / total) for part in prompt.parts]
    return torch.stack(shares).sum(dim=0)


def _conditioning(compel: Compel, prompt: FlattenedPrompt | Blend) -> torch.Tensor:
    conditioning: torch.Tensor
    conditioning, _options = compel.build_conditioning_tensor_for_conjunction(Conjunction([prompt]))
    return conditioning


def _per_image(embeds: torch.Tensor, count: int) -> torch.Tensor:
    return embeds.repeat(count, *([1] * (embeds.dim() - 1)))


class _EmbeddingTokens(BaseTextualInversionManager):  # type: ignore[misc]
    """A multi-vector embedding's token becomes its vectors' tokens, in the tokenizer at hand (SDXL's
    second tokenizer has its own ids; compel's diffusers manager only knows the first)."""

    def __init__(self, pipeline: Any, tokenizer: Any) -> None:
        self.pipeline, self.tokenizer = pipeline, tokenizer

    def expand_textual_inversion_token_ids_if_necessary(self, token_ids: list[int]) -> list[int]:
        if not token_ids or not hasattr(self.pipeline, "maybe_convert_prompt"):
            return token_ids
        text = self.pipeline.maybe_convert_prompt(self.tokenizer.decode(token_ids), self.tokenizer)
        ids: list[int] = self.tokenizer.encode(text, add_special_tokens=False)
        return ids


class _SkippedLayers:
    """A CLIP text encoder that answers as if its last `skipped` layers were not there (A1111's clip
    skip): compel's own clip skip reads `text_model.final_layer_norm`, which transformers 5 moved."""

    def __init__(self, encoder: Any, skipped: int) -> None:
        self.encoder, self.skipped = encoder, skipped

    @property
    def device(self) -> torch.device:
        return self.encoder.device  # type: ignore[no-any-return]

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder.dtype  # type: ignore[no-any-return]

    def __call__(self, input_ids: torch.Tensor, attention_mask: Any = None, **_: Any) -> Any:
        output = self.encoder(input_ids, attention_mask, output_hidden_states=True, return_dict=True)
        hidden = output.hidden_states[: len(output.hidden_states) - self.skipped]
        norm = getattr(self.encoder, "final_layer_norm", None) or self.encoder.text_model.final_layer_norm
        output.hidden_states = hidden
        output.last_hidden_state = norm(hidden[-1])
        return output
