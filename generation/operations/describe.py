"""/describe: prompt suggestions for a picture, from the model's configured describer.

A describer is either the bundled model's own (what its evaluator reads, worded as its captions:
generation/bundled/describer.py) or a captioning model loaded with transformers' auto classes (BLIP,
Florence-2, GIT: anything `AutoModelForImageTextToText` knows), whose beam search gives the four
most likely captions. Weights are read as safetensors only: no pickle is ever loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from PIL import Image

from generation.bundled import BUNDLED_DESCRIBER, evaluator
from generation.bundled import describer as bundled_describer
from generation.errors import ModelLoadError, ModelNotFoundError, SpecError
from generation.models.sources import resolve_source
from generation.specs import SUGGESTIONS

log = logging.getLogger(__name__)

MAX_CAPTION_TOKENS = 60  # a suggestion is a prompt, not an essay
# Florence-2 is told what to do by a task token; this one gives a prompt-length caption.
FLORENCE_TASK = "<DETAILED_CAPTION>"


class Describer(Protocol):
    def describe(self, image: Image.Image) -> list[str]:
        """Up to SUGGESTIONS distinct prompts for `image`, most likely first."""
        ...


@dataclass
class BundledDescriber:
    judge: evaluator.SceneClassifier

    def describe(self, image: Image.Image) -> list[str]:
        return bundled_describer.describe(self.judge, image)


@dataclass
class CaptionDescriber:
    """A transformers captioning model: beam search with one returned sequence per beam."""

    processor: Any
    model: Any
    task_prompt: str | None  # Florence-2's task token; None for models that caption unprompted

    @torch.no_grad()
    def describe(self, image: Image.Image) -> list[str]:
        inputs = self.processor(images=image.convert("RGB"), text=self.task_prompt, return_tensors="pt")
        inputs = {
            name: value.to(self.model.device, self.model.dtype if value.is_floating_point() else value.dtype)
            for name, value in inputs.items()
        }
        generated = self.model.generate(
            **inputs,
            num_beams=SUGGESTIONS,
            num_return_sequences=SUGGESTIONS,
            max_new_tokens=MAX_CAPTION_TOKENS,
            do_sample=False,  # the same picture is described the same way
        )
        captions = self.processor.batch_decode(generated, skip_special_tokens=True)
        cleaned = (" ".join(caption.split()) for caption in captions)
        return list(dict.fromkeys(caption for caption in cleaned if caption))[:SUGGESTIONS]


def load_describer(source: str, *, device: torch.device, dtype: torch.dtype, offline: bool) -> Describer:
    """The describer a model's `describer` setting names (raises ModelNotFoundError for a bad source)."""
    if source == BUNDLED_DESCRIBER:
        return BundledDescriber(evaluator.load())
    # Imported here: only workers that describe need the auto classes (and their import time).
    from transformers import AutoModelForImageTextToText, AutoProcessor

    where, local_only = resolve_source(source, offline=offline, marker="config.json")
    try:
        processor: Any = AutoProcessor.from_pretrained(where, local_files_only=local_only)  # type: ignore[no-untyped-call]
        model: Any = AutoModelForImageTextToText.from_pretrained(
            where, local_files_only=local_only, use_safetensors=True, dtype=dtype
        )
    except OSError as error:  # not there, or not in the cache when offline
        raise ModelNotFoundError(f"describer {source!r} could not be found: {error}") from None
    except ValueError as error:  # there, but not a captioning model transformers knows
        raise ModelLoadError(f"describer {source!r} is not a captioning model: {error}") from None
    model.to(device).eval()
    task = FLORENCE_TASK if getattr(model.config, "model_type", "") == "florence2" else None
    log.info("describer %s loaded (%s)", source, type(model).__name__)
    return CaptionDescriber(processor, model, task)


def run_describe(describer: Describer, image: Image.Image) -> tuple[str, ...]:
    suggestions = describer.describe(image)
    if not suggestions:
        raise SpecError("the describer found no words for this picture")
    return tuple(suggestions)
