"""Text to image (/imagine): the spec, its builder from a parsed prompt, and the ControlNet check."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from generation.errors import PromptError, SpecError
from generation.sizes import size_for_aspect
from generation.specs.base import (
    GRID_SIZE,
    MAX_SEED,
    SHA256_PATTERN,
    PromptedSpec,
    build_spec,
    seeds_from,
)

if TYPE_CHECKING:  # only in annotations: the prompt language and model settings import the specs
    from generation.config import ModelConfig
    from generation.prompt import ParsedPrompt

ControlMode = Literal["canny", "depth", "pose"]
CONTROL_MODES: tuple[str, ...] = ControlMode.__args__  # type: ignore[attr-defined]


class ControlRef(BaseModel):
    """A control picture for ControlNet: `image` (a file-store hash) steers the layout in `mode`.

    For canny the edges are computed from the picture here (thresholds on 0-255 gradients) unless
    it is `preprocessed` (already an edge map); depth and pose take a ready-made map.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str = Field(pattern=SHA256_PATTERN)
    mode: ControlMode = "canny"
    scale: float = Field(default=1.0, ge=0.0, le=2.0, allow_inf_nan=False)
    preprocessed: bool = False
    low_threshold: int = Field(default=100, ge=1, le=255)
    high_threshold: int = Field(default=200, ge=1, le=255)

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Self:
        if self.low_threshold > self.high_threshold:
            raise ValueError("low_threshold must not exceed high_threshold")
        return self


MAX_IMAGE_PROMPTS = 5  # /blend takes 2-5 pictures, as Midjourney's does
MAX_IMAGE_WEIGHT = 3.0  # --iw, as Midjourney's


class ImagePrompt(BaseModel):
    """Pictures that steer a rendering through the model's IP-Adapter (attachments on /imagine, /blend):
    `weight` is --iw (0: no effect; 1: the model's configured adapter scale), `style` is --sref (only
    the style layers listen: InstantStyle's per-layer scales)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    images: tuple[Annotated[str, Field(pattern=SHA256_PATTERN)], ...] = Field(
        min_length=1, max_length=MAX_IMAGE_PROMPTS
    )
    weight: float = Field(default=1.0, ge=0.0, le=MAX_IMAGE_WEIGHT, allow_inf_nan=False)
    style: bool = False


class ImagineSpec(PromptedSpec):
    """Text to image: one image per seed, rendered in one batched pipeline call."""

    kind: Literal["imagine"] = "imagine"
    chaos: int = Field(default=0, ge=0, le=100)
    tile: bool = False
    turbo: bool = False  # the model's few-step mode (its `turbo` settings; generation.models.turbo)
    control: ControlRef | None = None
    image_prompt: ImagePrompt | None = None

    def prompt_required(self) -> bool:
        return self.image_prompt is None

    def files(self) -> tuple[str, ...]:
        pictures = self.image_prompt.images if self.image_prompt else ()
        return super().files() + ((self.control.image,) if self.control else ()) + pictures

    def operation_words(self) -> str:
        words = [f"{self.control.mode} control, scale {self.control.scale:g}"] if self.control else []
        if self.image_prompt is not None:
            count = len(self.image_prompt.images)
            what = (
                "style reference" if self.image_prompt.style else ("blend" if count > 1 else "image prompt")
            )
            words.append(
                f"{what} of {count} picture{'s' if count > 1 else ''}, --iw {self.image_prompt.weight:g}"
            )
        return "; ".join(words)

    def title(self) -> str:
        return super().title() if self.prompt.strip() else self.operation_words()

    def needs(self) -> frozenset[str]:
        return super().needs() | {
            "imagine",
            *(("control",) if self.control else ()),
            *(("tile",) if self.tile else ()),
            *(("image_prompt",) if self.image_prompt else ()),
        }


def imagine_spec(
    parsed: ParsedPrompt,
    model: ModelConfig,
    resolution: int,
    *,
    count: int = GRID_SIZE,
    seed: int | None = None,
    scheduler: str | None = None,
    pictures: tuple[str, ...] = (),
) -> ImagineSpec:
    """Resolve a parsed prompt against a model's defaults into a complete, reproducible spec;
    `pictures` (file-store hashes) prompt it too, weighted by --iw, as style only with --sref."""
    first_seed = parsed.seed if parsed.seed is not None else seed
    if first_seed is None:
        first_seed = secrets.randbelow(MAX_SEED + 1)
    width, height = size_for_aspect(parsed.aspect or (1, 1), resolution)
    steps = parsed.steps if parsed.steps is not None else model.steps
    guidance = parsed.cfg if parsed.cfg is not None else model.guidance
    scheduler = scheduler or model.scheduler
    if parsed.turbo:
        if model.turbo is None:
            raise PromptError(f"model {model.name!r} has no turbo mode here; leave out --turbo")
        turbo = model.turbo
        steps = parsed.steps if parsed.steps is not None else turbo.steps
        guidance = (
            parsed.cfg
            if parsed.cfg is not None
            else (turbo.guidance if turbo.guidance is not None else guidance)
        )
        scheduler = turbo.scheduler or scheduler
    image_prompt = None
    if pictures:
        weight = parsed.iw if parsed.iw is not None else 1.0
        image_prompt = build_spec(ImagePrompt, images=pictures, weight=weight, style=parsed.sref)
    elif parsed.iw is not None or parsed.sref:
        flag = "--iw" if parsed.iw is not None else "--sref"
        raise PromptError(f"{flag} needs a picture: attach one to /imagine (`image`), or use /blend")
    return build_spec(
        ImagineSpec,
        model=model.name,
        prompt=parsed.text,
        negative_prompt=parsed.negative,
        seeds=seeds_from(first_seed, count),
        width=width,
        height=height,
        steps=steps,
        guidance=guidance,
        scheduler=scheduler,
        chaos=parsed.chaos or 0,
        tile=parsed.tile,
        turbo=parsed.turbo,
        adapters=parsed.adapters,
        stop=parsed.stop or 100,
        image_prompt=image_prompt,
    )


def check_control_mode(model_name: str, controlnets: dict[str, str], mode: str) -> None:
    if mode not in controlnets:
        configured = ", ".join(sorted(controlnets)) or "none"
        raise SpecError(
            f"model {model_name!r} has no {mode} ControlNet configured (configured: {configured}); "
            f'add [models.{model_name}.controlnets] {mode} = "owner/name" to the settings'
        )
