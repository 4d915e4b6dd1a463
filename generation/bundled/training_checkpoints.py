"""The bundled trainer's checkpoints (generation/bundled/train.py): what `--resume` continues from
--work, and `--init`'s checkpoints made from a model folder the trainer saved."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.training_utils import EMAModel
from transformers import CLIPTextModel

log = logging.getLogger(__name__)


def save_checkpoint(
    folder: Path, models: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer, step: int, loss: float
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, model in models.items():
        model.save_pretrained(folder / name)  # type: ignore[operator]
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    (folder / "state.json").write_text(json.dumps({"step": step, "loss": loss}))
    log.info("checkpoint %s at step %d (loss %.4f)", folder.name, step, loss)


def resume_model(folder: Path, model_type: Any) -> tuple[Any, int] | None:
    """A diffusers model class's `from_pretrained` of the checkpoint, and its step; None: none yet."""
    state = folder / "state.json"
    if not state.is_file():
        return None
    step = json.loads(state.read_text())["step"]
    return model_type.from_pretrained(folder / folder.name), step


def resume_optimizer(folder: Path, optimizer: torch.optim.Optimizer) -> bool:
    if not (folder / "optimizer.pt").is_file():
        return False
    optimizer.load_state_dict(
        load_tensors(folder / "optimizer.pt")
    )  # its moments move to the parameters' device
    return True


def load_tensors(path: Path) -> Any:
    """A checkpoint's tensors (weights only: no pickled code), on the CPU whatever device saved them."""
    return torch.load(path, weights_only=True, map_location="cpu")


def init_work(model: Path, work: Path, vae_steps: int) -> None:
    """Checkpoints in `work` that continue a model folder this script saved (its EMA weights, fresh
    optimizer and EMA): training resumes across machines from a committed snapshot, not only from
    --work's full checkpoints (weights, EMA, optimizer moments: four times the size)."""
    trained = json.loads((model / "training_config.json").read_text())
    vae = AutoencoderKL.from_pretrained(model / "vae", dtype=torch.float32)
    vae.save_pretrained(work / "vae" / "vae")  # the VAE stage is over
    (work / "vae" / "state.json").write_text(json.dumps({"step": vae_steps, "loss": None}))
    unet = UNet2DConditionModel.from_pretrained(model / "unet", dtype=torch.float32)
    text_encoder = CLIPTextModel.from_pretrained(model / "text_encoder", dtype=torch.float32)
    folder = work / "unet"
    unet.save_pretrained(folder / "unet")
    text_encoder.save_pretrained(folder / "text_encoder")
    torch.save(EMAModel(unet.parameters()).state_dict(), folder / "ema_unet.pt")
    torch.save(EMAModel(text_encoder.parameters()).state_dict(), folder / "ema_text.pt")
    step = trained.get("unet_steps_done", trained["unet_steps"])
    (folder / "state.json").write_text(json.dumps({"step": step, "loss": None}))
    log.info("continuing %s from UNet step %d", model, step)
