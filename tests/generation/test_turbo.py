"""`--turbo`: the model's few-step settings in the spec, its few-step LoRA for that job only, its
first-block caching on transformer models; refused on a model without a turbo mode."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from generation.bundled import bundled_model_config
from generation.config import ModelConfig, TurboConfig
from generation.errors import PromptError
from generation.models.loading import load_model
from generation.models.tiny_flux import save_tiny_flux_model
from generation.operations.imagine import run_imagine
from generation.pool.batching import batch_key
from generation.pool.runner import JobRunner
from generation.prompt import parse_prompt
from generation.specs import ImagineSpec, imagine_spec
from tests.conftest import pixels
from tests.generation.test_model_options import _random_lora


def test_turbo_puts_the_models_few_step_settings_in_the_spec() -> None:
    config = bundled_model_config()
    assert config.turbo is not None
    turbo = imagine_spec(parse_prompt("a red circle --turbo"), config, 64)
    assert (turbo.steps, turbo.scheduler, turbo.guidance, turbo.turbo) == (
        8,
        "dpmpp_2m",
        config.guidance,
        True,
    )
    typed = imagine_spec(parse_prompt("a red circle --turbo --steps 5 --cfg 3"), config, 64)
    assert (typed.steps, typed.guidance) == (5, 3.0)  # what the user types wins
    plain = imagine_spec(parse_prompt("a red circle --steps 8"), config, 64)
    assert batch_key(plain) != batch_key(turbo.model_copy(update={"scheduler": plain.scheduler}))


def test_turbo_is_refused_where_the_model_has_none(tiny_config: ModelConfig) -> None:
    assert tiny_config.turbo is None
    with pytest.raises(PromptError, match="has no turbo mode"):
        imagine_spec(parse_prompt("a cat --turbo"), tiny_config, 64)
    with pytest.raises(PromptError, match="--turbo takes no value"):
        parse_prompt("a cat --turbo 2")


def _job(prompt: str, config: ModelConfig) -> ImagineSpec:
    return imagine_spec(parse_prompt(f"{prompt} --seed 4"), config, 64, count=2)


def _pictures(runner: JobRunner, spec: ImagineSpec) -> np.ndarray:
    return np.stack([pixels(image.image()) for image in runner.run(spec).images])


def test_a_turbo_lora_applies_to_turbo_jobs_only(tiny_config: ModelConfig, tmp_path: Path) -> None:
    lora = _random_lora(tmp_path / "lcm", seed=3)
    with_lora = dataclasses.replace(tiny_config, turbo=TurboConfig(steps=2, lora=str(lora)))
    without = dataclasses.replace(tiny_config, turbo=TurboConfig(steps=2))
    runner = JobRunner({"tiny": with_lora}, device="cpu")
    plain_runner = JobRunner({"tiny": without}, device="cpu")
    turbo = _pictures(runner, _job("a red circle --turbo", with_lora))
    assert not np.array_equal(turbo, _pictures(plain_runner, _job("a red circle --turbo", without)))
    # The next job without --turbo renders without the LoRA, as a runner that never loaded it.
    assert np.array_equal(
        _pictures(runner, _job("a red circle", with_lora)),
        _pictures(plain_runner, _job("a red circle", without)),
    )


def test_first_block_caching_runs_for_turbo_jobs_only(tmp_path: Path) -> None:
    source = save_tiny_flux_model(tmp_path / "flux")
    config = ModelConfig(name="flux", source=str(source), steps=6, guidance=3.5, resolution=64,
                         turbo=TurboConfig(steps=6, first_block_cache=0.9))  # fmt: skip
    runner = JobRunner({"flux": config}, device="cpu")
    plain = _pictures(runner, _job("a red circle", config))
    cached = _pictures(runner, _job("a red circle --turbo", config))
    assert not np.array_equal(plain, cached)  # blocks were skipped at some steps
    assert np.array_equal(plain, _pictures(runner, _job("a red circle", config)))  # and the hook is gone
    model = load_model(config, device="cpu")
    assert np.array_equal(
        plain, np.stack([pixels(i) for i in run_imagine(model, _job("a red circle", config)).images])
    )
