"""What the bundled model's UNet and text encoder are trained to minimise (generation/bundled/train.py;
the IP-Adapter's training reuses the noise loss)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr
from torch import nn
from transformers import CLIPTokenizer

from generation.bundled.dataset import GENERIC_CAPTIONS


def noise_prediction_loss(
    prediction: torch.Tensor,
    clean: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
    scheduler: DDPMScheduler,
    gamma: float,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """v-prediction: plain MSE on v (as SD 2.x trains), which weighs the noisiest steps, where the
    layout is decided, by (1 + SNR)/SNR relative to noise MSE; min-SNR's weights would zero the last
    step, where SNR is 0. Noise prediction: min-SNR weighted. `weights`: per latent cell (broadcast
    to the prediction's shape), as `weighted_mse`."""
    if scheduler.config.prediction_type == "v_prediction":
        return weighted_mse(prediction, scheduler.get_velocity(clean, noise, timesteps), weights)
    return min_snr_loss(prediction, noise, timesteps, scheduler, gamma, weights)


def weighted_mse(
    prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None
) -> torch.Tensor:
    """The mean of `per_sample_error`: plain MSE where `weights` is None."""
    if weights is None:
        return F.mse_loss(prediction, target)
    return per_sample_error(prediction, target, weights).mean()


def per_sample_error(
    prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Each sample's squared error, a weighted mean over its elements where `weights` (broadcast to the
    prediction's shape) is given: weights 1 everywhere give the plain mean."""
    error = F.mse_loss(prediction, target, reduction="none")
    if weights is None:
        return error.mean(dim=tuple(range(1, error.dim())))
    weights = weights.expand_as(error)
    return (error * weights).flatten(1).sum(1) / weights.flatten(1).sum(1)


def min_snr_loss(
    prediction: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
    scheduler: DDPMScheduler,
    gamma: float,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Noise-prediction MSE weighted by min(SNR, gamma)/SNR (Hang et al. 2023): faster convergence.
    `weights`: per latent cell, as `weighted_mse`."""
    snr = compute_snr(scheduler, timesteps)
    step_weights = torch.clamp(snr, max=gamma) / snr
    loss: torch.Tensor = (per_sample_error(prediction, noise, weights) * step_weights).mean()
    return loss


class TokenIdentityHead(nn.Module):
    """Reads each caption token back from the text encoder's output (a linear layer over the
    vocabulary), so training keeps every word told apart at the output the UNet attends to.

    Without it the text encoder trained from scratch separates only the words the UNet learns to use
    first: colours ended 12.7 apart, "top" and "bottom" 0.6-3.0, and positions stayed at chance. On a
    probe (pure noise in, a blob where the caption says out) a fresh UNet with this head reached MSE
    0.004 in 300 steps, and 0.48 without it. Used only in training; not part of the saved model."""

    def __init__(self, width: int, vocabulary_size: int, pad_id: int) -> None:
        super().__init__()
        self.read = nn.Linear(width, vocabulary_size)
        self.pad_id = pad_id

    def forward(self, states: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the caption's own tokens (padding and the end token excluded)."""
        words = ids != self.pad_id
        return F.cross_entropy(self.read(states[words]), ids[words])


class TextAnchor:
    """A loss holding a text encoder's states where they were when the run began, for the texts a
    segment is not meant to change: the captions said whole (and empty), each background said alone,
    and the texts that go with an image prompt (`dataset.GENERIC_CAPTIONS`). Unanchored, a text-encoder
    segment teaching captions without their background rewrote the whole captions' states (MSE 0.31
    against 0.007 anchored, session 28); anchored on captions alone, it still moved "a blue background",
    and Zoom Out painted shapes where it asked for a backdrop (session 29); anchored on those too, it
    moved "a shape", and the IP-Adapter beside it fell from 74 to 67 of 100 (session 30)."""

    def __init__(self, text_encoder: nn.Module, weight: float, tokenizer: CLIPTokenizer) -> None:
        self.frozen = copy.deepcopy(text_encoder).requires_grad_(False)
        self.weight = weight
        self.generic_ids = tokenizer(
            list(GENERIC_CAPTIONS),
            padding="max_length",
            max_length=tokenizer.model_max_length,
            return_tensors="pt",
        ).input_ids

    def __call__(
        self,
        text_encoder: nn.Module,
        states: torch.Tensor,
        ids: torch.Tensor,
        background_ids: torch.Tensor,
    ) -> torch.Tensor:
        """`states`: the encoder's output for `ids`, the batch's captions said whole."""
        held = torch.cat([background_ids, self.generic_ids.to(background_ids.device)])
        current = torch.cat([states, text_encoder(held)[0]])
        kept = self.frozen(torch.cat([ids, held]))[0].detach()
        return self.weight * F.mse_loss(current, kept)
