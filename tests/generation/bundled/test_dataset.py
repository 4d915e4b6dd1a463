from __future__ import annotations

import random

import numpy as np
import pytest

from generation.bundled.architecture import build_tokenizer
from generation.bundled.dataset import (
    COLOURS,
    HELD_OUT,
    SHAPES,
    Background,
    Scene,
    Shape,
    allowed_pairs,
    sample_scene,
    without_background,
)


def _scenes(count: int, **kw: object) -> list[Scene]:
    rng = random.Random(0)
    return [sample_scene(rng, **kw) for _ in range(count)]  # type: ignore[arg-type]


def test_dataset_covers_the_required_variety() -> None:
    assert len(SHAPES) >= 6 and len(COLOURS) >= 8
    scenes = _scenes(2000)
    assert {shape.shape for scene in scenes for shape in scene.shapes} == set(SHAPES)
    assert {scene.background.kind for scene in scenes} == {"solid", "striped", "gradient"}
    assert {len(scene.shapes) for scene in scenes} == {1, 2}


def test_held_out_pairs_never_appear_in_training_scenes() -> None:
    pairs = {(shape.colour, shape.shape) for scene in _scenes(3000) for shape in scene.shapes}
    assert not pairs & HELD_OUT
    assert pairs == set(allowed_pairs(held_out=False))


def test_held_out_scenes_show_a_held_out_pair() -> None:
    for scene in _scenes(50, held_out=True, max_shapes=1):
        assert (scene.shapes[0].colour, scene.shapes[0].shape) in HELD_OUT


def test_caption_names_what_is_drawn() -> None:
    scene = Scene(
        shapes=(Shape("star", "yellow", "small", "top left"),),
        background=Background("striped", ("blue", "white")),
    )
    assert scene.caption() == "a small yellow star at the top left on a blue and white striped background"
    orange = Scene((Shape("ring", "orange", "medium", "centre"),), Background("solid", ("gray",)))
    assert orange.caption() == "an orange ring in the centre on a gray background"


def test_without_background_leaves_the_shapes_phrases_alone() -> None:
    rng = random.Random(5)
    scenes = [sample_scene(rng, variety=0.06) for _ in range(300)]
    assert {scene.background.kind for scene in scenes} == {"solid", "striped", "gradient"}
    assert any(len(scene.shapes) == 2 and scene.shapes[0].says_position for scene in scenes)
    for scene in scenes:
        assert without_background(scene.caption()) == " and ".join(s.phrase() for s in scene.shapes)


def test_rendering_is_deterministic_and_puts_the_colour_where_the_caption_says() -> None:
    scene = Scene((Shape("square", "red", "large", "left"),), Background("solid", ("white",)))
    first, second = np.asarray(scene.render(64)), np.asarray(scene.render(64))
    assert np.array_equal(first, second)
    red = np.all(np.abs(first.astype(int) - COLOURS["red"]) < 30, axis=2)
    assert red[:, :32].sum() > 10 * max(1, red[:, 32:].sum())


def test_the_subject_mask_covers_the_shapes_and_nothing_else() -> None:
    scene = Scene(
        (Shape("star", "red", "large", "left"), Shape("ring", "blue", "small", "top right")),
        Background("striped", ("white", "gray")),
    )
    picture, mask = np.asarray(scene.render(64)).astype(int), np.asarray(scene.subject_mask(64))
    shape_coloured = np.zeros(mask.shape, dtype=bool)
    for colour in ("red", "blue"):
        shape_coloured |= np.all(np.abs(picture - COLOURS[colour]) < 20, axis=2)
    assert shape_coloured.sum() > 100
    assert (mask[shape_coloured] > 200).mean() > 0.97  # edges are anti-aliased in both
    assert (mask[~shape_coloured] < 128).mean() > 0.97


def test_shape_never_shares_the_background_colour() -> None:
    for scene in _scenes(500):
        assert not {shape.colour for shape in scene.shapes} & set(scene.background.colours)


@pytest.mark.parametrize("scene", _scenes(30))
def test_every_caption_word_is_one_token(scene: Scene) -> None:
    tokenizer = build_tokenizer()
    words = scene.caption().split()
    assert tokenizer.tokenize(scene.caption()) == [f"{word}</w>" for word in words]
