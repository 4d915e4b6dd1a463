"""Personal tokens at generation time: a user's LoRAs and embeddings, loaded into the warm base model.

A spec's adapters are already resolved (kind, file hash, trigger) by the job service. Here we
- rewrite the prompt: `<name>` becomes the LoRA's trigger words, or the embedding's tokenizer token
  (named after the file's hash, so two users' `<dog>` never collide);
- load what is not loaded yet (files are read with safetensors only: never a pickle) and keep it
  loaded, so switching between users' adapters is `set_adapters`, not a reload of the base model;
- activate exactly the job's LoRAs with their weights, and scale each embedding by its weight.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load as load_safetensors

from generation.config import ADAPTERS_KEPT_PER_WORKER
from generation.errors import SpecError, excerpt
from generation.specs import AdapterRef

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = ADAPTERS_KEPT_PER_WORKER


def embedding_token(file_hash: str) -> str:
    return f"<emb-{file_hash[:16]}>"


def lora_adapter_name(file_hash: str) -> str:
    return f"lora-{file_hash[:16]}"  # never "train" or one letter: both confuse peft (see NOTES)


def expand_tokens(text: str, adapters: tuple[AdapterRef, ...]) -> str:
    """Replace each `<name>` with what the model understands: trigger words or the embedding's token."""
    by_name = {ref.name: ref for ref in adapters}

    def replace(match: re.Match[str]) -> str:
        ref = by_name.get(match.group(1))
        if ref is None or not ref.resolved:
            raise SpecError(f"<{match.group(1)}> is not a resolved personal token")
        assert ref.file is not None
        return ref.trigger if ref.kind == "lora" else embedding_token(ref.file)

    return " ".join(re.sub(r"<([A-Za-z0-9_-]+)>", replace, text).split())


@dataclass
class _EncoderRows:
    tokenizer: Any
    text_encoder: Any
    ids: list[int]
    rows: torch.Tensor  # as trained; the table holds rows * weight of the last job that used it


@dataclass
class _Embedding:
    tokens: list[str]
    encoders: list[_EncoderRows]  # one per text encoder (SDXL: two)

    def unload(self, pipeline: Any) -> None:
        for part in self.encoders:
            pipeline.unload_textual_inversion(
                self.tokens, tokenizer=part.tokenizer, text_encoder=part.text_encoder
            )


# SDXL embeddings (A1111's and diffusers' format) hold one tensor per text encoder under these names.
SDXL_EMBEDDING_KEYS = ("clip_l", "clip_g")


def _embedding_parts(
    pipeline: Any, state: dict[str, torch.Tensor]
) -> list[tuple[torch.Tensor | dict[str, torch.Tensor], Any, Any]]:
    """(what to load, tokenizer, text encoder) for each of the pipeline's text encoders."""
    two_encoders = getattr(pipeline, "text_encoder_2", None) is not None
    if two_encoders != (set(state) == set(SDXL_EMBEDDING_KEYS)):
        made_for = (
            "a model with two text encoders (SDXL)" if not two_encoders else "a one-encoder model (SD 1.x)"
        )
        raise ValueError(f"it was made for {made_for}")
    if not two_encoders:
        return [(state, pipeline.tokenizer, pipeline.text_encoder)]
    return [
        (state["clip_l"], pipeline.tokenizer, pipeline.text_encoder),
        (state["clip_g"], pipeline.tokenizer_2, pipeline.text_encoder_2),
    ]


class AdapterCache:
    """The adapters loaded into one pipeline, least recently used first out."""

    def __init__(self, read_file: Callable[[str], bytes], capacity: int = DEFAULT_CAPACITY) -> None:
        self.read_file = read_file
        self.capacity = capacity
        self._pipeline: StableDiffusionPipeline | None = None
        self._loras: OrderedDict[str, str] = OrderedDict()  # file hash -> peft adapter name
        self._embeddings: OrderedDict[str, _Embedding] = OrderedDict()

    @property
    def loaded(self) -> tuple[list[str], list[str]]:
        """(LoRA file hashes, embedding file hashes) currently loaded."""
        return list(self._loras), list(self._embeddings)

    def activate(self, pipeline: StableDiffusionPipeline, adapters: tuple[AdapterRef, ...]) -> None:
        """Make `pipeline` render with exactly `adapters` (and nothing else) at their weights."""
        if pipeline is not self._pipeline:  # another base model: what we loaded went with the old one
            self._pipeline, self._loras, self._embeddings = pipeline, OrderedDict(), OrderedDict()
        for ref in adapters:
            if not ref.resolved:
                raise SpecError(f"<{ref.name}> was not resolved to a file before the job was queued")
        loras = [ref for ref in adapters if ref.kind == "lora"]
        embeddings = [ref for ref in adapters if ref.kind == "embedding"]
        self._activate_loras(pipeline, loras)
        for ref in embeddings:
            self._apply_embedding(pipeline, ref)

    def reset(self) -> None:
        """Unload everything (before training, which copies the UNet and must not copy user LoRAs)."""
        if self._pipeline is not None and self._loras:
            self._pipeline.unload_lora_weights()
        if self._pipeline is not None:
            for embedding in self._embeddings.values():
                embedding.unload(self._pipeline)
        self._loras.clear()
        self._embeddings.clear()

    # ------------------------------------------------------------ LoRA
    def _activate_loras(self, pipeline: StableDiffusionPipeline, refs: list[AdapterRef]) -> None:
        for ref in refs:
            self._load_lora(pipeline, ref)
        if not self._loras:
            return
        if not refs:
            pipeline.disable_lora()  # bypasses every LoRA layer: exactly the base model
            return
        pipeline.enable_lora()
        pipeline.set_adapters(
            [self._loras[ref.file] for ref in refs if ref.file], [ref.weight for ref in refs]
        )

    def _load_lora(self, pipeline: StableDiffusionPipeline, ref: AdapterRef) -> None:
        assert ref.file is not None
        if ref.file in self._loras:
            self._loras.move_to_end(ref.file)
            return
        self._evict_loras(pipeline, keep=self.capacity - 1)
        name = lora_adapter_name(ref.file)
        if _loaded(pipeline, name):  # loaded before, e.g. by an earlier cache
            self._loras[ref.file] = name
            return
        state = _read_tensors(self.read_file(ref.file), ref)
        try:
            with warnings.catch_warnings():
                # peft warns on every adapter after the first; several loaded at once is the point here.
                warnings.filterwarnings(
                    "ignore", message="Already found a `peft_config`", category=UserWarning
                )
                pipeline.load_lora_weights(state, adapter_name=name)
        except Exception as error:  # whatever diffusers/peft raise on a user's file is the file's fault
            raise _does_not_fit(ref, "this job's base model", error) from None
        if not _loaded(pipeline, name):
            raise SpecError(
                f"<{ref.name}> matches no layer of this job's base model: it would change nothing"
            )
        self._loras[ref.file] = name
        log.info("loaded LoRA <%s> as %s", ref.name, name)

    def _evict_loras(self, pipeline: StableDiffusionPipeline, keep: int) -> None:
        while len(self._loras) > keep:
            _, name = self._loras.popitem(last=False)
            pipeline.delete_adapters(name)

    # ------------------------------------------------------------ embeddings
    def _apply_embedding(self, pipeline: StableDiffusionPipeline, ref: AdapterRef) -> None:
        assert ref.file is not None
        embedding = self._embeddings.get(ref.file) or self._load_embedding(pipeline, ref)
        self._embeddings.move_to_end(ref.file)
        with torch.no_grad():
            for part in embedding.encoders:
                table = part.text_encoder.get_input_embeddings().weight
                table[part.ids] = (part.rows * ref.weight).to(table.dtype)

    def _load_embedding(self, pipeline: StableDiffusionPipeline, ref: AdapterRef) -> _Embedding:
        assert ref.file is not None
        while len(self._embeddings) >= self.capacity:
            _, old = self._embeddings.popitem(last=False)
            old.unload(pipeline)
        token = embedding_token(ref.file)
        state = _read_tensors(self.read_file(ref.file), ref)
        loaded: list[tuple[Any, Any]] = []
        try:
            for vectors, tokenizer, text_encoder in _embedding_parts(pipeline, state):
                pipeline.load_textual_inversion(
                    vectors, token=token, tokenizer=tokenizer, text_encoder=text_encoder
                )
                loaded.append((tokenizer, text_encoder))
        except Exception as error:  # as for LoRAs: the file's fault, said in one line
            for tokenizer, text_encoder in loaded:  # an SDXL file half loaded: take the half out again
                tokens = _vector_tokens(token, tokenizer.get_vocab())
                pipeline.unload_textual_inversion(tokens, tokenizer=tokenizer, text_encoder=text_encoder)
            raise _does_not_fit(ref, "this model's text encoder", error) from None
        tokens = _vector_tokens(token, pipeline.tokenizer.get_vocab())
        parts = []
        for tokenizer, text_encoder in loaded:
            ids = tokenizer.convert_tokens_to_ids(tokens)
            rows = text_encoder.get_input_embeddings().weight[ids].detach().clone()
            parts.append(_EncoderRows(tokenizer, text_encoder, ids, rows))
        embedding = _Embedding(tokens, parts)
        self._embeddings[ref.file] = embedding
        log.info("loaded embedding <%s> as %s (%d vectors)", ref.name, token, len(tokens))
        return embedding


def _read_tensors(data: bytes, ref: AdapterRef) -> dict[str, torch.Tensor]:
    """The file's tensors (safetensors only), refused if any value is NaN or infinite: such a LoRA
    renders black pictures that would be reported as finished."""
    try:
        state = load_safetensors(data)
    except Exception as error:  # SafetensorError: checked by the bot already, but never trusted
        raise SpecError(f"<{ref.name}> is not a valid safetensors file ({excerpt(str(error), 80)})") from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise SpecError(
                f"<{ref.name}> holds NaN or infinite values (in {excerpt(name, 60)}): it is broken"
            )
    return state


def _does_not_fit(ref: AdapterRef, target: str, error: Exception) -> SpecError:
    """One line for the user and the log, instead of diffusers' listing of every mismatched layer."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    mismatches = [line for line in lines if "size mismatch" in line]
    if any("not found in the base model" in line for line in lines):  # peft: no target module exists
        detail = "it matches no layer of it (made for another kind of model?)"
    elif mismatches:
        detail = (
            f"{len(mismatches)} layer(s) have other shapes, e.g. {excerpt(mismatches[0], 120, quote=False)}"
        )
    else:
        detail = excerpt(lines[0] if lines else type(error).__name__, 120, quote=False)
    log.warning("adapter <%s> (%s) does not fit %s: %s", excerpt(ref.name), ref.file, target, detail)
    return SpecError(f"<{ref.name}> does not fit {target}: {detail}")


def _loaded(pipeline: Any, name: str) -> bool:
    """Whether an adapter of that name is on any of the pipeline's models (UNet, transformer, encoders)."""
    return any(name in names for names in pipeline.get_list_adapters().values())


def _vector_tokens(token: str, vocabulary: Mapping[str, int]) -> list[str]:
    """`token` and the `token_1`, `token_2`, … diffusers adds for a multi-vector embedding."""
    tokens = [token]
    while f"{token}_{len(tokens)}" in vocabulary:
        tokens.append(f"{token}_{len(tokens)}")
    return tokens
