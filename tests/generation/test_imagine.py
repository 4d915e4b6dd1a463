from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from generation.errors import JobCancelled, SpecError
from generation.models.loading import LoadedModel
from generation.models.schedulers import make_scheduler
from generation.operations.imagine import run_imagine
from generation.operations.seamless import seamless_tiling, wrapped_decoding
from generation.prompt import parse_prompt
from generation.specs import MAX_SEED, SCHEDULER_NAMES, AdapterRef, ImagineSpec, imagine_spec, seeds_from
from tests.conftest import assert_images_close, pixels


def _spec(
    model: LoadedModel, prompt: str = "a red circle on a blue background --seed 11", **kw: object
) -> ImagineSpec:
    return imagine_spec(parse_prompt(prompt), model.config, model.resolution, **kw)  # type: ignore[arg-type]


def test_spec_resolves_defaults_from_the_model(tiny_model: LoadedModel) -> None:
    spec = _spec(tiny_model, "a cat --ar 3:2 --seed 7")
    assert spec.seeds == (7, 8, 9, 10)
    assert (spec.width, spec.height) == (72, 48)
    assert (spec.steps, spec.guidance, spec.scheduler) == (4, 7.0, "euler_a")


def test_seeds_wrap_at_the_top_of_the_range() -> None:
    assert seeds_from(MAX_SEED - 1, 4) == (MAX_SEED - 1, MAX_SEED, 0, 1)


def test_random_seed_is_chosen_when_none_is_given(tiny_model: LoadedModel) -> None:
    firsts = {_spec(tiny_model, "a cat").seeds[0] for _ in range(5)}
    assert len(firsts) > 1


def test_same_spec_gives_the_same_pixels(tiny_model: LoadedModel) -> None:
    spec = _spec(tiny_model)
    first, second = run_imagine(tiny_model, spec), run_imagine(tiny_model, spec)
    assert len(first.images) == 4
    for a, b in zip(first.images, second.images, strict=True):
        assert np.array_equal(pixels(a), pixels(b))


def test_grid_image_reproduces_with_its_own_seed(tiny_model: LoadedModel) -> None:
    spec = _spec(tiny_model)
    grid = run_imagine(tiny_model, spec)
    for index in (0, 3):
        alone = run_imagine(tiny_model, spec.single(index))
        assert alone.spec.seeds == (11 + index,)
        assert_images_close(alone.images[0], grid.images[index])


def test_images_of_a_grid_differ(tiny_model: LoadedModel) -> None:
    images = run_imagine(tiny_model, _spec(tiny_model)).images
    assert not np.array_equal(pixels(images[0]), pixels(images[1]))


def test_matches_a_direct_diffusers_call_pixel_for_pixel(tiny_model: LoadedModel) -> None:
    spec = _spec(tiny_model, "a red circle --no green --seed 3 --ar 3:2 --steps 5 --cfg 6")
    ours = run_imagine(tiny_model, spec)
    pipeline = StableDiffusionPipeline(**tiny_model.pipeline.components)
    pipeline.scheduler = make_scheduler("euler_a", tiny_model.scheduler_config)
    direct = pipeline(
        prompt=spec.prompt,
        negative_prompt=spec.negative_prompt,
        num_images_per_prompt=4,
        width=spec.width,
        height=spec.height,
        num_inference_steps=spec.steps,
        guidance_scale=spec.guidance,
        generator=[torch.Generator("cpu").manual_seed(seed) for seed in spec.seeds],
    ).images
    for a, b in zip(ours.images, direct, strict=True):
        assert np.array_equal(pixels(a), pixels(b))


def test_grid_is_two_by_two_of_the_images(tiny_model: LoadedModel) -> None:
    result = run_imagine(tiny_model, _spec(tiny_model, "a cat --ar 3:2 --seed 1"))
    grid = result.grid()
    assert grid.size == (2 * 72, 2 * 48)
    assert np.array_equal(pixels(grid.crop((72, 48, 144, 96))), pixels(result.images[3]))


def test_negative_prompt_changes_the_result(tiny_model: LoadedModel) -> None:
    plain = run_imagine(tiny_model, _spec(tiny_model, "a red circle --seed 5"))
    negated = run_imagine(tiny_model, _spec(tiny_model, "a red circle --seed 5 --no blue square"))
    assert not np.array_equal(pixels(plain.images[0]), pixels(negated.images[0]))


def test_chaos_spreads_images_and_each_stays_reproducible_alone(tiny_model: LoadedModel) -> None:
    calm = run_imagine(tiny_model, _spec(tiny_model, "a red circle --seed 21"))
    wild_spec = _spec(tiny_model, "a red circle --seed 21 --chaos 100")
    wild = run_imagine(tiny_model, wild_spec)
    assert not np.array_equal(pixels(calm.images[1]), pixels(wild.images[1]))
    assert_images_close(run_imagine(tiny_model, wild_spec.single(1)).images[0], wild.images[1])


@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
def test_every_scheduler_renders(tiny_model: LoadedModel, scheduler: str) -> None:
    spec = _spec(tiny_model, "a cat --seed 1 --steps 2", count=1, scheduler=scheduler)
    result = run_imagine(tiny_model, spec)
    assert result.images[0].size == (64, 64)
    assert type(tiny_model.pipeline.scheduler).__name__.lower().startswith(scheduler.split("_")[0][:3])


def test_progress_is_reported_every_step(tiny_model: LoadedModel) -> None:
    steps: list[tuple[int, int]] = []
    run_imagine(
        tiny_model, _spec(tiny_model, "a cat --steps 3", count=1), on_step=lambda s, t: steps.append((s, t))
    )
    assert steps == [(1, 3), (2, 3), (3, 3)]


def test_cancel_stops_between_steps(tiny_model: LoadedModel) -> None:
    steps: list[int] = []
    with pytest.raises(JobCancelled):
        run_imagine(
            tiny_model,
            _spec(tiny_model, "a cat --steps 10", count=1),
            on_step=lambda s, t: steps.append(s),
            should_cancel=lambda: len(steps) >= 2,
        )
    assert steps == [1, 2]


def test_too_large_a_size_is_refused_before_running(tiny_model: LoadedModel) -> None:
    spec = _spec(tiny_model).model_copy(update={"width": 512, "height": 512})
    with pytest.raises(SpecError, match="too large"):
        run_imagine(tiny_model, spec)


def test_spec_for_another_model_is_refused(tiny_model: LoadedModel) -> None:
    with pytest.raises(SpecError, match="loaded"):
        run_imagine(tiny_model, _spec(tiny_model).model_copy(update={"model": "other"}))


def test_adapters_not_resolved_against_a_library_are_refused(tiny_model: LoadedModel) -> None:
    spec = _spec(tiny_model).model_copy(update={"adapters": (AdapterRef(name="my-dog"),)})
    with pytest.raises(SpecError, match="<my-dog>: personal tokens must be looked up"):
        run_imagine(tiny_model, spec)


def test_tiling_makes_the_unet_wrap_around(tiny_model: LoadedModel) -> None:
    """With circular padding the UNet commutes with rolling its input: the image has no edges."""
    unet = tiny_model.pipeline.unet
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, 8, 8, generator=generator)
    text = torch.randn(1, 77, 32, generator=generator)

    def predict(sample: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return unet(sample, 500, encoder_hidden_states=text).sample

    with seamless_tiling(unet):
        rolled_after = torch.roll(predict(latents), shifts=2, dims=3)
        rolled_before = predict(torch.roll(latents, shifts=2, dims=3))
    assert torch.allclose(rolled_after, rolled_before, atol=1e-4)
    plain_rolled_before = predict(torch.roll(latents, shifts=2, dims=3))
    assert not torch.allclose(rolled_after, plain_rolled_before, atol=1e-4)
    assert all(conv.padding_mode == "zeros" for conv in unet.modules() if isinstance(conv, torch.nn.Conv2d))


def _edge_and_inside_steps(picture: torch.Tensor) -> tuple[float, float]:
    """Mean step across the picture's wrap (last column to first, last row to first) and between
    neighbouring pixels inside it."""
    edge = (
        (picture[..., 0] - picture[..., -1]).abs().mean()
        + (picture[..., 0, :] - picture[..., -1, :]).abs().mean()
    ) / 2
    inside = (picture.diff(dim=-1).abs().mean() + picture.diff(dim=-2).abs().mean()) / 2
    return float(edge), float(inside)


def test_wrapped_decoding_draws_a_periodic_latent_as_a_picture_that_wraps(tiny_model: LoadedModel) -> None:
    """--tile's decode: the latent wrapped by a margin, the margin cut off, so the seam is inside what
    the decoder sees; its own convolutions keep their zero padding (decoders lean on it)."""
    vae = tiny_model.pipeline.vae
    side = 16  # 128 px: the tiny VAE's border effects reach past an 8-latent picture's middle
    angle = torch.arange(side) * 2 * math.pi / side
    generator = torch.Generator().manual_seed(0)
    latent = sum(
        torch.randn(1, 4, 1, 1, generator=generator)
        * torch.sin(kx * angle[None, :] + ky * angle[:, None] + phase)
        for kx, ky, phase in [(1, 0, 0.3), (0, 1, 1.1), (1, 1, 2.0)]
    )
    assert isinstance(latent, torch.Tensor)
    with torch.no_grad():
        plain = vae.decode(latent).sample
        with wrapped_decoding(vae):
            assert all(
                conv.padding_mode == "zeros" for conv in vae.modules() if isinstance(conv, torch.nn.Conv2d)
            )
            wrapped = vae.decode(latent, return_dict=False)[0]
    assert wrapped.shape == plain.shape == (1, 3, 8 * side, 8 * side)
    edge, inside = _edge_and_inside_steps(wrapped)
    assert edge < 1.2 * inside, (edge, inside)
    plain_edge, plain_inside = _edge_and_inside_steps(plain)
    assert plain_edge > 1.5 * plain_inside, (plain_edge, plain_inside)  # the measure can fail
    assert "decode" not in vars(vae)  # the class's decode is back


def test_tile_flag_changes_the_image(tiny_model: LoadedModel) -> None:
    plain = run_imagine(tiny_model, _spec(tiny_model, "a cat --seed 2", count=1))
    tiled = run_imagine(tiny_model, _spec(tiny_model, "a cat --seed 2 --tile", count=1))
    assert not np.array_equal(pixels(plain.images[0]), pixels(tiled.images[0]))


def test_prompt_encoding_records_no_autograd_graph(tiny_model: LoadedModel) -> None:
    from generation.operations.imagine import encode_prompts

    for prompt in ("a cat --chaos 50", "a (cat:1.3)::2 dog --chaos 50"):  # the pipeline's encoder; compel
        embeddings, _ = encode_prompts(tiny_model, tiny_model.pipeline, _spec(tiny_model, prompt))
        assert set(embeddings) == {"prompt_embeds", "negative_prompt_embeds"}
        assert not any(tensor.requires_grad for tensor in embeddings.values())


def test_the_safety_checker_flags_without_blacking_out(tmp_path: Path) -> None:
    """The checkpoint's checker runs after the pipeline: flags are reported, pixels kept (an
    age-restricted channel may show them; elsewhere the bot shows a notice instead)."""
    from generation.config import ModelConfig
    from generation.models.loading import load_model
    from generation.models.tiny import save_tiny_model

    spec = ImagineSpec(model="tiny", prompt="a cat", seeds=(1, 2), width=64, height=64, steps=2, guidance=7.0)
    verdicts = {}
    for verdict in ("flag-all", "flag-none"):
        folder = save_tiny_model(tmp_path / verdict, safety=verdict)
        model = load_model(ModelConfig(name="tiny", source=str(folder), safety_checker=True), device="cpu")
        result = run_imagine(model, spec)
        assert all(np.asarray(image).std() > 10 for image in result.images)
        verdicts[verdict] = result.nsfw
    assert verdicts == {"flag-all": [True, True], "flag-none": [False, False]}


def test_stop_runs_that_share_of_the_steps_and_decodes_what_is_there(tiny_model: LoadedModel) -> None:
    spec = imagine_spec(
        parse_prompt("a red circle --seed 8 --steps 10 --stop 40"), tiny_model.config, 64, count=1
    )
    assert spec.stop == 40
    reported: list[int] = []
    stopped = run_imagine(tiny_model, spec, on_step=lambda step, total, note=None: reported.append(step))
    assert reported == [1, 2, 3, 4]  # 40 % of 10 steps, then decoded
    finished = run_imagine(tiny_model, spec.model_copy(update={"stop": 100}))
    assert not np.allclose(pixels(stopped.images[0]), pixels(finished.images[0]), atol=2)
    assert_images_close(run_imagine(tiny_model, spec).images[0], stopped.images[0])  # the same again
