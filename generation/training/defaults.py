"""Sensible training settings per method, which a model's config may override (TOML:
`[models.NAME.training.lora] steps = 800`), and the builder of a complete `TrainSpec`."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from generation.config import ModelConfig
from generation.errors import SpecError
from generation.specs import (
    CLASS_NOUN_PATTERN,
    MAX_SEED,
    TrainMethod,
    TrainSpec,
    adapter_name_problem,
    build_spec,
)


@dataclass(frozen=True)
class TrainingDefaults:
    steps: int
    learning_rate: float
    rank: int = 4
    vectors: int = 1
    batch_size: int = 1
    class_images: int = 0
    train_text_encoder: bool = False  # LoRA: also put LoRA layers on the text encoder


# For SD 1.x-size models: diffusers' DreamBooth-LoRA and textual-inversion examples, scaled to a
# handful of photos and a single GPU.
GENERIC: dict[str, TrainingDefaults] = {
    "lora": TrainingDefaults(steps=500, learning_rate=1e-4, rank=4, batch_size=2, class_images=50),
    "embedding": TrainingDefaults(steps=1000, learning_rate=5e-3, vectors=2, batch_size=2),
}
TRAINING_KEYS = tuple(f.name for f in fields(TrainingDefaults))


def training_defaults(method: str, model: ModelConfig) -> TrainingDefaults:
    overrides: Mapping[str, float] = model.training.get(method, {})
    return replace(GENERIC[method], **overrides)  # type: ignore[arg-type]


def check_training_overrides(training: Mapping[str, Mapping[str, object]]) -> None:
    """Raise SpecError naming the first unknown method or key of a model's `training` table."""
    for method, table in training.items():
        if method not in GENERIC:
            raise SpecError(f"training.{method}: unknown method; use lora or embedding")
        for key, value in table.items():
            if key not in TRAINING_KEYS:
                raise SpecError(f"training.{method}.{key}: unknown; known: {', '.join(TRAINING_KEYS)}")
            expected = bool if key == "train_text_encoder" else (int, float)
            if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
                raise SpecError(f"training.{method}.{key} has the wrong type: {value!r}")


def train_spec(
    model: ModelConfig,
    resolution: int,
    *,
    token: str,
    class_noun: str,
    method: TrainMethod,
    images: tuple[str, ...],
    steps: int | None = None,
    learning_rate: float | None = None,
    rank: int | None = None,
    seed: int | None = None,
    consent: bool = False,
    keep_photos: bool = False,
) -> TrainSpec:
    """A complete, reproducible TrainSpec: what the user chose, the model's defaults for the rest."""
    class_noun = " ".join(class_noun.split()).lower()
    if problem := adapter_name_problem(token):
        raise SpecError(problem)
    if not re.match(CLASS_NOUN_PATTERN, class_noun):
        raise SpecError(
            f"{class_noun!r} cannot be a class noun: one or a few plain words for what the photos show, "
            "e.g. dog, person, coffee mug"
        )
    defaults = training_defaults(method, model)
    return build_spec(
        TrainSpec,
        model=model.name,
        token=token,
        class_noun=class_noun,
        method=method,
        images=images,
        resolution=resolution,
        steps=steps if steps is not None else defaults.steps,
        learning_rate=learning_rate if learning_rate is not None else defaults.learning_rate,
        rank=rank if rank is not None else defaults.rank,
        vectors=defaults.vectors,
        batch_size=defaults.batch_size,
        class_images=defaults.class_images,
        prior_preservation=defaults.class_images > 0,
        train_text_encoder=bool(defaults.train_text_encoder) and method == "lora",
        seed=seed if seed is not None else secrets.randbelow(MAX_SEED + 1),
        consent=consent,
        keep_photos=keep_photos,
    )
