"""A head start for the bundled IP-Adapter: its image tokens placed where the caption's own tokens are.

Each `to_k_ip`/`to_v_ip` starts as a copy of its layer's text `to_k`/`to_v` (fresh_adapter_state), so
an image token equal to the text encoder's state of the word "red" gives the key and value "red"
gives. Before any diffusion step, the projection (image embedding -> TOKENS tokens) is fitted to give, for
a picture of one shape, the text encoder's states of "a {size} {colour} {shape}" at its size, colour and
shape words and its end token (which sums up the caption). On its own it does not make the tokens
act as those words (both colour and shape right in 2-5% of pictures before any diffusion step), but
it is where the diffusion steps start: on the second model, 250 steps with the caption teacher gave
both right in 18 of 40 pictures from the fitted projection and 1 of 40 from a random one
(bench/RESULTS.md, "Session 21").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from generation.bundled.dataset import Scene

TARGET_WORDS = 4  # "a {size} {colour} {shape}": the size, colour and shape words and the end token


@torch.no_grad()
def caption_token_states(pipe: Any, scenes: Sequence[Scene]) -> torch.Tensor:
    """(N, TARGET_WORDS, cross_attention_dim): the text encoder's states of each one-shape scene's
    short caption at its words (positions 2, 3, 4 after the start token and "a") and its end."""
    captions = [f"a {s.shapes[0].size} {s.shapes[0].colour} {s.shapes[0].shape}" for s in scenes]
    ids = pipe.tokenizer(captions, padding="max_length", truncation=True, return_tensors="pt").input_ids
    # Each caption word is one token of the bundled tokenizer: start, a, size, colour, shape, end.
    if not bool((ids[:, 5] == pipe.tokenizer.eos_token_id).all()):
        raise ValueError("a caption word is not a single token of this model's tokenizer")
    states = torch.cat([pipe.text_encoder(chunk.to(pipe.device))[0].cpu() for chunk in torch.split(ids, 256)])
    return states[:, 2:6]


@torch.no_grad()
def empty_caption_state(pipe: Any) -> torch.Tensor:
    """The end token's state of the empty caption: what the all-zero image embedding (the pipeline's
    unconditional pass) is fitted to, so that pass stays close to "no picture"."""
    ids = pipe.tokenizer("", padding="max_length", return_tensors="pt").input_ids
    state: torch.Tensor = pipe.text_encoder(ids.to(pipe.device))[0][0, 1]
    return state.cpu()


def align_projection(
    pipe: Any, embeds: torch.Tensor, scenes: Sequence[Scene], steps: int, generator: torch.Generator
) -> float:
    """Fit the loaded adapter's projection so `embeds` (the image embeddings of one-shape `scenes`)
    give their captions' token states; returns the final mean squared error."""
    projection = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    tokens = projection.num_image_text_embeds
    if tokens != TARGET_WORDS:
        raise ValueError(f"the projection gives {tokens} tokens; alignment fits {TARGET_WORDS}")
    zero = empty_caption_state(pipe).expand(1, tokens, -1)
    embeds = torch.cat([embeds, torch.zeros(1, embeds.shape[1])])
    targets = torch.cat([caption_token_states(pipe, scenes), zero])
    return fit_to_targets(projection, embeds, targets, steps, generator, batch=256, one_cycle=False)


def fit_to_targets(
    projection: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    generator: torch.Generator,
    *,
    batch: int,
    one_cycle: bool,
    extra_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Regress `projection(inputs)` onto `targets` (mean squared error, AdamW at 3e-3, constant or one
    cycle), the last input (the unguided pass's) in every batch; returns the final error.
    `extra_loss(outputs, index)` is added to each step's error (which stays what is returned)."""
    optimizer = torch.optim.AdamW(projection.parameters(), lr=3e-3, weight_decay=0.0)
    # Made only when used: OneCycleLR sets the optimizer's starting rate when it is built.
    schedule = (
        torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=max(steps, 1))
        if one_cycle
        else None
    )
    device = next(projection.parameters()).device
    loss = torch.zeros(())
    for _ in range(steps):
        index = torch.randint(len(inputs), (batch,), generator=generator)
        index[0] = len(inputs) - 1
        outputs = projection(inputs[index].to(device))
        loss = F.mse_loss(outputs, targets[index].to(device))
        total = loss if extra_loss is None else loss + extra_loss(outputs, index)
        optimizer.zero_grad(set_to_none=True)
        total.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward carries no annotations
        optimizer.step()
        if schedule is not None:
            schedule.step()
    return float(loss.item())
