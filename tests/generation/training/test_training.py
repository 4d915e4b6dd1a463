"""Training on the tiny model: the files are plain diffusers files, training is reproducible and resumable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image
from safetensors.torch import load

from generation.errors import JobCancelled
from generation.models.loading import LoadedModel
from generation.training.loop import TrainingProgress, train_adapter
from tests.generation.training.conftest import make_spec


def render(pipeline: StableDiffusionPipeline, prompt: str, seed: int = 3) -> np.ndarray:
    output = pipeline(
        prompt,
        num_inference_steps=2,
        guidance_scale=1.0,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="np",
    )
    return output.images[0]


def plain_pipeline(model_dir: Path) -> StableDiffusionPipeline:
    return StableDiffusionPipeline.from_pretrained(
        model_dir, safety_checker=None, requires_safety_checker=False
    )


@pytest.mark.parametrize("text_encoder", [False, True], ids=["unet", "unet+text-encoder"])
def test_lora_file_loads_in_plain_diffusers_and_changes_the_output(
    text_encoder: bool,
    tiny_model: LoadedModel,
    tiny_model_dir: Path,
    photos: list[Image.Image],
    class_cache: Path,
    tmp_path: Path,
) -> None:
    spec = make_spec(photos, "lora", train_text_encoder=text_encoder)
    trained = train_adapter(
        tiny_model, spec, photos, checkpoint_path=tmp_path / "c.st", class_cache=class_cache
    )
    assert any(key.startswith("text_encoder.") for key in load(trained.safetensors)) == text_encoder
    lora_file = tmp_path / "hexy.safetensors"
    lora_file.write_bytes(trained.safetensors)
    assert trained.trigger == "sks shape"

    # From here on only diffusers: no dreamcord code touches the file.
    pipeline = plain_pipeline(tiny_model_dir)
    base = render(pipeline, "a sks shape")
    pipeline.load_lora_weights(str(lora_file), adapter_name="hexy")
    with_lora = render(pipeline, "a sks shape")
    pipeline.set_adapters(["hexy"], [0.0])
    weight_zero = render(pipeline, "a sks shape")
    pipeline.unload_lora_weights()
    unloaded = render(pipeline, "a sks shape")

    assert np.abs(with_lora - base).max() > 1e-3
    np.testing.assert_array_equal(weight_zero, base)
    np.testing.assert_array_equal(unloaded, base)


def test_embedding_file_loads_in_plain_diffusers_and_changes_the_output(
    tiny_model: LoadedModel,
    tiny_model_dir: Path,
    photos: list[Image.Image],
    class_cache: Path,
    tmp_path: Path,
) -> None:
    spec = make_spec(photos, "embedding", vectors=2)
    trained = train_adapter(
        tiny_model, spec, photos, checkpoint_path=tmp_path / "c.st", class_cache=class_cache
    )
    tensors = load(trained.safetensors)
    assert list(tensors) == ["<hexy>"] and tensors["<hexy>"].shape == (2, 32)
    path = tmp_path / "hexy.safetensors"
    path.write_bytes(trained.safetensors)

    pipeline = plain_pipeline(tiny_model_dir)
    before = render(pipeline, "a shape")
    pipeline.load_textual_inversion(str(path))
    assert render(pipeline, "a shape").tolist() == before.tolist()  # other prompts are untouched
    assert np.abs(render(pipeline, "a <hexy>") - before).max() > 1e-3


def test_training_leaves_the_base_model_untouched(
    tiny_model: LoadedModel, photos: list[Image.Image], class_cache: Path, tmp_path: Path
) -> None:
    before = {name: p.clone() for name, p in tiny_model.pipeline.unet.state_dict().items()}
    vocabulary = len(tiny_model.pipeline.tokenizer)
    for method in ("lora", "embedding"):
        train_adapter(
            tiny_model,
            make_spec(photos, method),
            photos,
            checkpoint_path=tmp_path / method,
            class_cache=class_cache,
        )
    after = tiny_model.pipeline.unet.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert len(tiny_model.pipeline.tokenizer) == vocabulary


@pytest.mark.parametrize("method", ["lora", "embedding"])
def test_same_spec_trains_the_same_file(
    method: str, tiny_model: LoadedModel, photos: list[Image.Image], class_cache: Path, tmp_path: Path
) -> None:
    spec = make_spec(photos, method)
    runs = [
        train_adapter(
            tiny_model, spec, photos, checkpoint_path=tmp_path / f"{run}.st", class_cache=class_cache
        )
        for run in range(2)
    ]
    first, second = (load(run.safetensors) for run in runs)
    assert all(torch.equal(first[key], second[key]) for key in first)


@pytest.mark.parametrize("method", ["lora", "embedding"])
def test_a_crashed_training_resumes_from_its_checkpoint_to_the_same_result(
    method: str, tiny_model: LoadedModel, photos: list[Image.Image], class_cache: Path, tmp_path: Path
) -> None:
    spec = make_spec(photos, method, steps=6, checkpoint_every=3)
    uninterrupted = train_adapter(
        tiny_model, spec, photos, checkpoint_path=tmp_path / "straight.st", class_cache=class_cache
    )
    checkpoint = tmp_path / "crashy.st"
    calls = iter(range(100))
    with pytest.raises(JobCancelled):  # stands in for a crash after step 4: the checkpoint holds step 3
        train_adapter(
            tiny_model,
            spec,
            photos,
            checkpoint_path=checkpoint,
            class_cache=class_cache,
            should_cancel=lambda: next(calls) == 4,
        )
    assert checkpoint.exists()
    steps: list[int] = []
    resumed = train_adapter(
        tiny_model,
        spec,
        photos,
        checkpoint_path=checkpoint,
        class_cache=class_cache,
        on_progress=lambda progress: steps.append(progress.step),
    )
    assert steps == [4, 5, 6]  # went on from the checkpoint
    assert not checkpoint.exists()  # removed once the file is made
    straight, again = load(uninterrupted.safetensors), load(resumed.safetensors)
    for key in straight:
        torch.testing.assert_close(again[key], straight[key], rtol=1e-5, atol=1e-6)


def test_progress_reports_every_step_with_loss_and_time_left(
    tiny_model: LoadedModel, photos: list[Image.Image], class_cache: Path, tmp_path: Path
) -> None:
    seen: list[TrainingProgress] = []
    train_adapter(
        tiny_model,
        make_spec(photos, "embedding", steps=3),
        photos,
        checkpoint_path=tmp_path / "c.st",
        class_cache=class_cache,
        on_progress=seen.append,
    )
    assert [(p.step, p.total) for p in seen] == [(1, 3), (2, 3), (3, 3)]
    assert all(np.isfinite(p.loss) and p.seconds_left >= 0 for p in seen)
    assert seen[-1].seconds_left == 0
    assert "loss" in seen[0].describe() and "left" in seen[0].describe()


def test_class_images_are_rendered_once_per_model_and_noun(
    tiny_model: LoadedModel, photos: list[Image.Image], class_cache: Path, tmp_path: Path
) -> None:
    spec = make_spec(photos, "lora", steps=1, class_images=3)
    train_adapter(tiny_model, spec, photos, checkpoint_path=tmp_path / "a.st", class_cache=class_cache)
    files = sorted(class_cache.rglob("*.png"))
    assert len(files) == 3
    stamps = [f.stat().st_mtime_ns for f in files]
    train_adapter(tiny_model, spec, photos, checkpoint_path=tmp_path / "b.st", class_cache=class_cache)
    assert [f.stat().st_mtime_ns for f in sorted(class_cache.rglob("*.png"))] == stamps


def test_cancel_stops_training(
    tiny_model: LoadedModel, photos: list[Image.Image], class_cache: Path, tmp_path: Path
) -> None:
    with pytest.raises(JobCancelled):
        train_adapter(
            tiny_model,
            make_spec(photos, "embedding", steps=1000),
            photos,
            checkpoint_path=tmp_path / "c.st",
            class_cache=class_cache,
            should_cancel=lambda: True,
        )


def test_samples_are_rendered_with_the_new_token(
    tiny_model: LoadedModel, photos: list[Image.Image], class_cache: Path, tmp_path: Path
) -> None:
    trained = train_adapter(
        tiny_model,
        make_spec(photos, "lora", samples=2),
        photos,
        checkpoint_path=tmp_path / "c.st",
        class_cache=class_cache,
    )
    assert [image.size for image in trained.samples] == [(64, 64), (64, 64)]
