"""The two-shape layout measure (bench/layout_checks.py) reads the scenes' own ground truth right, so a
model's score is the model's, not the measure's."""

from __future__ import annotations

import dataclasses

import pytest

from bench.layout_checks import as_asked, blobs, two_shape_scenes
from generation.bundled.dataset import Scene


@pytest.mark.parametrize("side", [64, 128])
def test_every_ground_truth_two_shape_scene_reads_as_asked(side: int) -> None:
    scenes = two_shape_scenes(150)
    misread = [scene.caption() for scene in scenes if not as_asked(scene, blobs(scene.render(side)))]
    assert misread == []


def test_a_missing_or_misplaced_shape_is_not_as_asked() -> None:
    scene = next(scene for scene in two_shape_scenes(10) if scene.shapes[0].colour != scene.shapes[1].colour)
    first, second = scene.shapes
    alone = Scene(shapes=(first,), background=scene.background)
    swapped = Scene(
        shapes=(
            dataclasses.replace(first, position=second.position),
            dataclasses.replace(second, position=first.position),
        ),
        background=scene.background,
    )
    assert len(blobs(alone.render(128))) == 1
    assert not as_asked(scene, blobs(alone.render(128)))
    assert not as_asked(scene, blobs(swapped.render(128)))
    assert as_asked(swapped, blobs(swapped.render(128)))
