"""Job specs, one module per kind (the spec, its builder, what it reads), and the union of them all.

Importable without torch, diffusers or OpenCV: the bot builds and checks specs, workers run them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter, ValidationError

from generation.errors import SpecError
from generation.specs.base import (
    ADAPTER_KIND_NAMES,
    ADAPTER_NAME_PATTERN,
    CLASS_NOUN_PATTERN,
    GRID_SIZE,
    MAX_AREA_FACTOR,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_SIDE,
    MAX_TRAIN_IMAGES,
    MIN_SIDE,
    MIN_TRAIN_IMAGES,
    SCHEDULER_NAMES,
    SHA256_PATTERN,
    AdapterKind,
    AdapterRef,
    Lane,
    PromptedSpec,
    SchedulerName,
    SpecT,
    TrainMethod,
    adapter_name_problem,
    build_spec,
    describe_validation_error,
    fit,
    prompted_fields,
    seeds_from,
    steps_for_strength,
)
from generation.specs.describe import SUGGESTIONS, DescribeSpec
from generation.specs.imagine import (
    CONTROL_MODES,
    ControlMode,
    ControlRef,
    ImagineSpec,
    check_control_mode,
    imagine_spec,
)
from generation.specs.library_import import ImportSpec
from generation.specs.outpaint import (
    MAX_ZOOM,
    MIN_ZOOM,
    OUTPAINT_OPERATIONS,
    ZOOM_PRESETS,
    Canvas,
    OutpaintOperation,
    OutpaintSpec,
    Placement,
    outpaint_spec,
    plan_outpaint,
)
from generation.specs.train import LORA_IDENTIFIER, TrainSpec
from generation.specs.upscale import (
    MAX_UPSCALED_SIDE,
    UPSCALE_MODES,
    UPSCALE_PROMPT,
    UPSCALE_STRENGTHS,
    UpscaleMethod,
    UpscaleMode,
    UpscaleSetup,
    UpscaleSpec,
    upscale_spec,
)
from generation.specs.vary import (
    REGION_STRENGTH,
    STRONG_STRENGTH,
    SUBTLE_STRENGTH,
    RegionBox,
    VarySpec,
    parse_box,
    vary_spec,
)

JobSpec = Annotated[
    ImagineSpec | VarySpec | OutpaintSpec | UpscaleSpec | TrainSpec | ImportSpec | DescribeSpec,
    Field(discriminator="kind"),
]


def spec_files(spec: JobSpec) -> tuple[str, ...]:
    """The hashes of every stored file `spec` reads (pictures, masks, photos, adapters), in order."""
    return tuple(dict.fromkeys(spec.files()))


def adapter_files(spec: JobSpec) -> tuple[str, ...]:
    """The hashes of the LoRAs and embeddings `spec` renders with."""
    adapters = spec.adapters if isinstance(spec, PromptedSpec) else ()
    return tuple(ref.file for ref in adapters if ref.file)


_JOB_SPEC_ADAPTER: TypeAdapter[JobSpec] = TypeAdapter(JobSpec)


def spec_from_json(text: str | bytes) -> JobSpec:
    """Parse any job spec from its JSON form (the `kind` field says which)."""
    try:
        return _JOB_SPEC_ADAPTER.validate_json(text)
    except ValidationError as error:
        raise SpecError(describe_validation_error(error)) from None


__all__ = [
    "ADAPTER_KIND_NAMES", "ADAPTER_NAME_PATTERN", "CLASS_NOUN_PATTERN", "CONTROL_MODES", "GRID_SIZE", "LORA_IDENTIFIER",
    "MAX_AREA_FACTOR", "MAX_PROMPT_CHARS", "MAX_SEED", "MAX_SIDE", "MAX_TRAIN_IMAGES", "MAX_UPSCALED_SIDE",
    "MAX_ZOOM", "MIN_SIDE", "MIN_TRAIN_IMAGES", "MIN_ZOOM", "OUTPAINT_OPERATIONS", "REGION_STRENGTH",
    "SCHEDULER_NAMES", "SHA256_PATTERN", "STRONG_STRENGTH", "SUBTLE_STRENGTH", "SUGGESTIONS", "UPSCALE_MODES",
    "UPSCALE_PROMPT", "UPSCALE_STRENGTHS", "ZOOM_PRESETS", "AdapterKind", "AdapterRef", "Canvas",
    "ControlMode", "ControlRef", "DescribeSpec", "ImagineSpec", "ImportSpec", "JobSpec", "Lane", "OutpaintOperation",
    "OutpaintSpec", "Placement", "PromptedSpec", "RegionBox", "SchedulerName", "SpecError", "SpecT",
    "TrainMethod", "TrainSpec", "UpscaleMethod", "UpscaleMode", "UpscaleSetup", "UpscaleSpec", "VarySpec",
    "adapter_files", "adapter_name_problem", "build_spec", "check_control_mode", "describe_validation_error",
    "fit", "imagine_spec", "outpaint_spec", "parse_box", "plan_outpaint", "prompted_fields", "seeds_from",
    "spec_files", "spec_from_json", "steps_for_strength", "upscale_spec", "vary_spec",
]  # fmt: skip
