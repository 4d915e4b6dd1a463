"""What a model's family cannot do is refused when the job is submitted: one line, nothing stored,
nothing queued (the worker would refuse it too, later and less clearly)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.jobs import JobService
from generation.config import ModelConfig
from generation.errors import DreamcordError
from generation.models.tiny import save_tiny_sdxl_model
from generation.pool.worker import WorkerSettings
from generation.pool.workers import PoolConfig, WorkerPool
from generation.specs import ImagineSpec, TrainSpec
from storage.files import FileStore
from storage.models import Job


def service_for(
    config: ModelConfig, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> JobService:
    """A job service for one model on a pool that is never started: what submit decides, alone."""
    worker = WorkerSettings(models={config.name: config}, device="cpu", log_level=logging.WARNING)
    pool = WorkerPool(PoolConfig(worker=worker, interactive_devices=("cpu",)))
    return JobService(sessions, pool, FileStore(tmp_path / "files"))


def train_spec(model: str) -> TrainSpec:
    return TrainSpec(model=model, token="my-dog", class_noun="dog", method="lora", images=("d" * 64,) * 4,
                     resolution=64, steps=10, learning_rate=1e-4)  # fmt: skip


@pytest.fixture
def xl_service(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> JobService:
    return service_for(
        ModelConfig(name="xl", source=str(save_tiny_sdxl_model(tmp_path / "xl"))), sessions, tmp_path
    )


async def test_an_operation_the_family_lacks_is_refused_at_submit(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from generation.models.family_facts import FAMILIES, FamilyFacts

    still = FamilyFacts("still", "Still", (), frozenset({"imagine", "upscale"}))  # a family with less
    monkeypatch.setitem(FAMILIES, "still", still)
    config = ModelConfig(name="xl", source=str(save_tiny_sdxl_model(tmp_path / "xl")), family="still")
    service = service_for(config, sessions, tmp_path)
    spec = train_spec("xl")
    with pytest.raises(DreamcordError, match=r"model 'xl' \(Still\) cannot do training personal tokens yet"):
        await service.submit(owner_id=1, spec=spec, channel_id=5)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0
    assert service.pool.handle_of(1) is None


async def test_training_on_an_offloaded_model_is_refused_at_submit(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    from generation.models.tiny import save_tiny_model

    config = ModelConfig(name="small-card", source=str(save_tiny_model(tmp_path / "sd")), offload="model")
    service = service_for(config, sessions, tmp_path)
    spec = train_spec("small-card")
    with pytest.raises(DreamcordError, match="runs with offload = 'model', which training does not support"):
        await service.submit(owner_id=1, spec=spec, channel_id=5)
    assert service.pool.handle_of(1) is None


async def test_what_the_family_supports_is_accepted(xl_service: JobService) -> None:
    spec = ImagineSpec(model="xl", prompt="a cat", seeds=(1,), width=64, height=64, steps=2, guidance=7.0)
    ticket = await xl_service.submit(owner_id=1, spec=spec, channel_id=5)
    assert xl_service.pool.handle_of(ticket.job_id) is not None
    await xl_service.close()


def test_buttons_for_what_the_family_lacks_are_left_out() -> None:
    from types import SimpleNamespace

    from cogs.imagine.views import result_view
    from generation.models.family_facts import SD1, FamilyFacts
    from storage.jobs import StoredImage

    spec = ImagineSpec(model="m", prompt="a cat", seeds=(1, 2), width=64, height=48, steps=2, guidance=7.0)
    job = SimpleNamespace(id=7, kind="imagine", spec_json=spec.to_json())
    grid = [StoredImage(i, i, "f" * 64, 64, 48) for i in range(2)]
    still = FamilyFacts("still", "still-picture", (), frozenset({"imagine", "upscale"}))

    def labels(family: FamilyFacts | None, images: list[StoredImage]) -> list[str]:
        view = result_view(job, images, family_of=lambda model: family)  # type: ignore[arg-type]
        assert view is not None
        return [item.item.label for item in view.children]  # type: ignore[attr-defined]

    assert labels(SD1, grid) == ["U1", "U2", "🔄", "V1", "V2", "Delete"]
    assert labels(still, grid) == ["U1", "U2", "🔄", "Delete"]  # no variations
    assert labels(SD1, grid[:1]).count("Make Square") == 1
    assert labels(still, grid[:1]) == ["Upscale 2x", "Upscale 4x", "Delete"]  # no vary, region, zoom, pan
    assert labels(None, grid[:1]) == labels(SD1, grid[:1])  # not known yet: every button


async def test_a_checkpoint_whose_family_cannot_be_read_is_left_to_the_worker(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text("{ this is not json")
    worker = WorkerSettings(
        models={"b": ModelConfig(name="b", source=str(broken))}, log_level=logging.WARNING
    )
    service = JobService(sessions, WorkerPool(PoolConfig(worker=worker)), FileStore(tmp_path / "files"))
    spec = ImagineSpec(model="b", prompt="a cat", seeds=(1,), width=64, height=64, steps=2, guidance=7.0)
    ticket = await service.submit(owner_id=1, spec=spec, channel_id=5)  # accepted: the worker says why
    assert service.pool.handle_of(ticket.job_id) is not None
    await service.close()


async def test_a_flux_model_refuses_a_negative_prompt_at_submit(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    from generation.models.tiny_flux import save_tiny_flux_model

    config = ModelConfig(name="flux", source=str(save_tiny_flux_model(tmp_path / "flux")))  # family read
    service = service_for(config, sessions, tmp_path)
    spec = ImagineSpec(model="flux", prompt="a cat", negative_prompt="blur", seeds=(1,), width=64, height=64,
                       steps=2, guidance=3.5)  # fmt: skip
    with pytest.raises(
        DreamcordError, match=r"model 'flux' \(Flux\) cannot do negative prompts \(--no\) yet"
    ):
        await service.submit(owner_id=1, spec=spec, channel_id=5)
    ticket = await service.submit(
        owner_id=1, spec=spec.model_copy(update={"negative_prompt": ""}), channel_id=5
    )
    assert service.pool.handle_of(ticket.job_id) is not None
    await service.close()
