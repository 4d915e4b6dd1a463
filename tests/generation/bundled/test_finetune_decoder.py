"""Fine-tuning the bundled model's decoder keeps the latent space the UNet was trained on."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL
from safetensors import safe_open

from generation.bundled import architecture
from generation.bundled.finetune_decoder import (
    STATE_FILE,
    border_weights,
    decoder_parameters,
    finetune_decoder,
    main,
    save_vae,
)
from generation.bundled.training_data import scenes_batch
from generation.models.previews import LATENT_RGB_FILE


def _model_folder(tmp_path: Path, save_dtype: str = "float32") -> Path:
    torch.manual_seed(0)
    folder = tmp_path / "model"
    vae = architecture.build_vae()
    vae.register_to_config(sample_size=32)  # scenes drawn at 32 px: a quarter of the work
    vae.save_pretrained(folder / "vae")
    settings = {"variety": 0.06, "save_dtype": save_dtype}
    (folder / "training_config.json").write_text(json.dumps(settings))
    return folder


@torch.no_grad()
def _reconstruction_error(vae: AutoencoderKL, images: torch.Tensor) -> float:
    return float((vae.decode(vae.encode(images).latent_dist.mean).sample - images).abs().mean())


def _weights(module: torch.nn.Module) -> list[torch.Tensor]:
    return [value.clone() for value in module.state_dict().values()]


def test_only_the_decoder_learns_and_its_loss_falls(tmp_path: Path) -> None:
    vae = AutoencoderKL.from_pretrained(_model_folder(tmp_path) / "vae")
    encoder, quant, decoder = _weights(vae.encoder), _weights(vae.quant_conv), _weights(vae.decoder)
    scale = vae.config.scaling_factor
    fixed = scenes_batch(random.Random(99), 8, 32, 0.06)
    before = _reconstruction_error(vae, fixed)
    finetune_decoder(vae, 40, variety=0.06, batch=4, lr=3e-3)
    assert all(torch.equal(a, b) for a, b in zip(encoder, _weights(vae.encoder), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(quant, _weights(vae.quant_conv), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(decoder, _weights(vae.decoder), strict=True))
    assert vae.config.scaling_factor == scale
    assert _reconstruction_error(vae, fixed) < 0.95 * before  # 0.91x here
    assert not any(parameter.requires_grad for parameter in decoder_parameters(vae))


def test_border_weights_average_one_and_weigh_corners_most() -> None:
    weights = border_weights(32, 8.0, border=4)
    assert float(weights.mean()) == pytest.approx(1.0)
    corner, edge, inside = weights[0, 0], weights[0, 16], weights[16, 16]
    assert corner > edge > inside
    assert float((corner - inside) / (edge - inside)) == pytest.approx(2.0)
    assert torch.equal(border_weights(32, 0.0), torch.ones(32, 32))


@torch.no_grad()
def _edge_error(vae: AutoencoderKL, images: torch.Tensor) -> float:
    """Mean reconstruction error within 4 px of the edges, over the error inside."""
    error = (vae.decode(vae.encode(images).latent_dist.mean).sample - images).abs().mean(dim=(0, 1))
    return float(error[:4].mean() + error[-4:].mean()) / float(error[4:-4, 4:-4].mean())


def test_a_border_weight_lowers_the_edges_error_against_the_inside(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path)
    fixed = scenes_batch(random.Random(99), 8, 32, 0.06)
    ratios = []
    for weight in (0.0, 8.0):
        vae = AutoencoderKL.from_pretrained(folder / "vae")
        finetune_decoder(vae, 40, variety=0.06, batch=4, lr=3e-3, border_weight=weight)
        ratios.append(_edge_error(vae, fixed))
    assert ratios[1] < 0.9 * ratios[0]


def test_saved_in_the_folders_dtype_with_a_refitted_preview_map(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path, save_dtype="float16")
    vae = AutoencoderKL.from_pretrained(folder / "vae")
    save_vae(folder, vae, 5)
    save_vae(folder, vae, 7)
    assert vae.dtype == torch.float32  # the caller's copy, which goes on training
    with safe_open(str(folder / "vae" / "diffusion_pytorch_model.safetensors"), "pt") as saved:
        assert {saved.get_tensor(key).dtype for key in saved.keys()} == {torch.float16}  # noqa: SIM118
    assert (folder / LATENT_RGB_FILE).is_file()
    assert json.loads((folder / "training_config.json").read_text())["decoder_finetune_steps"] == 12


def test_an_existing_output_needs_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _model_folder(tmp_path)
    (tmp_path / "out").mkdir()
    monkeypatch.setattr(
        sys, "argv", ["finetune_decoder", "--model", str(folder), "--out", str(tmp_path / "out")]
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2


def test_a_model_fine_tuned_before_starts_a_fresh_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _model_folder(tmp_path)
    (folder / STATE_FILE).write_text(json.dumps({"steps": 600, "loss": 0.03}))  # its own earlier run
    out = tmp_path / "out"
    threads = str(torch.get_num_threads())  # main() sets it for the whole process: leave it as it is
    arguments = ["--model", str(folder), "--out", str(out), "--steps", "2", "--threads", threads]
    monkeypatch.setattr(sys, "argv", ["finetune_decoder", *arguments])
    main()
    assert json.loads((out / STATE_FILE).read_text())["steps"] == 2
    assert json.loads((out / "training_config.json").read_text())["decoder_finetune_steps"] == 2
