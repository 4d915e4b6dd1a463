"""Training a personal token (/train): the spec. Its builder (with the per-model training defaults)
is generation.training.defaults.train_spec."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from generation.specs.base import (
    ADAPTER_KIND_NAMES,
    ADAPTER_NAME_PATTERN,
    CLASS_NOUN_PATTERN,
    MAX_SEED,
    MAX_SIDE,
    MAX_TRAIN_IMAGES,
    MEGAPIXEL,
    MIN_SIDE,
    MIN_TRAIN_IMAGES,
    SHA256_PATTERN,
    Lane,
    TrainMethod,
    _Spec,
)


class TrainSpec(_Spec):
    """Train a personal token on a user's photos: a DreamBooth LoRA or a textual-inversion embedding.

    `images` are sha256 names in the file store of the already preprocessed photos (square PNGs at
    `resolution`), so the job is reproducible from the database alone.
    """

    kind: Literal["train"] = "train"
    model: str = Field(min_length=1, max_length=64)
    token: str = Field(pattern=ADAPTER_NAME_PATTERN)
    class_noun: str = Field(pattern=CLASS_NOUN_PATTERN)
    method: TrainMethod
    images: tuple[Annotated[str, Field(pattern=SHA256_PATTERN)], ...] = Field(
        min_length=MIN_TRAIN_IMAGES, max_length=MAX_TRAIN_IMAGES
    )
    resolution: int = Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    steps: int = Field(ge=1, le=5000)
    learning_rate: float = Field(gt=0.0, le=1.0, allow_inf_nan=False)
    rank: int = Field(default=4, ge=1, le=128)  # LoRA only
    vectors: int = Field(default=1, ge=1, le=8)  # embedding only: vectors the token stands for
    batch_size: int = Field(default=4, ge=1, le=16)
    prior_preservation: bool = True  # LoRA only
    train_text_encoder: bool = False  # LoRA only: LoRA layers on the text encoder's attention too
    class_images: int = Field(default=16, ge=0, le=200)
    prior_weight: float = Field(default=1.0, ge=0.0, le=10.0, allow_inf_nan=False)
    flip: bool = True  # horizontal-flip augmentation
    checkpoint_every: int = Field(default=100, ge=1, le=5000)
    samples: int = Field(default=4, ge=0, le=4)  # preview images rendered with the new token
    sample_steps: int = Field(default=20, ge=1, le=150)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    # The user confirmed the photos are of them or of something they may use (recorded with the job).
    consent: bool = False
    keep_photos: bool = False  # otherwise the photos are deleted when the training ends

    lane: ClassVar[Lane] = "training"

    def files(self) -> tuple[str, ...]:
        return self.images

    def needs(self) -> frozenset[str]:
        return frozenset({"train"})

    def library_name(self) -> str:
        return self.token

    def title(self) -> str:
        method = ADAPTER_KIND_NAMES[self.method]
        return f"training <{self.token}> ({method}, {len(self.images)} photos, {self.steps} steps)"

    def files_done_with(self, *, succeeded: bool) -> tuple[str, ...]:
        return () if self.keep_photos else self.images  # however it ends, unless the user kept them

    def work(self) -> float:
        pictures = self.batch_size * (2 if self.prior_preservation else 1)
        return self.steps * pictures * self.resolution**2 / MEGAPIXEL

    @property
    def trigger(self) -> str:
        """What `<token>` stands for in prompts: DreamBooth's rare identifier plus the class noun."""
        return f"{LORA_IDENTIFIER} {self.class_noun}" if self.method == "lora" else ""


LORA_IDENTIFIER = "sks"  # the rare-token identifier of the DreamBooth paper and diffusers' examples
