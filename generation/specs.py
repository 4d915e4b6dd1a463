"""Typed job specs: everything needed to reproduce a job, serialisable to JSON and back losslessly.

Every button (U/V/reroll/zoom) becomes a new spec derived from a stored one, so a spec must hold the
resolved values (seeds, size, steps, scheduler), never "use the default".
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from generation.errors import SpecError, excerpt

SchedulerName = Literal["euler_a", "euler", "dpmpp_2m", "ddim", "ddpm", "lcm"]
SCHEDULER_NAMES: tuple[str, ...] = SchedulerName.__args__  # type: ignore[attr-defined]

MAX_SEED = 2**32 - 1
ADAPTER_NAME_PATTERN = r"^[A-Za-z0-9_-]{2,32}$"
MAX_PROMPT_CHARS = 1500
MIN_SIDE, MAX_SIDE = 32, 2048


AdapterKind = Literal["lora", "embedding"]
TrainMethod = AdapterKind
SHA256_PATTERN = r"^[0-9a-f]{64}$"
CLASS_NOUN_PATTERN = r"^[A-Za-z][A-Za-z -]{0,38}[A-Za-z]$"
MIN_TRAIN_IMAGES, MAX_TRAIN_IMAGES = 3, 20


def adapter_name_problem(name: str) -> str | None:
    """Why `name` cannot name a token (for the user), or None when it can."""
    if re.match(ADAPTER_NAME_PATTERN, name):
        return None
    return f"{name!r} cannot be a token name: use 2-32 letters, digits, '-' or '_' (e.g. my-dog)"


class AdapterRef(BaseModel):
    """A `<name>` or `<name:weight>` reference to a LoRA or embedding in the user's library.

    The prompt parser fills in the name and weight; the job service resolves the name against the
    user's library and fills in the rest, so a stored spec names the exact file it used.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=ADAPTER_NAME_PATTERN)
    weight: float = Field(default=1.0, ge=-2.0, le=2.0, allow_inf_nan=False)
    kind: AdapterKind | None = None
    file: str | None = Field(default=None, pattern=SHA256_PATTERN)
    trigger: str = Field(default="", max_length=200)  # LoRA: the words `<name>` stands for in prompts

    @property
    def resolved(self) -> bool:
        return self.kind is not None and self.file is not None


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_json(self) -> str:
        return self.model_dump_json()


class PromptedSpec(_Spec):
    """What every prompted rendering job has: model, prompts, one seed per image, size, sampler, adapters."""

    model: str = Field(min_length=1, max_length=64)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS)
    seeds: tuple[Annotated[int, Field(ge=0, le=MAX_SEED)], ...] = Field(min_length=1, max_length=8)
    width: int = Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    height: int = Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    steps: int = Field(ge=1, le=150)
    guidance: float = Field(ge=0.0, le=30.0, allow_inf_nan=False)
    scheduler: SchedulerName = "euler_a"
    adapters: tuple[AdapterRef, ...] = ()

    @model_validator(mode="after")
    def _prompt_is_not_blank(self) -> Self:
        if not self.prompt.strip():
            raise ValueError("the prompt is empty: describe what you want to see")
        return self

    def single(self, index: int) -> Self:
        """The spec that renders image `index` of this one alone (its own seed, same everything else)."""
        if not 0 <= index < len(self.seeds):
            raise SpecError(f"image index must be 0..{len(self.seeds) - 1}, got {index}")
        return self.model_copy(update={"seeds": (self.seeds[index],)})


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


class ImagineSpec(PromptedSpec):
    """Text to image: one image per seed, rendered in one batched pipeline call."""

    kind: Literal["imagine"] = "imagine"
    chaos: int = Field(default=0, ge=0, le=100)
    tile: bool = False
    control: ControlRef | None = None


SUBTLE_STRENGTH, STRONG_STRENGTH, REGION_STRENGTH = 0.35, 0.7, 1.0

Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class RegionBox(BaseModel):
    """A rectangle as fractions of the picture's width and height (0,0 = top left)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    left: Fraction
    top: Fraction
    right: Fraction
    bottom: Fraction

    @model_validator(mode="after")
    def _has_area(self) -> Self:
        if self.right - self.left < 0.01 or self.bottom - self.top < 0.01:
            raise ValueError("the box is empty: right must be more than left and bottom more than top")
        return self


class VarySpec(PromptedSpec):
    """Variations of a stored image: img2img from `source` (a file-store hash) with new seeds.

    `strength` is how much of the denoising is redone: ~0.35 keeps the composition (subtle), ~0.7
    keeps the colours and rough layout (strong). With a region (`mask`, a file-store hash of a mask
    image, or `box`) only that part is repainted and the pixels outside it are kept.
    """

    kind: Literal["vary"] = "vary"
    source: str = Field(pattern=SHA256_PATTERN)
    strength: float = Field(ge=0.05, le=1.0, allow_inf_nan=False)
    mask: str | None = Field(default=None, pattern=SHA256_PATTERN)
    box: RegionBox | None = None

    @model_validator(mode="after")
    def _one_region_at_most(self) -> Self:
        if self.mask is not None and self.box is not None:
            raise ValueError("give a mask image or a box, not both")
        return self

    @property
    def has_region(self) -> bool:
        return self.mask is not None or self.box is not None


class Placement(BaseModel):
    """Where a source picture is drawn in a larger canvas, in the canvas's pixels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    left: int = Field(ge=0)
    top: int = Field(ge=0)
    width: int = Field(ge=8)
    height: int = Field(ge=8)

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height


OUTPAINT_OPERATIONS = ("zoom", "pan-left", "pan-right", "pan-up", "pan-down", "square", "aspect")
OutpaintOperation = Literal["zoom", "pan-left", "pan-right", "pan-up", "pan-down", "square", "aspect"]


class OutpaintSpec(PromptedSpec):
    """Extend a stored picture: draw `source` at `placement` in a `width` x `height` canvas and paint
    the rest to match. `operation` (zoom, pan, square, aspect) is what the user asked for; the
    placement is its resolved geometry (generation.outpaint), so the job replays from the spec alone."""

    kind: Literal["outpaint"] = "outpaint"
    source: str = Field(pattern=SHA256_PATTERN)
    operation: OutpaintOperation
    placement: Placement

    @model_validator(mode="after")
    def _placement_inside_canvas(self) -> Self:
        box = self.placement
        if box.right > self.width or box.bottom > self.height:
            raise ValueError(f"the placement must lie inside the {self.width}x{self.height} canvas")
        if box.width == self.width and box.height == self.height:
            raise ValueError("the placement covers the whole canvas: there is nothing to paint")
        return self


UpscaleMode = Literal["subtle", "creative"]
UPSCALE_MODES: tuple[str, ...] = UpscaleMode.__args__  # type: ignore[attr-defined]
UPSCALE_STRENGTHS: dict[str, float] = {"subtle": 0.2, "creative": 0.4}
UpscaleMethod = Literal["img2img", "x4"]
MAX_UPSCALED_SIDE = 4096
UPSCALE_PROMPT = "an upscaled picture"  # for uploads: tiles ignore the prompt (UpscaleSpec); captions show it


class UpscaleSpec(PromptedSpec):
    """A larger, sharper `source`: resized to `width` x `height`, then redrawn tile by tile with
    img2img at `strength` (low for subtle, higher for creative). Tiles of `tile_size` pixels overlap by
    `tile_overlap` and are blended, so memory stays that of one tile batch whatever the output size.

    Tiles are conditioned on `tile_prompt`, not on the scene's prompt: a tile shows only part of the
    scene, and the whole scene's prompt paints a small copy of the scene into every tile (measured on
    the bundled model: a circle per tile). Empty means unconditioned (and no guidance pass).
    """

    kind: Literal["upscale"] = "upscale"
    source: str = Field(pattern=SHA256_PATTERN)
    factor: Literal[2, 4]
    mode: UpscaleMode
    strength: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)  # 0: resize only
    width: int = Field(ge=MIN_SIDE, le=MAX_UPSCALED_SIDE, multiple_of=8)
    height: int = Field(ge=MIN_SIDE, le=MAX_UPSCALED_SIDE, multiple_of=8)
    seeds: tuple[Annotated[int, Field(ge=0, le=MAX_SEED)], ...] = Field(min_length=1, max_length=1)
    tile_size: int = Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    tile_overlap: int = Field(ge=0, le=MAX_SIDE // 2, multiple_of=8)
    tile_prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS)
    # x4: the model's configured super-resolution upscaler (tile_size in source pixels; strength unused).
    method: UpscaleMethod = "img2img"
    noise_level: int = Field(default=20, ge=0, le=350)  # x4 only: noise added to the low-res input

    @model_validator(mode="after")
    def _overlap_below_tile(self) -> Self:
        if self.tile_overlap >= self.tile_size:
            raise ValueError("tile_overlap must be smaller than tile_size")
        return self


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

    @property
    def trigger(self) -> str:
        """What `<token>` stands for in prompts: DreamBooth's rare identifier plus the class noun."""
        return f"{LORA_IDENTIFIER} {self.class_noun}" if self.method == "lora" else ""


LORA_IDENTIFIER = "sks"  # the rare-token identifier of the DreamBooth paper and diffusers' examples


class ImportSpec(_Spec):
    """Check that an uploaded LoRA or embedding loads into a base model, then add it to the library."""

    kind: Literal["import"] = "import"
    model: str = Field(min_length=1, max_length=64)
    name: str = Field(pattern=ADAPTER_NAME_PATTERN)
    adapter_kind: AdapterKind
    file: str = Field(pattern=SHA256_PATTERN)
    trigger: str = Field(default="", max_length=200)

    def ref(self) -> AdapterRef:
        return AdapterRef(name=self.name, kind=self.adapter_kind, file=self.file, trigger=self.trigger)


JobSpec = Annotated[
    ImagineSpec | VarySpec | OutpaintSpec | UpscaleSpec | TrainSpec | ImportSpec, Field(discriminator="kind")
]


def spec_files(spec: JobSpec) -> tuple[str, ...]:
    """The hashes of every stored file `spec` reads (pictures, masks, photos, adapters), in order."""
    found: list[str | None] = []
    if isinstance(spec, PromptedSpec):
        found += [ref.file for ref in spec.adapters]
    if isinstance(spec, ImagineSpec) and spec.control:
        found.append(spec.control.image)
    if isinstance(spec, VarySpec | OutpaintSpec | UpscaleSpec):
        found.append(spec.source)
    if isinstance(spec, VarySpec):
        found.append(spec.mask)
    if isinstance(spec, TrainSpec):
        found += spec.images
    if isinstance(spec, ImportSpec):
        found.append(spec.file)
    return tuple(dict.fromkeys(digest for digest in found if digest))


def adapter_files(spec: JobSpec) -> tuple[str, ...]:
    """The hashes of the LoRAs and embeddings `spec` renders with."""
    adapters = spec.adapters if isinstance(spec, PromptedSpec) else ()
    return tuple(ref.file for ref in adapters if ref.file)


_JOB_SPEC_ADAPTER: TypeAdapter[JobSpec] = TypeAdapter(JobSpec)

SpecT = TypeVar("SpecT", bound=BaseModel)  # a job spec or one of its parts (ControlRef, RegionBox)


def spec_from_json(text: str | bytes) -> JobSpec:
    """Parse any job spec from its JSON form (the `kind` field says which)."""
    try:
        return _JOB_SPEC_ADAPTER.validate_json(text)
    except ValidationError as error:
        raise SpecError(describe_validation_error(error)) from None


def build_spec(spec_type: type[SpecT], **fields: Any) -> SpecT:
    """Construct a spec, turning pydantic's validation errors into one friendly `SpecError`."""
    try:
        return spec_type(**fields)
    except ValidationError as error:
        raise SpecError(describe_validation_error(error)) from None


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, naming the field, what is allowed and what was given."""
    lines = []
    for problem in error.errors(include_url=False):
        field = ".".join(str(part) for part in problem["loc"]) or "spec"
        message = problem["msg"].removeprefix("Value error, ")
        given = problem.get("input")
        shown = excerpt(given, 40) if isinstance(given, str) else excerpt(repr(given), 40, quote=False)
        suffix = f" (got {shown})" if given is not None and not isinstance(given, dict) else ""
        lines.append(f"{field}: {message}{suffix}")
    return "; ".join(lines)
