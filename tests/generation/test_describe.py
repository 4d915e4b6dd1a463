"""/describe's run function: the bundled model's describer on a scene it knows, a transformers
captioner (a tiny random BLIP) loaded from its folder, and the refusal on a model without one."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from generation.bundled import bundled_model_config
from generation.bundled.dataset import Background, Scene, Shape
from generation.config import ModelConfig
from generation.errors import SpecError
from generation.pool.runner import JobRunner
from generation.specs import SUGGESTIONS, DescribeSpec
from tests.generation.tiny_captioner import WORDS, build_tiny_blip


def _stored(runner: JobRunner, image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert runner.files is not None
    return runner.files.put(buffer.getvalue())


def test_the_bundled_describer_names_what_a_scene_shows(tmp_path: Path) -> None:
    runner = JobRunner({"bundled": bundled_model_config()}, device="cpu", data_dir=tmp_path)
    scene = Scene((Shape("star", "green", "large", "centre"),), Background("solid", ("white",)))
    output = runner.run(DescribeSpec(model="bundled", source=_stored(runner, scene.render())))
    assert len(output.texts) == SUGGESTIONS and len(set(output.texts)) == SUGGESTIONS
    assert output.texts[0] == "a green star on a white background", output.texts
    assert output.images == () and "describing" in dict(output.timings)


@pytest.fixture(scope="module")
def captioned(tiny_config: ModelConfig, tmp_path_factory: pytest.TempPathFactory) -> ModelConfig:
    folder = build_tiny_blip(tmp_path_factory.mktemp("blip"))
    return replace(tiny_config, describer=str(folder))


def test_a_captioning_model_gives_four_distinct_captions_the_same_each_time(
    captioned: ModelConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runner = JobRunner({"tiny": captioned}, device="cpu", data_dir=tmp_path)
    picture = Image.new("RGB", (48, 40), (255, 0, 0))
    spec = DescribeSpec(model="tiny", source=_stored(runner, picture))
    first = runner.run(spec).texts
    assert 1 < len(first) <= SUGGESTIONS and len(set(first)) == len(first)
    assert all(set(text.split()) <= set(WORDS) for text in first), first  # decoded, no special tokens
    assert runner.run(spec).texts == first  # beam search: no sampling
    other = Image.new("RGB", (48, 40), (0, 0, 255))  # the picture reaches the model
    assert runner.run(DescribeSpec(model="tiny", source=_stored(runner, other))).texts != first


def test_a_model_without_a_describer_refuses_in_one_line(tiny_config: ModelConfig, tmp_path: Path) -> None:
    runner = JobRunner({"tiny": tiny_config}, device="cpu", data_dir=tmp_path)
    spec = DescribeSpec(model="tiny", source=_stored(runner, Image.new("RGB", (64, 64))))
    with pytest.raises(SpecError, match="no describer configured"):
        runner.run(spec)


def test_a_describer_folder_that_is_not_a_captioner_is_refused(
    tiny_config: ModelConfig, tmp_path: Path
) -> None:
    from generation.errors import DreamcordError

    runner = JobRunner(
        {"tiny": replace(tiny_config, describer=str(tmp_path))}, device="cpu", data_dir=tmp_path
    )
    spec = DescribeSpec(model="tiny", source=_stored(runner, Image.new("RGB", (64, 64))))
    with pytest.raises(DreamcordError, match="not a diffusers model folder"):
        runner.run(spec)
