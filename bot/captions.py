"""The words on a job's Discord message: its title while it runs and the caption of its result."""

from __future__ import annotations

from generation.specs import (
    STRONG_STRENGTH,
    SUBTLE_STRENGTH,
    ImagineSpec,
    ImportSpec,
    JobSpec,
    OutpaintSpec,
    PromptedSpec,
    TrainSpec,
    UpscaleSpec,
    VarySpec,
    spec_from_json,
)
from storage.models import Job

METHOD_NAMES = {"lora": "LoRA", "embedding": "embedding"}


OUTPAINT_WORDS = {
    "zoom": "zoomed out",
    "pan-left": "panned left",
    "pan-right": "panned right",
    "pan-up": "panned up",
    "pan-down": "panned down",
    "square": "made square",
    "aspect": "new aspect",
}


def operation_words(spec: JobSpec) -> str:
    """What a derived job did to its picture, e.g. "variations (subtle)", "upscaled 2x (creative)"."""
    if isinstance(spec, VarySpec):
        region = ", region" if spec.has_region else ""
        return f"variations ({_strength_word(spec.strength)}{region})"
    if isinstance(spec, UpscaleSpec):
        return f"upscaled {spec.factor}x ({spec.mode})"
    if isinstance(spec, OutpaintSpec):
        return f"{OUTPAINT_WORDS[spec.operation]} to {spec.width}x{spec.height}"
    if isinstance(spec, ImagineSpec) and spec.control:
        return f"{spec.control.mode} control, scale {spec.control.scale:g}"
    return ""


def job_title(spec: JobSpec) -> str:
    if isinstance(spec, VarySpec | UpscaleSpec | OutpaintSpec):
        return f"{spec.prompt} ({operation_words(spec)})"
    if isinstance(spec, ImagineSpec):
        return spec.prompt
    if isinstance(spec, TrainSpec):
        return f"training <{spec.token}> ({METHOD_NAMES[spec.method]}, {len(spec.images)} photos, {spec.steps} steps)"
    if isinstance(spec, ImportSpec):
        return f"importing <{spec.name}> ({METHOD_NAMES[spec.adapter_kind]})"
    return str(spec.kind)


def result_caption(job: Job) -> str:
    spec = spec_from_json(job.spec_json)
    if isinstance(spec, PromptedSpec):
        seeds = f"seed {spec.seeds[0]}" if len(spec.seeds) == 1 else f"seeds {spec.seeds[0]}–{spec.seeds[-1]}"
        prompt = spec.prompt if len(spec.prompt) <= 1500 else spec.prompt[:1497] + "…"
        words = operation_words(spec)
        kind = f" · {words}" if words else ""
        return f"**{prompt}** — <@{job.owner_id}>{kind} · {seeds} · {spec.model} · {spec.steps} steps · job {job.id}"
    if isinstance(spec, TrainSpec):
        return (
            f"**<{spec.token}>** is ready — <@{job.owner_id}>'s {METHOD_NAMES[spec.method]} of a {spec.class_noun}, "
            f"trained on {len(spec.images)} photos for {spec.model}. Use it in any prompt: "
            f"`/imagine a <{spec.token}> on the beach` (or `<{spec.token}:0.7>` for less). "
            f"It is private until you `/library share` it. Samples below · job {job.id}"
        )
    if isinstance(spec, ImportSpec):
        return (
            f"**<{spec.name}>** is in <@{job.owner_id}>'s library ({METHOD_NAMES[spec.adapter_kind]} for "
            f"{spec.model}); use it as `<{spec.name}>` in prompts · job {job.id}"
        )
    return f"{spec.kind} — <@{job.owner_id}> · job {job.id}"


def _strength_word(strength: float) -> str:
    names = {SUBTLE_STRENGTH: "subtle", STRONG_STRENGTH: "strong"}
    return names.get(strength, f"strength {strength:g}")
