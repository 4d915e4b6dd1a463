"""The scenes the bundled model's UNet batches are drawn from, plain scenes included."""

from __future__ import annotations

import random

import numpy as np
import torch

from generation.bundled.dataset import HELD_OUT, Background, Scene, Shape, sample_plain_scene, sample_scene
from generation.bundled.train import TrainConfig, render_dataset
from generation.bundled.training_data import batch_indices, render_pictures, subject_weights


def test_a_plain_scene_is_one_coloured_shape_placed_by_its_caption_on_white() -> None:
    rng = random.Random(0)
    for scene in (sample_plain_scene(rng, variety=0.06) for _ in range(200)):
        (shape,) = scene.shapes
        assert scene.background.kind == "solid" and scene.background.colours == ("white",)
        assert shape.colour != "white" and shape.says_position
        assert (shape.colour, shape.shape) not in HELD_OUT
        assert shape.position.split()[-1] in scene.caption() and "white background" in scene.caption()


def test_plain_scenes_follow_the_full_ones_which_stay_as_they_were() -> None:
    without = TrainConfig(scenes=6, design="v1", variety=0.06)
    with_plain = TrainConfig(scenes=6, design="v1", variety=0.06, plain_share=0.25, plain_scenes=3)
    images, captions = render_dataset(without)
    more_images, more_captions = render_dataset(with_plain)
    assert more_captions[:6] == captions and torch.equal(more_images[:6], images)
    assert len(more_captions) == 9 and all(c.endswith("on a white background") for c in more_captions[6:])


def test_a_batch_takes_its_share_from_the_plain_scenes() -> None:
    generator = torch.Generator().manual_seed(0)
    batches = [
        batch_indices(full=100, plain=20, batch=32, plain_share=0.25, generator=generator) for _ in range(50)
    ]
    assert all(len(b) == 32 and int((b >= 100).sum()) == 8 and int(b.max()) < 120 for b in batches)
    assert len({int(i) for b in batches for i in b if i >= 100}) == 20  # every plain scene is drawn
    none = batch_indices(full=100, plain=0, batch=32, plain_share=0.25, generator=generator)
    assert len(none) == 32 and int(none.max()) < 100


def test_scenes_rendered_on_several_cores_are_the_pixels_rendered_on_one() -> None:
    rng = random.Random(3)
    scenes = [sample_scene(rng, variety=0.06) for _ in range(30)]
    in_parts = render_pictures(scenes, 32, chunk=7)  # 5 parts: more than one worker on any machine
    one_by_one = torch.from_numpy(np.stack([np.asarray(scene.render(32)) for scene in scenes]))
    assert in_parts.shape == (30, 3, 32, 32)
    assert torch.equal(in_parts, one_by_one.permute(0, 3, 1, 2))


def test_subject_weights_raise_the_shapes_latent_cells_alone() -> None:
    left = Scene((Shape("square", "red", "large", "left"),), Background("solid", ("white",)))
    right = Scene((Shape("square", "red", "large", "right"),), Background("solid", ("white",)))
    weights = subject_weights([left, right], 16, 4.0)
    assert weights.shape == (2, 1, 16, 16)
    assert weights.min() == 1.0 and weights.max() == 5.0  # a cell wholly inside the square: 1 + 4
    assert weights[0, 0, :, :6].mean() > 2.0 and torch.all(weights[0, 0, :, 10:] == 1.0)
    assert torch.equal(weights[1].flip(-1), weights[0])  # the same square, mirrored
