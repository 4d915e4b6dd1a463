"""Typed job specs: everything needed to reproduce a job, serialisable to JSON and back losslessly.

Every button (U/V/reroll/zoom) becomes a new spec derived from a stored one, so a spec must hold the
resolved values (seeds, size, steps, scheduler), never "use the default".
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from generation.errors import SpecError

SchedulerName = Literal["euler_a", "euler", "dpmpp_2m", "ddim", "ddpm", "lcm"]
SCHEDULER_NAMES: tuple[str, ...] = SchedulerName.__args__  # type: ignore[attr-defined]

MAX_SEED = 2**32 - 1
ADAPTER_NAME_PATTERN = r"^[A-Za-z0-9_-]{2,32}$"
MAX_PROMPT_CHARS = 1500
MIN_SIDE, MAX_SIDE = 32, 2048


class AdapterRef(BaseModel):
    """A `<name>` or `<name:weight>` reference to a LoRA or embedding in the user's library."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=ADAPTER_NAME_PATTERN)
    weight: float = Field(default=1.0, ge=-2.0, le=2.0, allow_inf_nan=False)


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_json(self) -> str:
        return self.model_dump_json()


class ImagineSpec(_Spec):
    """Text to image: one image per seed, rendered in one batched pipeline call."""

    kind: Literal["imagine"] = "imagine"
    model: str = Field(min_length=1, max_length=64)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS)
    seeds: tuple[Annotated[int, Field(ge=0, le=MAX_SEED)], ...] = Field(min_length=1, max_length=8)
    width: int = Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    height: int = Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    steps: int = Field(ge=1, le=150)
    guidance: float = Field(ge=0.0, le=30.0, allow_inf_nan=False)
    scheduler: SchedulerName = "euler_a"
    chaos: int = Field(default=0, ge=0, le=100)
    tile: bool = False
    adapters: tuple[AdapterRef, ...] = ()

    @model_validator(mode="after")
    def _prompt_is_not_blank(self) -> Self:
        if not self.prompt.strip():
            raise ValueError("the prompt is empty: describe what you want to see")
        return self

    def single(self, index: int) -> ImagineSpec:
        """The spec that renders image `index` of this one alone (its own seed, same everything else)."""
        if not 0 <= index < len(self.seeds):
            raise SpecError(f"image index must be 0..{len(self.seeds) - 1}, got {index}")
        return self.model_copy(update={"seeds": (self.seeds[index],)})


JobSpec = Annotated[ImagineSpec, Field(discriminator="kind")]
_JOB_SPEC_ADAPTER: TypeAdapter[JobSpec] = TypeAdapter(JobSpec)

SpecT = TypeVar("SpecT", bound=_Spec)


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
        suffix = f" (got {given!r})" if given is not None and not isinstance(given, dict) else ""
        lines.append(f"{field}: {message}{suffix}")
    return "; ".join(lines)
