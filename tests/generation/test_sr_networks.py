"""Super-resolution networks as Upscale's first stage: ESRGAN-family files (Real-ESRGAN's compact
network, ESRGAN's RRDBNet in BasicSR's and the original repository's key names) are recognised from
their keys and shapes, enlarge by their scale tile by tile without seams, and the bundled upscaler is
closer to the truth than a Lanczos resize on scenes it never saw."""

from __future__ import annotations

import dataclasses
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from generation.config import upscale_setup
from generation.errors import ModelLoadError
from generation.models.loading import LoadedModel
from generation.models.sr_networks import RRDBNet, SrNetwork, SRVGGNetCompact, load_sr_network
from generation.operations.imagine import run_imagine
from generation.operations.super_resolution import enlarge
from generation.operations.upscale import run_upscale
from generation.specs import upscale_spec
from tests.conftest import pixels
from tests.generation.test_upscale import SOURCE_HASH, base_spec


def _save(module: torch.nn.Module, path: Path, rename: dict[str, str] | None = None) -> Path:
    weights = {k: v.contiguous() for k, v in module.state_dict().items()}
    for pattern, replacement in (rename or {}).items():
        weights = {re.sub(pattern, replacement, k): v for k, v in weights.items()}
    save_file(weights, str(path))
    return path


def _picture(seed: int = 0, side: int = 40) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8))


def _run(network: SrNetwork, image: Image.Image) -> np.ndarray:
    tensor = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    return network(tensor)[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("scale", [2, 4])
def test_a_compact_network_is_recognised_and_enlarges_by_its_scale(tmp_path: Path, scale: int) -> None:
    torch.manual_seed(0)
    module = SRVGGNetCompact(num_feat=8, num_conv=3, upscale=scale).eval()
    network = load_sr_network(_save(module, tmp_path / "compact.safetensors"))
    assert (network.architecture, network.scale) == ("SRVGGNetCompact", scale)
    image = _picture()
    out = _run(network, image)
    assert out.shape == (40 * scale, 40 * scale, 3)
    with torch.no_grad():
        expected = module(torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None])
    assert np.array_equal(out, expected.clamp(0, 1)[0].permute(1, 2, 0).numpy())


def test_an_esrgan_file_in_either_key_layout_is_the_same_network(tmp_path: Path) -> None:
    torch.manual_seed(1)
    module = RRDBNet(num_feat=8, num_block=2, num_grow_ch=4, scale=4).eval()
    basicsr = load_sr_network(_save(module, tmp_path / "basicsr.safetensors"))
    old_names = {  # the original ESRGAN repository's 4x layout
        r"^conv_first\.": "model.0.", r"^body\.(\d)\.rdb(\d)\.conv(\d)\.": r"model.1.sub.\1.RDB\2.conv\3.0.",
        r"^conv_body\.": "model.1.sub.2.", r"^conv_up1\.": "model.3.", r"^conv_up2\.": "model.6.",
        r"^conv_hr\.": "model.8.", r"^conv_last\.": "model.10.",
    }  # fmt: skip
    original = load_sr_network(_save(module, tmp_path / "esrgan.safetensors", old_names))
    assert (original.architecture, original.scale) == ("RRDBNet", 4)
    image = _picture(2, 24)
    assert np.array_equal(_run(basicsr, image), _run(original, image))
    two = load_sr_network(_save(RRDBNet(8, 1, 4, scale=2), tmp_path / "x2.safetensors"))
    assert two.scale == 2 and _run(two, image).shape == (
        48,
        48,
        3,
    )  # pixel-unshuffled input, as Real-ESRGAN x2


def test_what_is_not_a_network_file_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "net.pth").write_bytes(b"not opened")
    with pytest.raises(ModelLoadError, match=r"only \.safetensors super-resolution files are read"):
        load_sr_network(tmp_path / "net.pth")
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, str(tmp_path / "lora.safetensors"))
    with pytest.raises(ModelLoadError, match=r"lora\.safetensors is not a network dreamcord reads"):
        load_sr_network(tmp_path / "lora.safetensors")


def test_tiles_of_an_enlargement_join_without_seams(tmp_path: Path) -> None:
    torch.manual_seed(2)
    network = load_sr_network(_save(SRVGGNetCompact(8, 2, 2).eval(), tmp_path / "x2.safetensors"))
    image = _picture(3, 400)  # larger than one tile (192): tiled, blended
    whole = Image.fromarray((_run(network, image) * 255).round().astype(np.uint8))
    tiled = enlarge(network, image, (800, 800))
    # Away from tile overlaps the tiles are the whole network's output; in them, a blend of two runs
    # that each see less context (a 3-conv network reaches 4 pixels): within a few levels.
    assert np.abs(pixels(tiled) - pixels(whole)).max() <= 3
    assert enlarge(network, image, (600, 600)).size == (600, 600)  # one pass, then resized down


def test_upscale_starts_from_the_models_network_when_its_upscaler_is_one(
    tiny_model: LoadedModel, tmp_path: Path
) -> None:
    torch.manual_seed(3)
    file = _save(SRVGGNetCompact(8, 2, 4).eval(), tmp_path / "4x.safetensors")
    config = dataclasses.replace(tiny_model.config, upscaler=str(file))
    assert upscale_setup(config).upscaler == "network"
    assert upscale_setup(dataclasses.replace(config, upscaler="owner/x4-upscaler")).upscaler == "x4"
    model = dataclasses.replace(tiny_model, config=config, extras={})
    source = run_imagine(model, base_spec("tiny", steps=4, guidance=7.0)).images[0]
    spec = upscale_spec(
        base_spec("tiny", steps=8), SOURCE_HASH, source.size, 2, "subtle", 64, setup=upscale_setup(config)
    )
    assert (spec.method, spec.first_stage) == ("img2img", "network")
    first_stage = run_upscale(model, spec.model_copy(update={"strength": 0.0}), source).images[0]
    assert first_stage.tobytes() == enlarge(load_sr_network(file), source, (128, 128)).tobytes()
    lanczos = source.resize((128, 128), Image.Resampling.LANCZOS)
    assert np.abs(pixels(first_stage) - pixels(lanczos)).mean() > 1  # the network, not Lanczos
    detailed = run_upscale(model, spec, source).images[0]
    assert detailed.size == (128, 128) and np.abs(pixels(detailed) - pixels(first_stage)).mean() > 1


def test_the_bundled_upscaler_has_the_truths_sharpness_where_lanczos_blurs() -> None:
    """On 24 scenes it never saw (drawn at 256 px, reduced 4x): its 4x has about the edge energy of
    the 256-px drawing (mean squared step between neighbours: 74-100% of it, where Lanczos keeps about
    a quarter) and is nearer the drawing on average. A sharp edge a fraction of a pixel off costs more than a blurred
    one, so on a scene of flat colours it may be a little farther (at most 0.5 of 255)."""
    from generation.bundled.dataset import sample_scene
    from generation.bundled.train_upscaler import UPSCALER_DIR, UPSCALER_FILE

    network = load_sr_network(UPSCALER_DIR / UPSCALER_FILE)
    rng = random.Random(12345)
    errors: list[tuple[float, float]] = []
    for _ in range(24):
        truth = sample_scene(rng, variety=0.06).render(256)
        small = truth.resize((64, 64), Image.Resampling.BICUBIC)
        ours = pixels(enlarge(network, small, (256, 256))).astype(float)
        lanczos = pixels(small.resize((256, 256), Image.Resampling.LANCZOS)).astype(float)
        target = pixels(truth).astype(float)

        def energy(image: np.ndarray) -> float:
            return float((np.diff(image, axis=1) ** 2).mean() + (np.diff(image, axis=0) ** 2).mean())

        assert 2 * energy(lanczos) < energy(ours) < 1.25 * energy(target)
        errors.append((np.abs(ours - target).mean(), np.abs(lanczos - target).mean()))
    assert all(ours <= theirs + 0.5 for ours, theirs in errors)
    assert np.mean([ours for ours, _ in errors]) < 0.8 * np.mean([theirs for _, theirs in errors])
