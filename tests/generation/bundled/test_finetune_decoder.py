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

from generation.bundled import architecture, decodes_edge_padded
from generation.bundled.finetune_decoder import (
    STATE_FILE,
    border_weights,
    decoder_parameters,
    finetune_decoder,
    held_mse,
    hold_mask,
    main,
    odd_corner_loss,
    save_vae,
)
from generation.bundled.training_data import as_model_input, scenes_batch
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


@torch.no_grad()
def _corner_error(vae: AutoencoderKL, latents: torch.Tensor, pictures: torch.Tensor) -> float:
    """Mean error of the bottom-right 8x8 pixels (the corner term's)."""
    error = vae.decode(latents).sample - as_model_input(pictures)
    return float(error[..., -8:, -8:].abs().mean())


def test_the_corner_weight_teaches_the_redrawn_latents_corner(tmp_path: Path) -> None:
    """Latents whose bottom-right cell the encoder never wrote (the UNet writes it its own way), with
    the pictures they should give: with a corner weight the decoder learns that corner; without one,
    the redrawn latents are not learned at all."""
    folder = _model_folder(tmp_path)
    scenes = scenes_batch(random.Random(7), 16, 32, 0.06)
    with torch.no_grad():
        latents = AutoencoderKL.from_pretrained(folder / "vae").encode(scenes).latent_dist.mean
    latents[..., -1, -1] = torch.randn(16, 4, generator=torch.Generator().manual_seed(5))  # its own cell
    pictures = scenes.add(1).mul(127.5).round().to(torch.uint8)
    errors = []
    for corner_weight in (0.0, 10.0):
        vae = AutoencoderKL.from_pretrained(folder / "vae")
        finetune_decoder(
            vae, 150, variety=0.06, batch=4, lr=3e-3, corner_weight=corner_weight, redrawn=(latents, pictures)
        )
        errors.append(_corner_error(vae, latents, pictures))
    assert errors[1] < 0.85 * errors[0]  # 0.79x here


def test_hold_keeps_the_output_where_it_holds_it(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path)
    held = AutoencoderKL.from_pretrained(folder / "vae")
    with torch.no_grad():
        latents = held.encode(scenes_batch(random.Random(99), 8, 32, 0.06)).latent_dist.mean
        before = held.decode(latents).sample
    masks = {"outside": hold_mask(32), "edges": hold_mask(32, region="edges")}
    masks["inside"] = masks["outside"] - masks["edges"]
    changes = {}
    for name, hold, region in (
        ("free", 0.0, "outside-corner"),
        ("held", 100.0, "outside-corner"),
        ("edges", 100.0, "edges"),
    ):
        vae = AutoencoderKL.from_pretrained(folder / "vae")
        finetune_decoder(
            vae,
            30,
            variety=0.06,
            batch=4,
            lr=3e-4,
            corner_weight=1.0,
            hold=hold,
            held=held,
            hold_region=region,
        )
        with torch.no_grad():
            after = vae.decode(latents).sample
        changes[name] = {part: float(held_mse(after, before, mask)) for part, mask in masks.items()}
    # here: outside the corner 0.13 free, 0.015 held; the bands 0.11 free, 0.024 held alone, when the
    # inside moves 0.030 (0.016 held with them: convolutions share their weights, so it moves less too)
    assert changes["held"]["outside"] < 0.5 * changes["free"]["outside"]
    assert changes["edges"]["edges"] < 0.5 * changes["free"]["edges"]
    assert changes["edges"]["inside"] > 1.3 * changes["held"]["inside"]


def test_hold_mask_covers_everything_but_the_corner_or_only_the_padded_edges() -> None:
    everywhere, edges = hold_mask(16, cell=4), hold_mask(16, region="edges", cell=4)
    inside = hold_mask(16, region="inside", cell=4)
    assert float(inside.sum()) == 8 * 8 and float(inside[4:-4, 4:-4].sum()) == 8 * 8
    assert float(everywhere.sum()) == 16 * 16 - 4 * 4 and float(everywhere[-4:, -4:].sum()) == 0.0
    assert float(edges[:-4, :-4].sum()) == 0.0  # the inside and the left and top edges are free
    assert float(edges[:, -4:].sum()) == float(edges[-4:, :].sum()) == 12 * 4  # the bands, but the corner
    assert float(edges[-4:, -4:].sum()) == 0.0


def test_odd_corner_loss_reads_the_bottom_right_cell_only() -> None:
    error = torch.zeros(2, 3, 32, 32)
    error[..., :-4, :] = 5.0
    error[..., :, :-4] = 5.0
    assert float(odd_corner_loss(error, cell=4)) == 0.0
    error[..., -1, -1] = 1.0
    assert float(odd_corner_loss(error, cell=4)) == pytest.approx(2.0 / 16)  # L1 + MSE of one pixel in 16


def test_redrawn_latents_need_a_corner_weight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _model_folder(tmp_path)
    arguments = ["--model", str(folder), "--out", str(tmp_path / "out"), "--redrawn", "8"]
    monkeypatch.setattr(sys, "argv", ["finetune_decoder", *arguments])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert not (tmp_path / "out").exists()


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


def test_edge_padding_trains_padded_and_says_so_in_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _model_folder(tmp_path)
    threads = str(torch.get_num_threads())
    for source, out, flag in (
        (folder, tmp_path / "padded", ["--edge-padding"]),
        (tmp_path / "padded", tmp_path / "again", []),
    ):
        arguments = ["--model", str(source), "--out", str(out), "--steps", "1", "--threads", threads, *flag]
        monkeypatch.setattr(sys, "argv", ["finetune_decoder", *arguments])
        main()
        assert decodes_edge_padded(out)  # and a decoder trained padded goes on padded without the flag
    assert not decodes_edge_padded(folder)
