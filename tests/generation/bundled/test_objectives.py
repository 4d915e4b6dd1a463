"""The second bundled design's training objectives: no picture left in the last step's noise (the first
model read its layout from there), and a text encoder that keeps every word of a caption apart."""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler

from generation.bundled import architecture
from generation.bundled.objectives import TokenIdentityHead, noise_prediction_loss


def last_step_correlation(design: architecture.Design) -> float:
    """Correlation of the noisiest training input with the clean latents it was made from."""
    schedule = DDPMScheduler.from_config(architecture.build_scheduler(design).config)
    generator = torch.Generator().manual_seed(0)
    clean = torch.randn((64, 4, 16, 16), generator=generator)
    noise = torch.randn(clean.shape, generator=generator)
    noisy = schedule.add_noise(clean, noise, torch.full((64,), 999))
    return float(torch.corrcoef(torch.stack([noisy.flatten(), clean.flatten()]))[0, 1])


def test_the_second_design_starts_from_pure_noise_and_the_first_does_not() -> None:
    assert last_step_correlation(architecture.V1) > 0.05  # SD's schedule: sqrt(alpha_bar) = 0.068
    assert abs(last_step_correlation(architecture.V2)) < 0.01


def test_the_second_design_samples_from_the_last_timestep_with_v_prediction() -> None:
    config = architecture.build_scheduler(architecture.V2).config
    assert (config.prediction_type, config.timestep_spacing) == ("v_prediction", "trailing")
    scheduler = architecture.build_scheduler(architecture.V2)
    scheduler.set_timesteps(20)
    assert int(scheduler.timesteps[0]) == 999  # "leading" spacing would start at 951, never at SNR 0


def test_the_v_loss_is_finite_at_zero_snr_and_learns_the_clean_picture_there() -> None:
    schedule = DDPMScheduler.from_config(architecture.build_scheduler(architecture.V2).config)
    generator = torch.Generator().manual_seed(1)
    clean = torch.randn((8, 4, 16, 16), generator=generator)
    noise = torch.randn(clean.shape, generator=generator)
    last = torch.full((8,), 999)
    # At SNR 0 the target v is -clean: predicting it exactly costs nothing, predicting zero costs its power.
    assert noise_prediction_loss(-clean, clean, noise, last, schedule, 5.0).item() < 1e-6
    missing = noise_prediction_loss(torch.zeros_like(clean), clean, noise, last, schedule, 5.0).item()
    assert abs(missing - clean.pow(2).mean().item()) < 1e-4


def test_the_token_head_reads_only_the_captions_own_words() -> None:
    tokenizer = architecture.build_tokenizer()
    head = TokenIdentityHead(architecture.TEXT_DIM, len(tokenizer), tokenizer.pad_token_id)
    ids = tokenizer(["a red circle at the top left"], padding="max_length", return_tensors="pt").input_ids
    states = torch.randn((1, ids.shape[1], architecture.TEXT_DIM), generator=torch.Generator().manual_seed(2))
    padding = ids == tokenizer.pad_token_id
    changed = states.clone()
    changed[padding] = torch.randn((int(padding.sum()), architecture.TEXT_DIM))
    assert head(states, ids).item() == head(changed, ids).item()


def test_the_token_head_keeps_position_words_apart_in_the_text_encoder() -> None:
    """Trained on the head's loss alone, a fresh text encoder's outputs for 'top' and 'bottom' move apart."""
    torch.manual_seed(0)
    tokenizer = architecture.build_tokenizer()
    encoder = architecture.build_text_encoder(tokenizer, architecture.V2)
    head = TokenIdentityHead(architecture.TEXT_DIM, len(tokenizer), tokenizer.pad_token_id)
    captions = ["a red circle at the top left", "a red circle at the bottom left"]
    ids = tokenizer(captions, padding="max_length", return_tensors="pt").input_ids

    def apart() -> float:
        with torch.no_grad():
            states = encoder(ids)[0]
        return float((states[0, 6] - states[1, 6]).norm() / states[0, 6].norm())  # "top" / "bottom"

    before = apart()
    optimizer = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=1e-3)
    for _ in range(30):
        loss = head(encoder(ids)[0], ids)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    assert apart() > 1.5 * before, (before, apart())
