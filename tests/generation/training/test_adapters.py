"""Using personal tokens: loaded once, switched without reloading the base model, exact when off."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from generation.errors import SpecError
from generation.models.adapters import AdapterCache, embedding_token, expand_tokens
from generation.models.loading import LoadedModel
from generation.operations.imagine import run_imagine
from generation.specs import AdapterRef, ImagineSpec
from generation.training.loop import train_adapter
from tests.generation.training.conftest import make_spec


@pytest.fixture(scope="module")
def files(
    tiny_model: LoadedModel, photos: list[Image.Image], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, bytes]:
    """Two LoRAs and two embeddings (different seeds, so different files), by sha256."""
    work = tmp_path_factory.mktemp("train")
    blobs = []
    for method in ("lora", "embedding"):
        for seed in (1, 2):
            spec = make_spec(photos, method, seed=seed, steps=3)
            blobs.append(
                train_adapter(
                    tiny_model, spec, photos, checkpoint_path=work / f"{method}{seed}", class_cache=work
                ).safetensors
            )
    return {hashlib.sha256(blob).hexdigest(): blob for blob in blobs}


def refs(files: dict[str, bytes]) -> list[AdapterRef]:
    kinds = ["lora", "lora", "embedding", "embedding"]
    return [
        AdapterRef(name=f"tok{i}", kind=kind, file=digest, trigger="sks shape" if kind == "lora" else "")
        for i, (digest, kind) in enumerate(zip(files, kinds, strict=True))
    ]


def spec_with(*adapters: AdapterRef, prompt: str = "a shape") -> ImagineSpec:
    return ImagineSpec(
        model="tiny", prompt=prompt, seeds=(5,), width=64, height=64, steps=2, guidance=7.0, adapters=adapters
    )


def pixels(model: LoadedModel, cache: AdapterCache, spec: ImagineSpec) -> np.ndarray:
    cache.activate(model.pipeline, spec.adapters)
    return np.asarray(run_imagine(model, spec).images[0], dtype=np.int16)


@pytest.fixture
def cache(tiny_model: LoadedModel, files: dict[str, bytes]) -> AdapterCache:
    cache = AdapterCache(files.__getitem__)
    yield cache
    cache.reset()


def test_tokens_expand_to_trigger_words_or_the_files_own_token(files: dict[str, bytes]) -> None:
    lora, _, embedding, _ = refs(files)
    text = expand_tokens("a <tok0> next to <tok2>", (lora, embedding))
    assert text == f"a sks shape next to {embedding_token(embedding.file or '')}"
    with pytest.raises(SpecError, match="<tok9>"):
        expand_tokens("a <tok9>", (lora,))


def test_lora_changes_the_image_and_weight_zero_or_no_lora_gives_the_base_image(
    tiny_model: LoadedModel, cache: AdapterCache, files: dict[str, bytes]
) -> None:
    lora = refs(files)[0]
    base = pixels(tiny_model, cache, spec_with(prompt="a sks shape"))
    with_lora = pixels(tiny_model, cache, spec_with(lora, prompt="a <tok0>"))
    weight_zero = pixels(
        tiny_model, cache, spec_with(lora.model_copy(update={"weight": 0.0}), prompt="a <tok0>")
    )
    after = pixels(tiny_model, cache, spec_with(prompt="a sks shape"))
    assert np.abs(with_lora - base).max() > 0
    np.testing.assert_array_equal(weight_zero, base)
    np.testing.assert_array_equal(after, base)


def test_switching_between_loras_keeps_them_loaded_and_the_base_model_in_place(
    tiny_model: LoadedModel, cache: AdapterCache, files: dict[str, bytes]
) -> None:
    first, second = refs(files)[:2]
    unet = tiny_model.pipeline.unet
    a = pixels(tiny_model, cache, spec_with(first, prompt="a <tok0>"))
    b = pixels(tiny_model, cache, spec_with(second, prompt="a <tok1>"))
    a_again = pixels(tiny_model, cache, spec_with(first, prompt="a <tok0>"))
    assert tiny_model.pipeline.unet is unet
    assert cache.loaded[0] == [second.file, first.file]  # both stay loaded, most recent last
    assert np.abs(a - b).max() > 0
    np.testing.assert_array_equal(a, a_again)


def test_two_users_embeddings_of_the_same_name_do_not_collide(
    tiny_model: LoadedModel, cache: AdapterCache, files: dict[str, bytes]
) -> None:
    _, _, mine, theirs = refs(files)
    theirs = theirs.model_copy(update={"name": mine.name})  # both users call theirs <tok2>
    a = pixels(tiny_model, cache, spec_with(mine, prompt="a <tok2>"))
    b = pixels(tiny_model, cache, spec_with(theirs, prompt="a <tok2>"))
    assert np.abs(a - b).max() > 0
    np.testing.assert_array_equal(a, pixels(tiny_model, cache, spec_with(mine, prompt="a <tok2>")))


def test_embedding_weight_zero_differs_from_full_weight_and_one_restores_it(
    tiny_model: LoadedModel, cache: AdapterCache, files: dict[str, bytes]
) -> None:
    embedding = refs(files)[2]
    full = pixels(tiny_model, cache, spec_with(embedding, prompt="a <tok2>"))
    half = pixels(
        tiny_model, cache, spec_with(embedding.model_copy(update={"weight": 0.3}), prompt="a <tok2>")
    )
    again = pixels(tiny_model, cache, spec_with(embedding, prompt="a <tok2>"))
    assert np.abs(full - half).max() > 0
    np.testing.assert_array_equal(full, again)


def test_loras_and_embeddings_combine_in_one_prompt(
    tiny_model: LoadedModel, cache: AdapterCache, files: dict[str, bytes]
) -> None:
    lora, _, embedding, _ = refs(files)
    both = pixels(tiny_model, cache, spec_with(lora, embedding, prompt="a <tok0> and a <tok2>"))
    only_lora = pixels(tiny_model, cache, spec_with(lora, prompt="a <tok0> and a shape"))
    assert np.abs(both - only_lora).max() > 0


def test_least_recently_used_lora_is_evicted_beyond_capacity(
    tiny_model: LoadedModel, files: dict[str, bytes]
) -> None:
    cache = AdapterCache(files.__getitem__, capacity=1)
    first, second = refs(files)[:2]
    pixels(tiny_model, cache, spec_with(first, prompt="a <tok0>"))
    pixels(tiny_model, cache, spec_with(second, prompt="a <tok1>"))
    assert cache.loaded[0] == [second.file]
    assert len(tiny_model.pipeline.get_list_adapters().get("unet", [])) == 1
    cache.reset()


def test_a_file_that_is_not_an_adapter_is_a_clear_error(tiny_model: LoadedModel) -> None:
    from safetensors.torch import save

    junk = save({"unet.nonsense.lora_A.weight": torch.zeros(2, 2)})
    digest = hashlib.sha256(junk).hexdigest()
    cache = AdapterCache({digest: junk}.__getitem__)
    ref = AdapterRef(name="junk", kind="embedding", file=digest)
    with pytest.raises(SpecError, match="<junk> does not fit"):
        cache.activate(tiny_model.pipeline, (ref,))
    cache.reset()
