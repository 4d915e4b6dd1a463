"""The words on a job's Discord message: its title while it runs and the caption of its result."""

from __future__ import annotations

from generation.specs import (
    STRONG_STRENGTH,
    SUBTLE_STRENGTH,
    ImagineSpec,
    ImportSpec,
    JobSpec,
    PromptedSpec,
    TrainSpec,
    VarySpec,
    spec_from_json,
)
from storage.models import Job

METHOD_NAMES = {"lora": "LoRA", "embedding": "embedding"}


def job_title(spec: JobSpec) -> str:
    if isinstance(spec, VarySpec):
        return f"{spec.prompt} (variations)"
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
        kind = f" · variations ({_strength_word(spec.strength)})" if isinstance(spec, VarySpec) else ""
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
