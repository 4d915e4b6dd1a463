"""Single-file checkpoints: one original-layout `.safetensors` (as A1111 and model sites ship them)
loads offline through the config and gives exactly the pictures of the diffusers folder it came from;
what cannot load is refused in one line that says what the file is."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from generation.config import ModelConfig
from generation.errors import ModelLoadError, ModelNotFoundError
from generation.models.checkpoint_facts import family_of, native_resolution
from generation.models.loading import load_model
from generation.models.single_file import read_single_file
from generation.operations.imagine import run_imagine
from generation.specs import ImagineSpec
from tests.generation.original_layout import (
    conventional_tiny_sd1,
    conventional_tiny_sd2,
    conventional_tiny_sdxl,
    save_single_file,
    vae_to_original,
)

BUILDERS = {"sd1": conventional_tiny_sd1, "sd2": conventional_tiny_sd2, "sdxl": conventional_tiny_sdxl}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a fetch attempt fails instead of going unnoticed
    yield


@pytest.fixture(scope="module", params=["sd1", "sd2", "sdxl"])
def checkpoint(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, Path]:
    """(family, the diffusers folder, the same weights as one original-layout file)."""
    family: str = request.param
    root = tmp_path_factory.mktemp(family)
    pipeline = BUILDERS[family]()
    pipeline.save_pretrained(root / "folder", safe_serialization=True)
    return family, root / "folder", save_single_file(pipeline, root / f"{family}.safetensors")


def _spec(model: str, seeds: tuple[int, ...] = (3, 4)) -> ImagineSpec:
    return ImagineSpec(model=model, prompt="a photo of a red cat", negative_prompt="blurry", seeds=seeds,
                       width=64, height=64, steps=3, guidance=6.0)  # fmt: skip


def test_a_single_file_gives_the_pixels_of_its_folder(checkpoint: tuple[str, Path, Path]) -> None:
    variant, folder, file = checkpoint
    from_folder = load_model(ModelConfig(name="folder", source=str(folder)), device="cpu")
    from_file = load_model(ModelConfig(name="file", source=str(file)), device="cpu")
    assert from_file.family.name == {"sd2": "sd1"}.get(variant, variant)
    assert type(from_file.pipeline) is type(from_folder.pipeline)
    assert from_file.scheduler_config["prediction_type"] == from_folder.scheduler_config["prediction_type"]
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        ours, theirs = getattr(from_file.pipeline, name, None), getattr(from_folder.pipeline, name, None)
        if theirs is not None:
            assert all(
                torch.equal(a, b)
                for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True)
            ), name
    pictures = run_imagine(from_file, _spec("file")).images
    expected = run_imagine(from_folder, _spec("folder")).images
    assert [p.tobytes() for p in pictures] == [p.tobytes() for p in expected]


def test_family_and_size_of_a_file_come_from_its_header(checkpoint: tuple[str, Path, Path]) -> None:
    variant, _, file = checkpoint
    config = ModelConfig(name="file", source=str(file))
    assert family_of(config).name == {"sd2": "sd1"}.get(variant, variant)
    assert native_resolution(config) == {"sd1": 512, "sd2": 768, "sdxl": 1024}[variant]  # as A1111 assumes
    assert native_resolution(ModelConfig(name="sized", source=str(file), resolution=64)) == 64
    unet = read_single_file(str(file)).configs["unet"]
    assert unet["block_out_channels"] == ([32, 64, 64] if variant == "sdxl" else [32, 64])


def test_a_file_without_a_vae_needs_one_named_and_loads_with_a_vae_file(
    checkpoint: tuple[str, Path, Path], tmp_path: Path
) -> None:
    variant, _, file = checkpoint
    pipeline = BUILDERS[variant]()  # the same seed: the same weights as `file`
    bare = save_single_file(pipeline, tmp_path / "no-vae.safetensors", with_vae=False)
    with pytest.raises(ModelLoadError, match=r"no-vae\.safetensors holds no VAE; name one with vae ="):
        load_model(ModelConfig(name="bare", source=str(bare)), device="cpu")
    vae_file = tmp_path / "vae.safetensors"
    save_file(
        {
            k.removeprefix("first_stage_model."): v.contiguous()
            for k, v in vae_to_original(pipeline.vae).items()
        },
        vae_file,
    )
    with_vae = load_model(ModelConfig(name="bare", source=str(bare), vae=str(vae_file)), device="cpu")
    whole = load_model(ModelConfig(name="whole", source=str(file)), device="cpu")
    assert (
        run_imagine(with_vae, _spec("bare", (1,))).images[0].tobytes()
        == run_imagine(whole, _spec("whole", (1,))).images[0].tobytes()
    )
    assert with_vae.pipeline.vae.config.scaling_factor == whole.pipeline.vae.config.scaling_factor


def _fake_checkpoint(path: Path, shapes: dict[str, list[int]]) -> Path:
    """A safetensors file with these tensors (zeros): enough for the header-only checks."""
    save_file({name: torch.zeros(shape) for name, shape in shapes.items()}, path)
    return path


@pytest.mark.parametrize(
    ("keys", "said"),
    [
        ({"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": [3, 2]}, "Stable Diffusion 3"),
        ({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": [4, 2]}, "not a whole checkpoint"),
        ({"model.diffusion_model.input_blocks.0.0.weight": [4, 9, 3, 3],
          "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": [8, 4]}, "inpainting"),
        ({"model.diffusion_model.input_blocks.0.0.weight": [4, 4, 3, 3],
          "conditioner.embedders.0.model.positional_embedding": [77, 4]}, "SDXL refiner"),
        ({"model.diffusion_model.input_blocks.0.0.weight": [4, 4, 3, 3],
          "cond_stage_model.model.token_embedding.weight": [8, 4]}, "SD 2.x-like checkpoint with 0 text-encoder"),
    ],
)  # fmt: skip
def test_a_file_of_another_kind_is_refused_saying_what_it_is(
    tmp_path: Path, keys: dict[str, list[int]], said: str
) -> None:
    file = _fake_checkpoint(tmp_path / "other.safetensors", keys)
    with pytest.raises(
        ModelLoadError, match=rf"other\.safetensors: it is .*{said}.*; dreamcord loads single files"
    ):
        load_model(ModelConfig(name="other", source=str(file)), device="cpu")
    with pytest.raises(ModelLoadError, match=said):
        family_of(ModelConfig(name="other-facts", source=str(file)))


def test_a_file_with_another_vocabulary_is_refused(tmp_path: Path) -> None:
    pipeline = conventional_tiny_sd1()
    weights_file = save_single_file(pipeline, tmp_path / "full.safetensors")
    from safetensors.torch import load_file

    weights = load_file(weights_file)
    key = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
    weights[key] = weights[key][:1000].contiguous()
    save_file(weights, tmp_path / "small-vocab.safetensors")
    with pytest.raises(ModelLoadError, match=r"vocabulary of 1,000 tokens, not CLIP's 49,408"):
        load_model(ModelConfig(name="small", source=str(tmp_path / "small-vocab.safetensors")), device="cpu")


def test_pickles_and_broken_files_are_refused_without_being_opened(tmp_path: Path) -> None:
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"\x80\x04 not really")
    with pytest.raises(ModelLoadError, match=r"model\.ckpt is a pickle checkpoint, which can run code"):
        load_model(ModelConfig(name="pickle", source=str(pickle)), device="cpu")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(struct.pack("<Q", 10**6) + json.dumps({}).encode())
    with pytest.raises(ModelLoadError, match=r"broken\.safetensors is not a safetensors file"):
        load_model(ModelConfig(name="broken", source=str(broken)), device="cpu")
    with pytest.raises(ModelNotFoundError, match=r"model file .*gone\.safetensors does not exist"):
        load_model(ModelConfig(name="gone", source=str(tmp_path / "gone.safetensors")), device="cpu")


def test_a_v_prediction_marker_makes_the_file_load_as_v_prediction(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    file = save_single_file(conventional_tiny_sd1(), tmp_path / "eps.safetensors")
    weights = load_file(file) | {"v_pred": torch.zeros(0)}  # as v-prediction fine-tunes mark themselves
    save_file(weights, tmp_path / "vpred.safetensors")
    eps = load_model(ModelConfig(name="eps", source=str(file)), device="cpu")
    vpred = load_model(ModelConfig(name="vpred", source=str(tmp_path / "vpred.safetensors")), device="cpu")
    assert (eps.scheduler_config["prediction_type"], vpred.scheduler_config["prediction_type"]) == (
        "epsilon",
        "v_prediction",
    )

    told = load_model(ModelConfig(name="told", source=str(file), prediction="v_prediction"), device="cpu")
    assert told.scheduler_config["prediction_type"] == "v_prediction"  # the config key says it for any model
