"""The bundled model's describer, measured as issue 20 asks: describe(imagine(p)) names p's colour
and shape for at least 80 of 100 prompts, and imagine(describe(x)) agrees with x in colour and shape
by the evaluator for at least 70 of 100 pictures."""

from __future__ import annotations

import random

import pytest

from generation.bundled import evaluator
from generation.bundled.dataset import sample_scene
from generation.bundled.describer import SUGGESTIONS, describe
from generation.models.loading import LoadedModel
from generation.operations.imagine import run_imagine
from generation.prompt import parse_prompt
from generation.specs import imagine_spec

PROMPTS = 100
pytestmark = pytest.mark.slow  # 200 pictures of the bundled model: the slow CI step


@pytest.fixture(scope="module")
def judge() -> evaluator.SceneClassifier:
    return evaluator.load()


def _imagine(model: LoadedModel, prompt: str, seed: int) -> object:
    spec = imagine_spec(parse_prompt(f"{prompt} --seed {seed}"), model.config, model.resolution, count=1)
    return run_imagine(model, spec).images[0]


def test_describe_names_the_colour_and_shape_it_was_asked_for(
    bundled_model: LoadedModel, judge: evaluator.SceneClassifier
) -> None:
    rng = random.Random(11)
    named = 0
    for index in range(PROMPTS):
        scene = sample_scene(rng, max_shapes=1)
        shape = scene.shapes[0]
        picture = _imagine(bundled_model, scene.caption(), 1000 + index)
        suggestions = describe(judge, picture)  # type: ignore[arg-type]
        assert len(suggestions) == SUGGESTIONS, suggestions
        words = suggestions[0].split()
        named += shape.colour in words and shape.shape in words
    assert named >= 80, named


def test_imagining_a_description_gives_back_the_pictures_colour_and_shape(
    bundled_model: LoadedModel, judge: evaluator.SceneClassifier
) -> None:
    rng = random.Random(12)
    scenes = [sample_scene(rng, max_shapes=1) for _ in range(PROMPTS)]
    originals = [scene.render(bundled_model.resolution) for scene in scenes]
    agreed = 0
    for index, (original, seen) in enumerate(
        zip(originals, evaluator.classify(judge, originals), strict=True)
    ):
        back = _imagine(bundled_model, describe(judge, original)[0], 2000 + index)
        (verdict,) = evaluator.classify(judge, [back])  # type: ignore[list-item]
        agreed += verdict.colour == seen.colour and verdict.shape == seen.shape
    assert agreed >= 70, agreed
