"""What every job spec shares: the spec base (frozen, JSON round trip), the prompted fields, personal
token references, the limits, and the helpers the builders of every kind use (seeds, sizes, one
error formatting). Importable without torch: the bot builds specs, workers run them.

Every button (U/V/reroll/zoom) becomes a new spec derived from a stored one, so a spec must hold the
resolved values (seeds, size, steps, scheduler), never "use the default".
"""

from __future__ import annotations

import math
import re
import secrets
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from generation.errors import SpecError, excerpt

SchedulerName = Literal["euler_a", "euler", "dpmpp_2m", "ddim", "ddpm", "lcm", "tcd"]
SCHEDULER_NAMES: tuple[str, ...] = SchedulerName.__args__  # type: ignore[attr-defined]

MAX_SEED = 2**32 - 1
ADAPTER_NAME_PATTERN = r"^[A-Za-z0-9_-]{2,32}$"
MAX_PROMPT_CHARS = 1500
MIN_SIDE, MAX_SIDE = 32, 2048
MEGAPIXEL = 1_000_000
Lane = Literal["interactive", "training"]


AdapterKind = Literal["lora", "embedding"]
ADAPTER_KIND_NAMES: dict[str, str] = {"lora": "LoRA", "embedding": "embedding"}  # as people write them
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
    lane: ClassVar[Lane] = "interactive"  # which of the pool's queues and workers run this kind

    def to_json(self) -> str:
        return self.model_dump_json()

    def files(self) -> tuple[str, ...]:
        """The file-store hashes this job reads (pictures, masks, photos, adapters), in order."""
        return ()

    def work(self) -> float:
        """Work units (denoising steps x pictures x megapixels) the job needs: what ETAs are made of."""
        return 0.05  # no pictures to render: loading and checking only

    def title(self) -> str:
        """What the job is, in plain words, while it waits and runs (the bot escapes and shortens it)."""
        return str(getattr(self, "kind", "job"))

    def needs(self) -> frozenset[str]:
        """What the job asks of its model's family (generation.models.family_facts.OPERATION_WORDS):
        checked when it is submitted and again by the worker."""
        return frozenset()

    def library_name(self) -> str | None:
        """The name this job adds to its owner's library when it succeeds (None: it adds nothing)."""
        return None

    def files_done_with(self, *, succeeded: bool) -> tuple[str, ...]:
        """Files of `files()` nobody needs once the job has ended (removed unless a row still names them)."""
        return ()


class PromptedSpec(_Spec):
    """What every prompted rendering job has: model, prompts, one seed per image, size, sampler, adapters."""

    model: str = Field(min_length=1, max_length=64)
    prompt: str = Field(max_length=MAX_PROMPT_CHARS)  # blank only where prompt_required() says so
    negative_prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS)
    seeds: tuple[Annotated[int, Field(ge=0, le=MAX_SEED)], ...] = Field(min_length=1, max_length=8)
    width: int = Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    height: int = Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    steps: int = Field(ge=1, le=150)
    guidance: float = Field(ge=0.0, le=30.0, allow_inf_nan=False)
    scheduler: SchedulerName = "euler_a"
    adapters: tuple[AdapterRef, ...] = ()
    stop: int = Field(default=100, ge=10, le=100)  # --stop: percent of the steps run, then decoded as is

    @model_validator(mode="after")
    def _prompt_is_not_blank(self) -> Self:
        if self.prompt_required() and not self.prompt.strip():
            raise ValueError("the prompt is empty: describe what you want to see")
        return self

    def prompt_required(self) -> bool:
        """False where something else says what to draw (pictures that prompt: /blend)."""
        return True

    def files(self) -> tuple[str, ...]:
        return tuple(ref.file for ref in self.adapters if ref.file)

    def work(self) -> float:
        return self.steps * len(self.seeds) * self.width * self.height / MEGAPIXEL

    def operation_words(self) -> str:
        """What the job did beyond its prompt, in a few plain words for captions ("" for none)."""
        return ""

    def title(self) -> str:
        words = self.operation_words()
        return f"{self.prompt} ({words})" if words else self.prompt

    def needs(self) -> frozenset[str]:
        kinds = {ref.kind for ref in self.adapters if ref.kind}  # "lora", "embedding"
        return frozenset(kinds | ({"negative"} if self.negative_prompt.strip() else set()))

    def single(self, index: int) -> Self:
        """The spec that renders image `index` of this one alone (its own seed, same everything else)."""
        if not 0 <= index < len(self.seeds):
            raise SpecError(f"image index must be 0..{len(self.seeds) - 1}, got {index}")
        return self.model_copy(update={"seeds": (self.seeds[index],)})


GRID_SIZE = 4
MAX_AREA_FACTOR = 4  # a job may ask for up to 4x the model's native pixel count (2x each side)


def seeds_from(first: int, count: int) -> tuple[int, ...]:
    """seed, seed+1, … wrapping at 2**32 so every seed stays valid."""
    return tuple((first + offset) % (MAX_SEED + 1) for offset in range(count))


def prompted_fields(spec: PromptedSpec, *, seed: int | None = None, **changes: Any) -> dict[str, Any]:
    """What every derived spec keeps of its base: model, prompts, sampler, adapters (and size); new
    seeds from `seed` (random when None), never the base's: a derived job is a new roll."""
    fields = {name: getattr(spec, name) for name in PromptedSpec.model_fields}
    first = seed if seed is not None else secrets.randbelow(MAX_SEED + 1)
    fields["seeds"] = seeds_from(first, GRID_SIZE)
    fields.update(changes)
    return fields


def img2img_steps(steps: int, strength: float) -> int:
    """How many of `steps` img2img actually runs at `strength` (the last part of the schedule)."""
    return max(1, math.floor(steps * strength))


def steps_for_strength(steps: int, strength: float) -> int:
    """img2img runs only the last `steps * strength` steps: ask for enough that at least one runs."""
    return max(steps, math.ceil(1 / strength)) if strength > 0 else steps


def fit(width: float, height: float, max_area: int) -> tuple[int, int]:
    """Scale (down only) to at most `max_area` pixels and MAX_SIDE per side, in multiples of 8."""
    scale = min(1.0, math.sqrt(max_area / (width * height)), MAX_SIDE / width, MAX_SIDE / height)
    return (max(MIN_SIDE, int(width * scale) // 8 * 8), max(MIN_SIDE, int(height * scale) // 8 * 8))


SpecT = TypeVar("SpecT", bound=BaseModel)  # a job spec or one of its parts (ControlRef, RegionBox)


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
