"""The bar of the personal-token issue, on the bundled model: a token trained on 5 photos of a teal
hexagon (a colour and a shape the model never drew) pulls images toward those photos, for both methods.

Slow (a real training per method: about 1 and 2.5 minutes on 2 CPU cores); bench/bench_training.py
prints the same numbers with more images.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from generation.bundled import bundled_model_config
from generation.bundled.novel import hexagon_photos, palette_distance
from generation.models.adapters import AdapterCache
from generation.models.loading import LoadedModel, load_model
from generation.operations.imagine import run_imagine
from generation.outputs import encode_png
from generation.prompt import parse_prompt
from generation.specs import AdapterRef, imagine_spec
from generation.training.defaults import train_spec
from generation.training.loop import train_adapter

pytestmark = pytest.mark.slow
PROMPTS = ("a {}", "a large {}", "a {} on a white background", "a small {} at the top")


@pytest.fixture(scope="module")
def bundled() -> LoadedModel:
    return load_model(bundled_model_config(), device="cpu")


def render(model: LoadedModel, cache: AdapterCache, word: str, refs: tuple[AdapterRef, ...]) -> list:
    images = []
    for prompt in PROMPTS:
        spec = imagine_spec(
            parse_prompt(f"{prompt.format(word)} --seed 100"), model.config, model.resolution, count=2
        )
        spec = spec.model_copy(update={"adapters": refs})
        cache.activate(model.pipeline, spec.adapters)
        images += run_imagine(model, spec).images
    return images


@pytest.mark.parametrize(("method", "required_gain"), [("lora", 0.3), ("embedding", 0.05)])
def test_a_trained_token_moves_images_toward_its_photos(
    method: str, required_gain: float, bundled: LoadedModel, tmp_path: Path
) -> None:
    # As /train prepares them: square photos at the model's own resolution.
    photos = hexagon_photos(5, size=bundled.resolution, seed=1)
    hashes = tuple(hashlib.sha256(encode_png(p)).hexdigest() for p in photos)
    spec = train_spec(
        bundled.config, bundled.resolution, token="hexy", class_noun="shape", method=method, images=hashes,
        seed=0,
    )  # type: ignore[arg-type]  # fmt: skip
    trained = train_adapter(
        bundled,
        spec.model_copy(update={"samples": 0}),
        photos,
        checkpoint_path=tmp_path / "c.st",
        class_cache=tmp_path / "classes",
    )
    digest = hashlib.sha256(trained.safetensors).hexdigest()
    cache = AdapterCache({digest: trained.safetensors}.__getitem__)
    ref = AdapterRef(name="hexy", kind=method, file=digest, trigger=trained.trigger)  # type: ignore[arg-type]

    without = palette_distance(render(bundled, cache, "shape", ()), photos)
    with_token = palette_distance(render(bundled, cache, "<hexy>", (ref,)), photos)
    cache.reset()
    # Palette distance: mean RGB distance of each pixel to the photos' main colours (lower = closer).
    assert with_token < (1 - required_gain) * without, (
        f"{method}: {with_token:.1f} vs {without:.1f} without the token"
    )
