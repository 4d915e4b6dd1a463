from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import torch

from generation.config import ModelConfig
from generation.operations.imagine import run_imagine
from generation.pool import runner as runner_module
from generation.pool.job_runs import OUT_OF_MEMORY_REASON, run_one
from generation.pool.runner import JobRunner
from generation.prompt import parse_prompt
from generation.specs import imagine_spec
from tests.conftest import assert_images_close


@pytest.fixture(scope="module")
def runner(tiny_config: ModelConfig) -> JobRunner:
    return JobRunner({"tiny": tiny_config}, device="cpu")


def _spec(runner: JobRunner, prompt: str = "a red circle --seed 4"):  # type: ignore[no-untyped-def]
    model = runner.models.get("tiny")
    return imagine_spec(parse_prompt(prompt), model.config, model.resolution)


def test_runner_output_matches_a_direct_run(runner: JobRunner) -> None:
    spec = _spec(runner)
    output = runner.run(spec)
    direct = run_imagine(runner.models.get("tiny"), spec)
    assert [image.seed for image in output.images] == [4, 5, 6, 7]
    for ours, theirs in zip(output.images, direct.images, strict=True):
        assert np.array_equal(np.asarray(ours.image()), np.asarray(theirs))
    assert runner.warm_model == "tiny"


def test_a_job_reports_where_its_time_went_phase_by_phase(runner: JobRunner) -> None:
    """Each phase is timed once where it happens; the VAE decode is split from the denoising at
    the pipeline's last step callback; together they fit inside the call's own wall time."""
    started = time.perf_counter()
    output = runner.run(_spec(runner, "a red circle --seed 4 --steps 3"))
    wall = time.perf_counter() - started
    phases = dict(output.timings)
    assert list(phases) == [
        "model switch", "adapters", "text encoding", "denoising", "decode", "safety check", "picture encoding"
    ]  # fmt: skip
    assert all(seconds >= 0 for seconds in phases.values())
    assert phases["denoising"] > 0 and phases["decode"] > 0
    assert sum(phases.values()) <= wall
    assert output.tokens is not None and output.tokens.count == 3  # "a red circle"


def _oom_above(limit: int, real: Any) -> Any:
    def fake(model: Any, spec: Any, **kw: Any) -> Any:
        if len(spec.seeds) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, spec, **kw)

    return fake


def test_out_of_memory_retries_in_smaller_batches_with_the_same_images(
    runner: JobRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(runner)
    expected = runner.run(spec)
    monkeypatch.setattr(runner_module, "run_imagine", _oom_above(2, run_imagine))
    retried = runner.run(spec)
    assert retried.batch_retried and not expected.batch_retried
    assert [image.seed for image in retried.images] == [4, 5, 6, 7]
    for a, b in zip(retried.images, expected.images, strict=True):
        assert_images_close(a.image(), b.image())


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def send(self, message: tuple[Any, ...]) -> None:
        self.sent.append(message)


def test_a_second_out_of_memory_fails_the_job_clearly(
    runner: JobRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "run_imagine", _oom_above(0, run_imagine))
    connection = _Recorder()
    run_one(connection, runner, 5, _spec(runner).to_json(), lambda: False)  # type: ignore[arg-type]
    assert connection.sent == [("started", 5), ("failed", 5, OUT_OF_MEMORY_REASON)]


def test_a_user_error_becomes_a_failed_message_with_its_text(runner: JobRunner) -> None:
    connection = _Recorder()
    spec = _spec(runner).model_copy(update={"model": "missing"})
    run_one(connection, runner, 6, spec.to_json(), lambda: False)  # type: ignore[arg-type]
    assert connection.sent[-1][0] == "failed" and "unknown model 'missing'" in connection.sent[-1][2]


def test_a_job_cancelled_before_it_starts_never_runs(runner: JobRunner) -> None:
    connection = _Recorder()
    run_one(connection, runner, 7, _spec(runner).to_json(), lambda: True)  # type: ignore[arg-type]
    assert connection.sent == [("cancelled", 7)]


def test_a_paused_worker_waits_between_steps_until_resumed_or_cancelled() -> None:
    import threading
    import time

    from generation.pool.job_runs import between_steps

    running, cancelled = threading.Event(), set()
    check = between_steps(9, cancelled, running)  # paused: `running` is clear
    threading.Timer(0.3, running.set).start()
    started = time.monotonic()
    assert check() is False and time.monotonic() - started >= 0.25  # it waited for the resume
    running.clear()
    threading.Timer(0.3, lambda: cancelled.add(9)).start()
    assert check() is True  # a cancel ends the wait too
