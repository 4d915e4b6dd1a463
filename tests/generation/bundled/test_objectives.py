"""The second bundled design's training objectives: no picture left in the last step's noise (the first
model read its layout from there), and a text encoder that keeps every word of a caption apart."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import DDPMScheduler

from generation.bundled import architecture
from generation.bundled.dataset import GENERIC_CAPTIONS
from generation.bundled.objectives import (
    TextAnchor,
    TokenIdentityHead,
    noise_prediction_loss,
    per_sample_error,
)


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


@pytest.mark.parametrize("design", [architecture.V1, architecture.V2])  # noise and v prediction
def test_weights_make_the_subjects_error_cost_more_than_the_same_error_elsewhere(
    design: architecture.Design,
) -> None:
    schedule = DDPMScheduler.from_config(architecture.build_scheduler(design).config)
    generator = torch.Generator().manual_seed(3)
    clean = torch.randn((2, 4, 16, 16), generator=generator)
    noise = torch.randn(clean.shape, generator=generator)
    steps = torch.full((2,), 500)
    exact = schedule.get_velocity(clean, noise, steps) if design is architecture.V2 else noise
    subject = torch.ones((2, 1, 16, 16))
    subject[:, :, :4, :4] = 5.0
    on_subject, off_subject = exact.clone(), exact.clone()
    on_subject[:, :, 1, 1] += 1.0
    off_subject[:, :, 12, 12] += 1.0
    plain = [noise_prediction_loss(p, clean, noise, steps, schedule, 5.0) for p in (on_subject, off_subject)]
    weighted = [
        noise_prediction_loss(p, clean, noise, steps, schedule, 5.0, subject)
        for p in (on_subject, off_subject)
    ]
    assert torch.isclose(plain[0], plain[1])
    assert torch.isclose(weighted[0], 5 * weighted[1])
    uniform = noise_prediction_loss(on_subject, clean, noise, steps, schedule, 5.0, torch.ones_like(subject))
    assert torch.isclose(uniform, plain[0])  # weights 1: the plain loss


def test_per_sample_error_is_a_weighted_mean_per_sample() -> None:
    target = torch.zeros((2, 1, 2, 2))
    prediction = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 2.0]]]])
    weights = torch.tensor([[[[3.0, 1.0], [1.0, 1.0]]]])  # broadcast over the batch
    assert per_sample_error(prediction, target).tolist() == [0.25, 1.0]
    assert per_sample_error(prediction, target, weights).tolist() == pytest.approx([0.5, 4 / 6])


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


def test_text_anchor_feels_a_change_to_the_texts_said_with_an_image_prompt() -> None:
    """ "a shape" is no caption and no background: a segment that moves only its words must still pay
    (the IP-Adapter's test asks with it, and lost 7 of 100 pictures when it moved; session 30)."""
    tokenizer = architecture.build_tokenizer()
    torch.manual_seed(0)
    encoder = architecture.build_text_encoder(tokenizer, architecture.DESIGNS["v2"])
    anchor = TextAnchor(encoder, 1.0, tokenizer)

    def tokens(texts: list[str]) -> torch.Tensor:
        return tokenizer(texts, padding="max_length", return_tensors="pt").input_ids

    ids, background_ids = tokens(["a red circle on a blue background"]), tokens(["a blue background"])
    generic_only = set(tokens(list(GENERIC_CAPTIONS)).flatten().tolist()) - set(
        torch.cat([ids, background_ids]).flatten().tolist()
    )
    assert generic_only  # "shape", "picture": words the other texts do not say
    moved = copy.deepcopy(encoder)
    with torch.no_grad():
        moved.get_input_embeddings().weight[sorted(generic_only)] += torch.randn(
            len(generic_only), encoder.config.hidden_size
        )
        assert float(anchor(encoder, encoder(ids)[0], ids, background_ids)) == 0.0
        assert float(anchor(moved, moved(ids)[0], ids, background_ids)) > 1e-4
