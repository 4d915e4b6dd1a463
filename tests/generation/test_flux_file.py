"""Flux single files: a transformer in Black Forest Labs' layout (or ComfyUI's, under its prefix)
plus the `base` it was made from loads offline and gives exactly the pictures of the diffusers folder
it came from, at any width; the renames agree with diffusers' own converter on a full-width block;
what cannot load is refused in one line."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline
from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers
from PIL import Image
from safetensors.torch import save_file

from generation.config import ModelConfig
from generation.errors import ModelLoadError
from generation.models.checkpoint_facts import family_of, native_resolution
from generation.models.flux_weights import convert_flux_state_dict
from generation.models.loading import LoadedModel, load_model
from generation.models.single_file import read_single_file
from generation.models.tiny_flux import build_tiny_flux_pipeline, save_tiny_flux_fill_model
from generation.operations.imagine import run_imagine
from generation.operations.vary import run_vary
from generation.specs import ImagineSpec, RegionBox, VarySpec
from tests.generation.flux_layout import flux_to_bfl, full_width_bfl_labels, save_flux_file

SOURCE_HASH = "0" * 64


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a fetch attempt fails instead of going unnoticed
    yield


@dataclasses.dataclass(frozen=True)
class Files:
    folder: Path  # the whole tiny Flux (seed 0) in diffusers layout
    base: Path  # the same text encoders, VAE and scheduler with another transformer (seed 1)
    file: Path  # the folder's transformer as one BFL-layout file


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("flux-file")
    pipeline = build_tiny_flux_pipeline(seed=0)
    pipeline.save_pretrained(root / "folder", safe_serialization=True)
    other = build_tiny_flux_pipeline(seed=1).transformer
    components = {name: getattr(pipeline, name) for name in pipeline.components if name != "transformer"}
    FluxPipeline(transformer=other, **components).save_pretrained(root / "base", safe_serialization=True)
    return Files(
        root / "folder", root / "base", save_flux_file(pipeline.transformer, root / "flux.safetensors")
    )


def _spec(model: str, seeds: tuple[int, ...] = (3, 4)) -> ImagineSpec:
    return ImagineSpec(
        model=model, prompt="a red circle", seeds=seeds, width=64, height=64, steps=3, guidance=3.5
    )


def _pictures(model: LoadedModel, seeds: tuple[int, ...] = (3, 4)) -> list[bytes]:
    return [picture.tobytes() for picture in run_imagine(model, _spec(model.config.name, seeds)).images]


def test_a_flux_file_with_its_base_gives_the_pixels_of_its_folder(files: Files) -> None:
    from_file = load_model(
        ModelConfig(name="file", source=str(files.file), base=str(files.base)), device="cpu"
    )
    from_folder = load_model(ModelConfig(name="folder", source=str(files.folder)), device="cpu")
    base_alone = load_model(ModelConfig(name="base", source=str(files.base)), device="cpu")
    assert from_file.family.name == "flux" and type(from_file.pipeline) is FluxPipeline
    ours, theirs = from_file.pipeline.transformer.state_dict(), from_folder.pipeline.transformer.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert _pictures(from_file) == _pictures(from_folder)
    assert _pictures(base_alone) != _pictures(from_folder)  # the file's transformer drew them, not the base's


def test_a_comfyui_file_in_bfloat16_loads_its_transformer_beside_other_parts(
    files: Files, tmp_path: Path
) -> None:
    transformer = build_tiny_flux_pipeline(seed=0).transformer.to(torch.bfloat16)
    extra = {"vae.decoder.conv_in.weight": torch.zeros(4, 16, 3, 3), "text_encoders.clip_l.x": torch.zeros(2)}
    comfy = save_flux_file(
        transformer, tmp_path / "comfy.safetensors", prefix="model.diffusion_model.", extra=extra
    )
    assert family_of(ModelConfig(name="c", source=str(comfy))).name == "flux"
    model = load_model(ModelConfig(name="comfy", source=str(comfy), base=str(files.base)), device="cpu")
    weights = model.pipeline.transformer.state_dict()
    assert {w.dtype for w in weights.values()} == {torch.float32}  # cast to the worker's dtype
    expected = transformer.state_dict()
    assert all(torch.equal(weights[k], expected[k].float()) for k in expected)
    assert len(_pictures(model, (1,))) == 1


def test_what_a_flux_file_is_comes_from_its_header(files: Files) -> None:
    from generation.models.weight_size import parameter_count

    config = ModelConfig(name="file", source=str(files.file))
    assert family_of(config).name == "flux" and native_resolution(config) == 1024
    # doctor's memory estimate: the file's transformer and the base's other parts, as the folder has
    assert parameter_count(str(files.file), str(files.base)) == parameter_count(str(files.folder))
    assert parameter_count(str(files.file)) < parameter_count(str(files.folder))  # type: ignore[operator]
    shapes = read_single_file(str(files.file)).configs["transformer"]
    assert shapes | {"guidance_embeds": True} == shapes  # FLUX.1 dev's guidance embedder is there
    assert (shapes["attention_head_dim"], shapes["num_attention_heads"], shapes["num_layers"]) == (16, 2, 1)
    assert (shapes["joint_attention_dim"], shapes["in_channels"]) == (32, 64)


def test_our_renames_agree_with_diffusers_converter_at_full_width() -> None:
    labels = full_width_bfl_labels()
    theirs = convert_flux_transformer_checkpoint_to_diffusers(dict(labels))
    ours = convert_flux_state_dict(dict(labels), 3072)
    assert ours.keys() == theirs.keys()
    assert [name for name in ours if not torch.equal(ours[name], theirs[name])] == []


def test_the_tiny_round_trip_is_exact() -> None:
    transformer = build_tiny_flux_pipeline(seed=2).transformer
    back = convert_flux_state_dict(flux_to_bfl(transformer), 32)
    weights = transformer.state_dict()
    assert back.keys() == weights.keys() and all(torch.equal(back[k], weights[k]) for k in weights)


def test_a_flux_file_without_a_base_or_with_a_wrong_one_is_refused(files: Files, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"flux\.safetensors holds a Flux transformer alone; name the Flux model it was made from with base = "):  # fmt: skip
        load_model(ModelConfig(name="f", source=str(files.file)), device="cpu")
    sd_folder = tmp_path / "sd"
    (sd_folder / "transformer").mkdir(parents=True)
    (sd_folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (sd_folder / "transformer" / "config.json").write_text('{"_class_name": "SD3Transformer2DModel"}')
    with pytest.raises(ModelLoadError, match=r"base '.*sd' is not a Flux model \(its transformer is SD3Transformer2DModel\)"):  # fmt: skip
        load_model(ModelConfig(name="f", source=str(files.file), base=str(sd_folder)), device="cpu")
    narrow = build_tiny_flux_pipeline(seed=0).transformer
    narrow_file = tmp_path / "narrow.safetensors"
    weights = flux_to_bfl(narrow)
    for name in [n for n in weights if "norm.query_norm" in n or "norm.key_norm" in n]:
        weights[name] = weights[name][:8]  # heads of 8: the base's rotary axes cover 16
    save_file({k: v.contiguous() for k, v in weights.items()}, str(narrow_file))
    with pytest.raises(ModelLoadError, match=r"narrow\.safetensors: its heads are 8 wide, while the base model's rotary embedding covers 16"):  # fmt: skip
        load_model(ModelConfig(name="n", source=str(narrow_file), base=str(files.base)), device="cpu")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda w: w.update({"lora_unet_x.alpha": torch.ones(1)}),
            r"holds tensors a Flux transformer does not have, such as 'lora_unet_x\.alpha'",
        ),
        (
            lambda w: w.pop("double_blocks.0.txt_attn.proj.bias"),
            r"lacks the Flux transformer's tensor 'double_blocks\.0\.txt_attn\.proj\.bias'",
        ),
        (lambda w: w.pop("img_in.weight"), r"lacks the Flux transformer's tensor 'img_in\.weight'"),
    ],
)
def test_a_damaged_or_unusual_flux_file_is_refused_in_one_line(
    files: Files, tmp_path: Path, change: object, message: str
) -> None:
    weights = flux_to_bfl(build_tiny_flux_pipeline(seed=0).transformer)
    change(weights)  # type: ignore[operator]
    path = tmp_path / "odd.safetensors"
    save_file({k: v.contiguous() for k, v in weights.items()}, str(path))
    with pytest.raises(ModelLoadError, match=r"^odd\.safetensors: .*" + message):
        load_model(ModelConfig(name="odd", source=str(path), base=str(files.base)), device="cpu")


def test_a_base_is_only_for_flux_files(files: Files, tmp_path: Path) -> None:
    from tests.generation.original_layout import conventional_tiny_sd1, save_single_file

    sd_file = save_single_file(conventional_tiny_sd1(), tmp_path / "sd.safetensors")
    with pytest.raises(ModelLoadError, match=r"base = … is for a Flux transformer file; sd\.safetensors is a whole SD 1\.x/2\.x checkpoint"):  # fmt: skip
        load_model(ModelConfig(name="sd", source=str(sd_file), base=str(files.base)), device="cpu")


def test_a_fill_transformer_file_paints_regions_as_its_folder_does(files: Files, tmp_path: Path) -> None:
    fill_folder = save_tiny_flux_fill_model(tmp_path / "fill")
    fill_file = tmp_path / "flux1-fill.safetensors"
    from diffusers import FluxTransformer2DModel

    save_flux_file(FluxTransformer2DModel.from_pretrained(fill_folder, subfolder="transformer"), fill_file)
    config = ModelConfig(name="file", source=str(files.file), base=str(files.base), steps=3, guidance=3.5, resolution=64)  # fmt: skip
    source = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    spec = VarySpec(model="file", prompt="a red circle", source=SOURCE_HASH, strength=1.0, seeds=(5,),
                    box=RegionBox(left=0.5, top=0.25, right=1.0, bottom=0.75), steps=3, guidance=3.5,
                    width=64, height=64)  # fmt: skip
    with_file = run_vary(
        load_model(dataclasses.replace(config, fill=str(fill_file)), device="cpu"), spec, source
    )
    with_folder = run_vary(
        load_model(dataclasses.replace(config, fill=str(fill_folder)), device="cpu"), spec, source
    )
    assert [p.tobytes() for p in with_file.images] == [p.tobytes() for p in with_folder.images]


def test_a_relative_base_is_a_path_beside_the_config_file(files: Files, tmp_path: Path) -> None:
    from bot.settings import load_settings

    shutil.copytree(files.base, tmp_path / "flux-base")
    shutil.copyfile(files.file, tmp_path / "flux.safetensors")
    (tmp_path / "dreamcord.toml").write_text(
        '[models.flux]\nsource = "flux.safetensors"\nbase = "flux-base"\n', encoding="utf-8"
    )
    settings = load_settings(tmp_path / "dreamcord.toml")
    assert settings.models["flux"].base == str((tmp_path / "flux-base").resolve())


def test_a_hub_base_is_read_from_the_cache_without_its_transformer_weights(
    files: Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `dreamcord pull` leaves for a base (pull.BASE_FILES): the hub cache without the base's own
    transformer weights, loaded offline."""
    import huggingface_hub.constants

    from bot.cli import main

    repo = tmp_path / "hub" / "models--owner--flux-base"
    snapshot = repo / "snapshots" / ("a" * 40)
    shutil.copytree(files.base, snapshot)
    (snapshot / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    config = ModelConfig(name="cached", source=str(files.file), base="owner/flux-base")
    assert _pictures(load_model(config, device="cpu")) == _pictures(
        load_model(ModelConfig(name="folder", source=str(files.folder)), device="cpu")
    )
    (tmp_path / "dreamcord.toml").write_text(
        f'[models.cached]\nsource = "{files.file}"\nbase = "owner/flux-base"\n', encoding="utf-8"
    )
    assert main(["--config", str(tmp_path / "dreamcord.toml"), "models"]) == 0
    assert "[single file, Flux; base owner/flux-base: cached]" in capsys.readouterr().out
