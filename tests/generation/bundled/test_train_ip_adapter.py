"""Training the bundled model's IP-Adapter: checkpoints and --resume, its caption teacher, --patches."""

from __future__ import annotations

import copy
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image
from safetensors.torch import load_file

from generation.bundled import (
    BUNDLED_IP_ADAPTER_FILE,
    BUNDLED_MODEL_DIR,
    ip_adapter_head_start,
    train_ip_adapter,
)
from generation.bundled.ip_adapter_head_start import HeadStart
from generation.bundled.objectives import noise_prediction_loss
from generation.bundled.train_ip_adapter import CHECKPOINT_DIR, caption_teacher, main, train
from generation.bundled.training_checkpoints import load_tensors
from generation.models.image_prompts import ProjectionKind, fresh_adapter_state

LOSS = "generation.bundled.train_ip_adapter.noise_prediction_loss"
SHORT = HeadStart(encoder_steps=2, encoder_scenes=16, align_steps=2)  # a head start of a few steps


def _train(out: Path, steps: int, *, resume: bool = False) -> None:
    """A few steps on the shipped model: batch 2, 16 scenes, 2 encoder steps on 16 more, a checkpoint
    every 2."""
    train(steps, 2, 16, 1e-3, 0, out, head_start=replace(SHORT, align_steps=20), save_every=2, resume=resume)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def _counted_loss(calls: list[int], interrupt_at: int | None = None) -> Any:
    """The training loss, counting its calls; a KeyboardInterrupt at call `interrupt_at`."""

    def loss(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(1)
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        return noise_prediction_loss(*args, **kwargs)

    return loss


def _resume_counting(out: Path, steps: int, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """Resume the run in `out` to `steps`: (adapter steps taken, encoder first stages run)."""
    losses: list[int] = []
    first_stages: list[int] = []
    monkeypatch.setattr(LOSS, _counted_loss(losses))
    monkeypatch.setattr(ip_adapter_head_start, "pretrain_encoder", lambda *args: first_stages.append(1))
    _train(out, steps, resume=True)
    return len(losses), len(first_stages)


@pytest.mark.slow  # a real (short) training on the bundled model: 20 s here, more on the 128-px one
def test_an_interrupted_run_resumes_from_its_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "adapter"
    first_run: list[int] = []
    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(LOSS, _counted_loss(first_run, interrupt_at=3))
        _train(out, 4)
    checkpoint = out / CHECKPOINT_DIR
    assert json.loads((checkpoint / "state.json").read_text()) == {"step": 2}
    assert not (out / BUNDLED_IP_ADAPTER_FILE).exists()  # unfinished: nothing where the adapter goes
    saved = load_file(checkpoint / BUNDLED_IP_ADAPTER_FILE)

    # Resumed at its end (2 of 2 steps): the adapter is the checkpoint's, not a fresh one.
    finished = tmp_path / "finished"
    shutil.copytree(out, finished)
    _train(finished, 2, resume=True)
    assert _same(load_file(finished / BUNDLED_IP_ADAPTER_FILE), saved)
    assert not (finished / CHECKPOINT_DIR).exists()  # a finished run leaves only the adapter

    # Resumed to 4 steps: the two steps left, the encoder's first stage not repeated.
    assert _resume_counting(out, 4, monkeypatch) == (2, 0)
    assert not _same(load_file(out / BUNDLED_IP_ADAPTER_FILE), saved)
    assert not (out / CHECKPOINT_DIR).exists()


def test_resume_without_a_checkpoint_is_refused_with_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["train_ip_adapter", "--out", str(tmp_path / "none"), "--resume"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2 and "no checkpoint" in capsys.readouterr().err


@pytest.mark.slow  # a real (short) training on the bundled model
def test_a_run_stopped_after_the_encoder_stage_resumes_without_repeating_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "adapter"
    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(LOSS, _counted_loss([], interrupt_at=1))  # in the adapter's first step
        _train(out, 2)
    assert json.loads((out / CHECKPOINT_DIR / "state.json").read_text()) == {"step": 0}
    assert _resume_counting(out, 2, monkeypatch) == (2, 0)
    assert (out / BUNDLED_IP_ADAPTER_FILE).is_file()


def test_the_caption_teacher_predicts_without_the_adapter_and_leaves_it_on() -> None:
    pipe = StableDiffusionPipeline.from_pretrained(
        BUNDLED_MODEL_DIR, safety_checker=None, dtype=torch.float32
    )
    plain = copy.deepcopy(pipe.unet)
    embed_dim = pipe.unet.config.cross_attention_dim
    state = fresh_adapter_state(pipe.unet, embed_dim, train_ip_adapter.TOKENS, seed=0)
    pipe.load_ip_adapter(state, subfolder=None, weight_name=None, image_encoder_folder=None)
    generator = torch.Generator().manual_seed(0)
    projection = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    with torch.no_grad():  # as a trained one is: even a zero embedding gives tokens that move the UNet
        projection.norm.bias.copy_(torch.randn(projection.norm.bias.shape, generator=generator))
    side = pipe.unet.config.sample_size
    noisy = torch.randn(2, pipe.unet.config.in_channels, side, side, generator=generator)
    timesteps = torch.tensor([10, 500])
    ids = pipe.tokenizer(["a red circle", "a blue star"], padding="max_length", return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = pipe.text_encoder(ids)[0]
        text_alone = plain(noisy, timesteps, encoder_hidden_states=hidden).sample
    picture = torch.randn(2, 1, embed_dim, generator=generator)
    teacher = caption_teacher(pipe, noisy, timesteps, hidden, picture)  # the picture is ignored
    assert torch.allclose(teacher, text_alone, atol=1e-5)
    with torch.no_grad():  # the adapter is on again: a picture moves the prediction
        prompted = pipe.unet(
            noisy, timesteps, encoder_hidden_states=hidden, added_cond_kwargs={"image_embeds": [picture]}
        ).sample
    assert (prompted - text_alone).abs().mean() > 1e-3


@pytest.mark.slow  # short trainings on the bundled model
@pytest.mark.parametrize(
    ("kind", "loaded_as"),
    [("full", "IPAdapterFullImageProjection"), ("plus", "IPAdapterPlusImageProjection")],
)
def test_an_adapter_of_another_kind_starts_fresh_on_a_pooled_adapters_encoder(
    tmp_path: Path, kind: ProjectionKind, loaded_as: str
) -> None:
    pooled, other = tmp_path / "pooled", tmp_path / kind
    _train(pooled, 2)
    train(2, 2, 16, 0.0, 0, other, init=pooled, head_start=SHORT, save_every=2, projection=kind)  # rate 0
    pipe = StableDiffusionPipeline.from_pretrained(
        BUNDLED_MODEL_DIR, safety_checker=None, dtype=torch.float32
    )
    fresh_layers = fresh_adapter_state(pipe.unet, 8, 4, seed=0)["ip_adapter"]  # copies of the text's
    after = load_file(other / BUNDLED_IP_ADAPTER_FILE)
    assert _same({f"ip_adapter.{key}": value for key, value in fresh_layers.items()},
                 {key: value for key, value in after.items() if key.startswith("ip_adapter.")})  # fmt: skip
    assert _same(load_file(pooled / "image_encoder" / "model.safetensors"),
                 load_file(other / "image_encoder" / "model.safetensors"))  # fmt: skip
    pipe.load_ip_adapter(str(other), subfolder="", weight_name=BUNDLED_IP_ADAPTER_FILE)
    assert type(pipe.unet.encoder_hid_proj.image_projection_layers[0]).__name__ == loaded_as
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    result = pipe("a shape", ip_adapter_image=image, num_inference_steps=2, output_type="np").images
    side = pipe.vae.config.sample_size  # the model's native size
    assert result.shape == (1, side, side, 3)
    shutil.copytree(other, tmp_path / "checkpoint")  # as if interrupted at step 2
    shutil.move(tmp_path / "checkpoint", other / CHECKPOINT_DIR)
    (other / CHECKPOINT_DIR / "state.json").write_text(json.dumps({"step": 2}))
    with pytest.raises(ValueError, match="pass its --projection"):
        train(4, 2, 16, 0.0, 0, other, head_start=SHORT, save_every=2, resume=True, projection="pooled")


@pytest.mark.slow  # two short trainings on the bundled model
def test_projection_only_keeps_the_layers_and_trains_the_projection(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _train(first, 2)
    train(2, 2, 16, 1e-2, 0, second, init=first, head_start=SHORT, save_every=2, projection_only=True)
    before, after = load_file(first / BUNDLED_IP_ADAPTER_FILE), load_file(second / BUNDLED_IP_ADAPTER_FILE)
    layers = [key for key in before if key.startswith("ip_adapter.")]
    assert layers and all(torch.equal(before[key], after[key]) for key in layers)
    assert not torch.equal(before["image_proj.proj.weight"], after["image_proj.proj.weight"])


@pytest.mark.slow  # short trainings on the bundled model
def test_more_encoder_steps_and_a_resampler_width_for_an_adapter_of_another_kind(
    tmp_path: Path,
) -> None:
    pooled, plus = tmp_path / "pooled", tmp_path / "plus"
    _train(pooled, 2)
    more = replace(SHORT, more_encoder_steps=3)
    train(0, 2, 16, 1e-3, 0, plus, init=pooled, head_start=more, projection="plus", resampler_width=128)
    encoder = "image_encoder/model.safetensors"
    assert not _same(load_file(pooled / encoder), load_file(plus / encoder))
    assert load_file(plus / BUNDLED_IP_ADAPTER_FILE)["image_proj.latents"].shape[-1] == 128  # as asked
    shutil.copytree(plus, plus / CHECKPOINT_DIR)  # as if interrupted: the same command with --resume
    (plus / CHECKPOINT_DIR / "state.json").write_text(json.dumps({"step": 0}))
    with pytest.raises(ValueError, match="--resampler-width"):  # not the width it was made at
        train(2, 2, 16, 1e-3, 0, plus, projection="plus", resampler_width=64, resume=True)
    with pytest.raises(FileNotFoundError, match="optimizer"):  # past the check (no optimizer state here)
        train(2, 2, 16, 1e-3, 0, plus, projection="plus", resampler_width=128, resume=True)
    with pytest.raises(ValueError, match="another kind"):  # its projection would read the old encoder
        train(0, 2, 16, 1e-3, 0, tmp_path / "again", init=pooled, head_start=more)


def test_a_shape_contrast_nothing_would_use_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--shape-contrast"):  # a pooled adapter has no resampler to weigh
        train(0, 2, 16, 1e-3, 0, tmp_path / "pooled", head_start=replace(SHORT, shape_contrast=0.05))
    assert not (tmp_path / "pooled").exists()  # refused before anything was written


@pytest.mark.slow  # a short training on the bundled model
def test_a_subject_weight_weighs_the_shapes_cells_in_the_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given: list[torch.Tensor | None] = []

    def loss(*args: Any) -> torch.Tensor:
        given.append(args[6] if len(args) > 6 else None)
        return noise_prediction_loss(*args)

    monkeypatch.setattr(LOSS, loss)
    train(2, 2, 16, 1e-3, 0, tmp_path / "plain", head_start=SHORT)
    train(2, 2, 16, 1e-3, 0, tmp_path / "weighted", head_start=SHORT, subject_weight=4.0)
    assert given[:2] == [None, None]
    side = json.loads((BUNDLED_MODEL_DIR / "unet" / "config.json").read_text())["sample_size"]
    for weights in given[2:]:
        assert weights is not None and weights.shape == (2, 1, side, side)
        assert weights.min() == 1.0 and 1.0 < weights.max() <= 5.0


def _saved_rate(out: Path) -> float:
    rate: float = load_tensors(out / CHECKPOINT_DIR / "optimizer.pt")["param_groups"][0]["lr"]
    return rate


@pytest.mark.slow  # short trainings on the bundled model
def test_the_cosine_decay_falls_along_the_run_and_a_resumed_run_goes_on_where_it_left_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "adapter"

    def run(resume: bool) -> None:  # 6 steps, a checkpoint every 2, stopped at the third step it takes
        with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
            patched.setattr(LOSS, _counted_loss([], interrupt_at=3))
            train(6, 2, 16, 1e-3, 0, out, head_start=SHORT, save_every=2, cosine_decay=True, resume=resume)

    run(resume=False)
    assert json.loads((out / CHECKPOINT_DIR / "state.json").read_text()) == {"step": 2}
    assert _saved_rate(out) == pytest.approx(1e-3 * 0.75)  # (1 + cos(pi 2/6)) / 2
    run(resume=True)
    assert json.loads((out / CHECKPOINT_DIR / "state.json").read_text()) == {"step": 4}
    assert _saved_rate(out) == pytest.approx(1e-3 * 0.25)  # not 0.75 again: the schedule went on


def test_a_resampler_width_nothing_would_use_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--resampler-width"):  # a pooled adapter has no resampler
        train(0, 2, 16, 1e-3, 0, tmp_path / "pooled", head_start=SHORT, resampler_width=128)
