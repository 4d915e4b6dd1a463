"""Weighted and long prompts on every family: weights change the picture and only where written,
neutral syntax gives the pipeline's own pixels, a weight-0 part is as if absent, `::-0.5` is `--no`,
and words past the 75th token still count (diffusers alone cuts them)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from generation.config import ModelConfig
from generation.models.loading import LoadedModel, load_model
from generation.models.tiny import save_tiny_model, save_tiny_sdxl_model
from generation.models.tiny_flux import save_tiny_flux_model
from generation.operations.imagine import encode_prompts, run_imagine
from generation.specs import ImagineSpec
from tests.conftest import pixels

FILLER = "on a plain background, " * 20  # ~120 tokens: the end of the prompt is past CLIP's window
GUIDANCE = {"sd1": 7.0, "sdxl": 7.0, "flux": 3.5}


@pytest.fixture(scope="module", params=["sd1-clip-skip", "sdxl", "flux"])
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedModel]:
    folder = tmp_path_factory.mktemp("models") / request.param
    if request.param == "sdxl":
        config = ModelConfig(name="m", source=str(save_tiny_sdxl_model(folder)), steps=3, guidance=7.0)
    elif request.param == "flux":
        config = ModelConfig(
            name="m", source=str(save_tiny_flux_model(folder)), steps=3, guidance=3.5, resolution=64
        )
    else:  # clip skip 2: compel must read the same layer as the pipeline's own encoding does
        config = ModelConfig(
            name="m", source=str(save_tiny_model(folder)), steps=3, guidance=7.0, clip_skip=2
        )
    yield load_model(config, device="cpu")


def _run(model: LoadedModel, prompt: str, negative: str = "", seeds: tuple[int, ...] = (1, 2)) -> np.ndarray:
    spec = ImagineSpec(
        model=model.config.name, prompt=prompt, negative_prompt=negative, seeds=seeds, width=64, height=64,
        steps=3, guidance=GUIDANCE[model.family.name],
    )  # fmt: skip
    return np.stack([pixels(image) for image in run_imagine(model, spec).images])


def test_neutral_syntax_gives_the_pipelines_own_pixels(model: LoadedModel) -> None:
    """`(red:1)` goes through compel; it must encode exactly as the pipeline does."""
    assert np.array_equal(_run(model, "a red circle"), _run(model, "a (red:1) circle"))


def test_a_weight_changes_the_picture(model: LoadedModel) -> None:
    assert not np.array_equal(_run(model, "a red circle"), _run(model, "a (red:2) circle"))


def test_a_part_of_weight_zero_is_as_if_absent(model: LoadedModel) -> None:
    """Parts are blended by their shares: 1 and 0 leave the first part alone (pooled vectors too)."""
    assert np.array_equal(_run(model, "a red circle"), _run(model, "a red circle::1 a blue square::0"))
    assert not np.array_equal(_run(model, "a red circle"), _run(model, "a red circle::1 a blue square::1"))


def test_a_negative_part_is_the_no_flag(model: LoadedModel) -> None:
    assert np.array_equal(
        _run(model, "a red circle", negative="blue"), _run(model, "a red circle:: blue::-0.5")
    )


def test_words_past_one_window_still_count_where_the_family_reads_them(model: LoadedModel) -> None:
    red, blue = _run(model, f"a red circle {FILLER} red"), _run(model, f"a red circle {FILLER} blue")
    if model.family.name == "flux":  # T5 reads its own limit (64 tokens in the tiny model) and cuts
        assert np.array_equal(red, blue)
    else:
        assert not np.array_equal(red, blue)


def test_the_token_count_is_reported(model: LoadedModel) -> None:
    spec = ImagineSpec(
        model="m", prompt=f"a red circle {FILLER}", seeds=(1,), width=64, height=64, steps=1, guidance=7.0
    )
    _, tokens = encode_prompts(model, model.pipeline, spec)
    assert tokens.count > tokens.window
    assert tokens.chunked == (model.family.name != "flux")


def test_a_blend_is_the_weighted_mean_of_its_parts(bundled_model: LoadedModel) -> None:
    def embeds(prompt: str) -> torch.Tensor:
        spec = ImagineSpec(
            model=bundled_model.config.name,
            prompt=prompt,
            seeds=(1,),
            width=64,
            height=64,
            steps=1,
            guidance=7.0,
        )
        return encode_prompts(bundled_model, bundled_model.pipeline, spec)[0]["prompt_embeds"]

    blended = embeds("a red circle::3 a blue square::1")
    expected = 0.75 * embeds("a red circle") + 0.25 * embeds("a blue square")
    assert torch.allclose(blended, expected, atol=1e-5)


def test_weights_reach_a_multi_vector_embedding(tiny_model: LoadedModel) -> None:
    """An embedding's token inside a weighted prompt is expanded to all its vectors (three here)."""
    pipeline = tiny_model.pipeline
    token = "xyzzy"
    dim = pipeline.text_encoder.get_input_embeddings().weight.shape[1]
    pipeline.load_textual_inversion(
        torch.randn(3, dim, generator=torch.Generator().manual_seed(0)), token=token
    )
    try:
        assert np.array_equal(
            _run(tiny_model, f"a {token} circle"), _run(tiny_model, f"a ({token}:1) circle")
        )
        assert not np.array_equal(
            _run(tiny_model, f"a {token} circle"), _run(tiny_model, f"a ({token}:1.8) circle")
        )
    finally:
        pipeline.unload_textual_inversion(token)
