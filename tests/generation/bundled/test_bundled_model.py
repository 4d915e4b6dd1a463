"""The committed bundled model and its evaluator, loaded through the normal code path, offline."""

from __future__ import annotations

import json
import os
import random
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from generation.bundled import BUNDLED_MODEL_DIR, architecture, bundled_model_config, evaluator
from generation.bundled.dataset import COLOURS, sample_scene
from generation.models.loading import LoadedModel, load_model
from generation.operations.imagine import run_imagine
from generation.prompt import parse_prompt
from generation.specs import imagine_spec


@pytest.fixture(scope="module")
def bundled() -> LoadedModel:
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # set by conftest: nothing may reach the network
    return load_model(bundled_model_config(), device="cpu")


def dominant_foreground_colour(image: Image.Image) -> str:
    """The palette colour most pixels that differ from the border (the background) are closest to."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    foreground = pixels[np.linalg.norm(pixels - background, axis=2) > 60]
    assert len(foreground) > 0.02 * pixels.shape[0] * pixels.shape[1], "no foreground drawn"
    names = list(COLOURS)
    palette = np.array([COLOURS[name] for name in names], dtype=np.float32)
    nearest = np.argmin(np.linalg.norm(foreground[:, None, :] - palette[None], axis=2), axis=1)
    return names[Counter(nearest.tolist()).most_common(1)[0][0]]


def test_bundled_model_loads_offline_through_the_normal_loader(bundled: LoadedModel) -> None:
    assert bundled.config.source == str(BUNDLED_MODEL_DIR)
    design = json.loads((BUNDLED_MODEL_DIR / "training_config.json").read_text()).get("design", "v1")
    assert bundled.resolution == architecture.DESIGNS[design].image_size  # what it was trained at
    assert len(bundled.pipeline.tokenizer) == bundled.pipeline.text_encoder.config.vocab_size
    assert bundled.pipeline.tokenizer.tokenize("a red circle") == ["a</w>", "red</w>", "circle</w>"]


def test_red_circle_prompt_draws_a_red_foreground(bundled: LoadedModel) -> None:
    spec = imagine_spec(
        parse_prompt("a large red circle in the centre on a white background --seed 7"),
        bundled.config,
        bundled.resolution,
    )
    colours = [dominant_foreground_colour(image) for image in run_imagine(bundled, spec).images]
    assert colours.count("red") >= 3, colours


def test_blue_prompt_is_not_red(bundled: LoadedModel) -> None:
    """The colour follows the text: the same seeds with 'blue' give a blue foreground."""
    spec = imagine_spec(
        parse_prompt("a large blue circle in the centre on a white background --seed 7"),
        bundled.config,
        bundled.resolution,
    )
    colours = [dominant_foreground_colour(image) for image in run_imagine(bundled, spec).images]
    assert colours.count("blue") >= 3, colours


def test_evaluator_reads_ground_truth_scenes() -> None:
    judge = evaluator.load()
    rng = random.Random(5)
    scenes = [sample_scene(rng, max_shapes=1) for _ in range(100)]
    verdicts = evaluator.classify(judge, [scene.render(64) for scene in scenes])
    for attribute in ("colour", "shape", "position"):
        agree = sum(
            getattr(v, attribute) == getattr(s.shapes[0], attribute)
            for v, s in zip(verdicts, scenes, strict=True)
        )
        assert agree >= 95, (attribute, agree)
