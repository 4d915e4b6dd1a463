"""The bundled model's IP-Adapter, measured as issue 20 asks (bench/bench_image_prompts.py prints the
same figures): an image prompt of one coloured shape with the text "a shape" gives that colour and
shape for at least 70 of 100 pictures; /blend of a red circle and a blue square gives pictures whose
verdicts come from both inputs; --iw 0 is exactly no image prompt."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from generation.bundled import evaluator
from generation.bundled.dataset import Background, Scene, Shape, sample_scene
from generation.models.image_prompts import adapter_in, adapter_of
from generation.models.loading import LoadedModel
from generation.operations.imagine import run_imagine
from generation.prompt import parse_prompt
from generation.specs import imagine_spec

pytestmark = pytest.mark.slow  # 300 pictures of the bundled model: the slow CI step
PLACEHOLDER = "0" * 64


def _render(model: LoadedModel, text: str, pictures: list[Image.Image], count: int = 1) -> list[Image.Image]:
    spec = imagine_spec(parse_prompt(text, pictures=True), model.config, model.resolution, count=count,
                        pictures=(PLACEHOLDER,) * len(pictures))  # fmt: skip
    if not pictures:
        return run_imagine(model, spec.model_copy(update={"image_prompt": None})).images
    adapter = adapter_of(model, offline=True)
    with adapter_in(model.pipeline, adapter):
        return run_imagine(model, spec, image_prompt=(adapter, pictures)).images


def _one(colour: str, shape: str) -> Image.Image:
    return Scene((Shape(shape, colour, "large", "centre"),), Background("solid", ("white",))).render()


@pytest.fixture(scope="module")
def judge() -> evaluator.SceneClassifier:
    return evaluator.load()


def test_an_image_prompt_gives_its_colour_and_shape(
    bundled_model: LoadedModel, judge: evaluator.SceneClassifier
) -> None:
    rng = random.Random(21)
    both = 0
    for index in range(100):
        truth = sample_scene(rng, max_shapes=1)
        (picture,) = _render(bundled_model, f"a shape --seed {2000 + index}", [truth.render()])
        verdict = evaluator.classify(judge, [picture])[0]
        both += verdict.colour == truth.shapes[0].colour and verdict.shape == truth.shapes[0].shape
    assert both >= 70, both


def test_a_blend_takes_from_both_pictures_and_iw_0_is_no_image_prompt(
    bundled_model: LoadedModel, judge: evaluator.SceneClassifier
) -> None:
    pictures = [_one("red", "circle"), _one("blue", "square")]
    taken: Counter[str] = Counter()
    for index in range(25):
        for picture in _render(bundled_model, f"--seed {3000 + 4 * index}", pictures, count=4):
            verdict = evaluator.classify(judge, [picture])[0]
            taken.update({"red": ["circle"], "blue": ["square"]}.get(verdict.colour, []))
            taken.update({"circle": ["circle"], "square": ["square"]}.get(verdict.shape, []))
    assert taken["circle"] >= 20 and taken["square"] >= 20, taken  # of 200 verdicts, each input's share
    alone = _render(bundled_model, "a green star --seed 9", [], count=4)
    zero = _render(bundled_model, "a green star --seed 9 --iw 0", pictures[:1], count=4)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(alone, zero, strict=True))
