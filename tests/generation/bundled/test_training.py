"""The bundled model's training script continues a saved model folder (`--init`), so a long run
spread over several machines needs only the folder it last saved, not its full checkpoints; and
the folder it saves is complete (its preview map included)."""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from generation.bundled import architecture
from generation.bundled.dataset import background_only
from generation.bundled.preview_map import fit_on_scenes
from generation.bundled.train import (
    TrainConfig,
    learning_rate_factor,
    render_dataset,
    save_model,
    train_unet,
    train_vae,
)
from generation.bundled.training_checkpoints import init_work
from generation.bundled.training_data import encode_dataset
from generation.models.previews import shipped_latent_rgb


def _tiny(unet_steps: int) -> TrainConfig:
    return TrainConfig(
        scenes=8,
        vae_steps=1,
        vae_batch=2,
        unet_steps=unet_steps,
        unet_batch=2,
        checkpoint_every=1,
        threads=1,
        token_loss=0.1,
        plain_share=0.5,  # one of each batch's two scenes a plain one, at t >= 800
        plain_scenes=4,
    )


def test_learning_rate_warms_up_then_decays_linearly_to_zero_from_its_start() -> None:
    decaying = TrainConfig(warmup_steps=200, unet_steps=12_000, lr_decay_start=7_000)
    factors = [learning_rate_factor(decaying, step) for step in (0, 199, 6_999, 7_000, 9_500, 11_999)]
    assert factors == pytest.approx([1 / 200, 1.0, 1.0, 1.0, 0.5, 1 / 5_000])
    # --init continues a snapshot with a fresh optimizer: it warms up again, on the decay's schedule
    assert learning_rate_factor(decaying, 11_000, started=11_000) == pytest.approx(0.2 / 200)
    assert learning_rate_factor(decaying, 11_199, started=11_000) == pytest.approx(801 / 5_000)
    constant = TrainConfig(warmup_steps=200, unet_steps=12_000)  # lr_decay_start 0: the first model's
    assert learning_rate_factor(constant, 11_999) == 1.0


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_training_continues_a_saved_model_folder_from_its_step(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = _tiny(unet_steps=2)
    images, captions = render_dataset(first)
    tokenizer = architecture.build_tokenizer()
    vae = train_vae(first, images, tmp_path / "first")
    unet, text_encoder = train_unet(
        first, encode_dataset(vae, images), captions, tokenizer, tmp_path / "first"
    )
    save_model(tmp_path / "model", vae, unet, text_encoder, tokenizer, first)
    assert json.loads((tmp_path / "model" / "training_config.json").read_text())["unet_steps_done"] == 2
    # Its preview map comes with it, fitted on its own scenes by its own saved VAE.
    saved_vae = AutoencoderKL.from_pretrained(tmp_path / "model" / "vae")
    shipped, refitted = (
        shipped_latent_rgb(str(tmp_path / "model")),
        fit_on_scenes(saved_vae, variety=first.variety),
    )
    assert shipped is not None and shipped.scale == refitted.scale == 4
    assert np.allclose(shipped.rows, refitted.rows, atol=1e-4) and np.allclose(
        shipped.bias, refitted.bias, atol=1e-4
    )

    longer = _tiny(unet_steps=3)
    work = tmp_path / "continued"
    init_work(tmp_path / "model", work, longer.vae_steps)
    continued_vae = train_vae(longer, images, work)
    assert _same_weights(continued_vae, AutoencoderKL.from_pretrained(tmp_path / "model" / "vae"))
    saved_unet = UNet2DConditionModel.from_pretrained(tmp_path / "model" / "unet")
    assert json.loads((work / "unet" / "state.json").read_text())["step"] == 2
    assert _same_weights(UNet2DConditionModel.from_pretrained(work / "unet" / "unet"), saved_unet)

    caplog.set_level(logging.INFO, logger="generation.bundled.training_checkpoints")
    caplog.clear()
    trained_unet, _ = train_unet(longer, encode_dataset(continued_vae, images), captions, tokenizer, work)
    checkpoints = [r.getMessage() for r in caplog.records if r.getMessage().startswith("checkpoint unet")]
    assert [c.split(" (")[0] for c in checkpoints] == ["checkpoint unet at step 3"]  # one step, not three
    assert not _same_weights(trained_unet, saved_unet)


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_background_drop_says_captions_without_their_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, share: float
) -> None:
    config = TrainConfig(**{**asdict(_tiny(unet_steps=3)), "background_drop": share, "caption_dropout": 0.0})
    images, captions = render_dataset(config)
    tokenizer = architecture.build_tokenizer()
    text_encoder = architecture.build_text_encoder(tokenizer, architecture.DESIGNS[config.design])
    said: list[str] = []  # what the text encoder is given, step by step
    text_encoder.register_forward_pre_hook(
        lambda _module, args: said.extend(tokenizer.batch_decode(args[0], skip_special_tokens=True))
    )
    monkeypatch.setattr(architecture, "build_text_encoder", lambda *_: text_encoder)
    vae = train_vae(config, images, tmp_path)
    train_unet(config, encode_dataset(vae, images), captions, tokenizer, tmp_path)
    assert len(said) == 3 * config.unet_batch
    assert sum("background" in caption for caption in said) == (len(said) if share == 0.0 else 0)
    assert all(caption.strip() for caption in said)  # the shapes are still said


@pytest.mark.parametrize("text_encoder_only", [False, True])
def test_text_encoder_only_leaves_the_unet_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text_encoder_only: bool
) -> None:
    config = TrainConfig(**{**asdict(_tiny(unet_steps=2)), "text_encoder_only": text_encoder_only})
    images, captions = render_dataset(config)
    tokenizer = architecture.build_tokenizer()
    design = architecture.DESIGNS[config.design]
    unet, text_encoder = architecture.build_unet(design), architecture.build_text_encoder(tokenizer, design)
    unet_before, text_before = copy.deepcopy(unet), copy.deepcopy(text_encoder)
    monkeypatch.setattr(architecture, "build_unet", lambda *_: unet)
    monkeypatch.setattr(architecture, "build_text_encoder", lambda *_: text_encoder)
    vae = train_vae(config, images, tmp_path)
    trained_unet, trained_text = train_unet(
        config, encode_dataset(vae, images), captions, tokenizer, tmp_path
    )
    assert not _same_weights(trained_text, text_before)
    assert _same_weights(trained_unet, unet_before) == text_encoder_only


def _anchor_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, background_drop: float
) -> dict[tuple[str, float], float]:
    """How far 4 steps of a text-encoder-only run move each kind of text's states, unanchored and
    anchored, from one start on the same latents and UNet."""
    base = {**asdict(_tiny(unet_steps=4)), "background_drop": background_drop}
    images, captions = render_dataset(TrainConfig(**base))
    tokenizer = architecture.build_tokenizer()
    design = architecture.DESIGNS[TrainConfig(**base).design]
    torch.manual_seed(0)
    start, unet = architecture.build_text_encoder(tokenizer, design), architecture.build_unet(design)
    texts = {"whole": captions, "background alone": [background_only(caption) for caption in captions]}
    ids = {
        k: tokenizer(v, padding="max_length", truncation=True, return_tensors="pt").input_ids
        for k, v in texts.items()
    }
    with torch.no_grad():
        before = {k: start(v)[0] for k, v in ids.items()}
    latents = encode_dataset(train_vae(TrainConfig(**base), images, tmp_path / "vae"), images)
    drift = {}  # mean squared change of the states
    for weight in (0.0, 1000.0):
        config = TrainConfig(
            **{**base, "text_encoder_only": True, "text_anchor": weight, "unet_lr": 1e-2, "ema_decay": 0.0}
        )
        text_encoder = copy.deepcopy(start)
        same_unet = copy.deepcopy(unet)
        monkeypatch.setattr(architecture, "build_unet", lambda *_, u=same_unet: u)
        monkeypatch.setattr(architecture, "build_text_encoder", lambda *_, te=text_encoder: te)
        _, trained = train_unet(config, latents, captions, tokenizer, tmp_path / f"anchor-{weight:g}")
        with torch.no_grad():
            for kind in ids:
                drift[kind, weight] = torch.nn.functional.mse_loss(trained(ids[kind])[0], before[kind]).item()
    return drift


def test_text_anchor_holds_the_whole_captions_states_where_they_began(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drift = _anchor_drift(tmp_path, monkeypatch, background_drop=0.0)
    assert drift["whole", 1000.0] < 0.5 * drift["whole", 0.0], drift


def test_text_anchor_holds_a_background_said_alone_though_every_caption_is_shortened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Zoom Out asks for "a blue background": a text no caption is, which an anchor on the captions
    # alone left free to move (session 29).
    drift = _anchor_drift(tmp_path, monkeypatch, background_drop=1.0)
    assert drift["background alone", 1000.0] < 0.5 * drift["background alone", 0.0], drift
