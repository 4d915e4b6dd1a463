"""Training checkpoints: the trained tensors, the optimizer's state and the step, in one safetensors file.

A worker that crashes mid-training is restarted by the pool and the job retried; the retry resumes from
the last checkpoint. Each step draws its randomness from (seed, step), so a resumed run continues with
exactly the numbers the uninterrupted run would have used.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

log = logging.getLogger(__name__)

_ADAM_KEYS = ("step", "exp_avg", "exp_avg_sq")


class Checkpoint:
    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path = path
        self.fingerprint = fingerprint  # of the spec: a checkpoint of another job is never resumed

    def save(self, step: int, parameters: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer) -> None:
        tensors: dict[str, torch.Tensor] = {}
        for index, parameter in enumerate(parameters):
            tensors[f"param.{index}"] = parameter.detach().cpu().contiguous()
            for key, value in optimizer.state.get(parameter, {}).items():
                if key in _ADAM_KEYS:
                    tensors[f"adam.{key}.{index}"] = torch.as_tensor(value).detach().cpu().contiguous()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        save_file(tensors, temporary, metadata={"step": str(step), "fingerprint": self.fingerprint})
        os.replace(temporary, self.path)  # a crash while saving leaves the previous checkpoint intact

    def restore(self, parameters: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer) -> int:
        """Load the checkpoint into `parameters` and `optimizer`; the step to go on from (0: none)."""
        if not self.path.exists():
            return 0
        with safe_open(self.path, framework="pt") as file:
            keys = set(file.keys())
            metadata = file.metadata() or {}
            if metadata.get("fingerprint") != self.fingerprint:
                log.warning("ignoring %s: it belongs to another training", self.path)
                return 0
            with torch.no_grad():
                for index, parameter in enumerate(parameters):
                    parameter.copy_(file.get_tensor(f"param.{index}"))
                    state = {
                        # Adam keeps its step counter on the CPU unless it runs fused/capturable.
                        key: _on(file.get_tensor(f"adam.{key}.{index}"), parameter, key)
                        for key in _ADAM_KEYS
                        if f"adam.{key}.{index}" in keys
                    }
                    if state:
                        optimizer.state[parameter] = state
        step = int(metadata["step"])
        log.info("resuming training from step %d (%s)", step, self.path)
        return step

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _on(tensor: torch.Tensor, parameter: torch.nn.Parameter, key: str) -> torch.Tensor:
    return tensor if key == "step" else tensor.to(parameter.device)
