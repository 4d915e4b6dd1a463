"""Schedulers by the short names users type; a fresh instance per job (they are not thread-safe)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    LCMScheduler,
    TCDScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from generation.errors import SpecError
from generation.specs import SCHEDULER_NAMES

_SCHEDULERS: dict[str, tuple[type[SchedulerMixin], dict[str, Any]]] = {
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "ddim": (DDIMScheduler, {}),
    "ddpm": (DDPMScheduler, {}),
    "lcm": (LCMScheduler, {}),
    "tcd": (TCDScheduler, {}),  # for TCD LoRAs (few steps, sharper than LCM)
}
assert tuple(_SCHEDULERS) == SCHEDULER_NAMES, "specs.SchedulerName and this table must list the same names"


def sd_noise_schedule() -> DDIMScheduler:
    """The noise schedule SD 1.x checkpoints ship with (scaled-linear betas 0.00085-0.012, 1000 steps)."""
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def make_scheduler(name: str, base_config: Mapping[str, Any]) -> SchedulerMixin:
    """A new scheduler of kind `name` on the checkpoint's noise schedule (`base_config`)."""
    if name not in _SCHEDULERS:
        raise SpecError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULER_NAMES)}")
    if base_config.get("_class_name") == FlowMatchEulerDiscreteScheduler.__name__:
        # Flow-matching models (Flux) have their own sampler; the noise-prediction ones do not apply.
        return FlowMatchEulerDiscreteScheduler.from_config(dict(base_config))
    scheduler_type, overrides = _SCHEDULERS[name]
    return scheduler_type.from_config(dict(base_config), **overrides)
