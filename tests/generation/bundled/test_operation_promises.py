"""What the picture operations promise, on the bundled model (issue 22), measured by the same
functions bench/bench_bundled_operations.py prints (bench/operation_checks.py).

Slow: each check renders a few dozen pictures. Every bar here but --tile's and the frame marks' failed
on the first bundled model (its values are in bench/RESULTS.md; these tests ran as strict xfails until
the second model shipped), so each test can tell a model that keeps the promise from one that does
not. --tile's is kept by the code, not the model: since its decoding wraps the latent
(generation/operations/seamless.py) the first model kept it too. The frame marks' failed on the second
model until session 32's decoder (on the one before it and on a corner term alone).
"""

from __future__ import annotations

import os
import statistics

import pytest

from bench import operation_checks as checks
from generation.bundled import bundled_model_config, evaluator
from generation.bundled.dataset import Scene
from generation.models.loading import LoadedModel, load_model
from generation.specs import STRONG_STRENGTH, SUBTLE_STRENGTH

pytestmark = pytest.mark.slow
SCENES = 8


@pytest.fixture(scope="module")
def bundled() -> LoadedModel:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    return load_model(bundled_model_config(), device="cpu")


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return checks.one_shape_scenes(SCENES)


def test_vary_strength_orders_the_change_subtle_strong_full(
    bundled: LoadedModel, scenes: list[Scene]
) -> None:
    change = checks.vary_changes(bundled, scenes)
    subtle, strong, full = change[SUBTLE_STRENGTH], change[STRONG_STRENGTH], change[1.0]
    # Told apart, not merely ordered: the first model's 2.1 / 2.8 / 11.1 is ordered but not apart.
    assert 1.5 * subtle < strong and 2 * strong < full, change


def test_chaos_makes_a_grid_more_diverse(bundled: LoadedModel, scenes: list[Scene]) -> None:
    diversity = checks.chaos_diversity(bundled, scenes)
    assert diversity[0] < diversity[50] < diversity[100], diversity
    assert diversity[100] > 1.15 * diversity[0], diversity


def test_vary_region_leaves_no_band_along_its_edge(bundled: LoadedModel, scenes: list[Scene]) -> None:
    assert checks.region_seams(bundled, scenes) < 1.5


def test_make_square_leaves_no_band_along_the_kept_picture(bundled: LoadedModel, scenes: list[Scene]) -> None:
    assert checks.outpaint_seams(bundled, scenes)["square"] < 0.5


def test_tile_keeps_the_prompts_subject_and_joins_at_its_wrap(
    bundled: LoadedModel, scenes: list[Scene]
) -> None:
    verdicts = checks.tile_verdicts(bundled, evaluator.load(), scenes)
    assert verdicts.colour >= 0.75 and verdicts.shape >= 0.6, verdicts
    assert verdicts.seam < 2.0, verdicts  # the model's plain pictures: 3.9


def test_no_corner_or_edge_carries_a_mark_of_its_own(bundled: LoadedModel) -> None:
    # "No fixed artefacts". The VAE encoder pads only the right and bottom edges: until session 31's
    # decoder the bottom-right corner carried a 2-3 px colour fringe in every picture (its mark 26-28
    # against about 10 for the other three), and a corner term alone left a light line along the right
    # edge (6.1 against 2.9 on the left; session 32's decoder weighs the 8-px band along the edges too).
    # A padded side may add at most a little more than its opposite. Most of what was left was the
    # VAE's own (8-10 in every corner of its round trip); session 33's decoder decodes with a latent
    # cell of padding around the latents, and no corner adds more than a few levels.
    _assert_no_frame_marks(checks.frame_marks(bundled, count=8))


def test_the_readme_prompts_grid_carries_no_corner_or_edge_mark(bundled: LoadedModel) -> None:
    # The first picture a newcomer sees. frame_marks' averages over many prompts hide it: until
    # session 33's padded decoder it carried BR 26 against 7 and right 12 against 2 (session 32).
    _assert_no_frame_marks(checks.prompt_frame_marks(bundled, "a red circle on a blue background", range(4)))


def _assert_no_frame_marks(marks: dict[str, float]) -> None:
    assert max(marks[name] for name in ("TL", "TR", "BL", "BR")) < 5, marks  # the VAE's own were 7-14
    assert marks["BR"] < 1.5 * statistics.mean(marks[name] for name in ("TL", "TR", "BL")), marks
    assert marks["right"] < 2 + marks["left"] and marks["bottom"] < 2 + marks["top"], marks
