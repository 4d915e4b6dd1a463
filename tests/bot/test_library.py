"""/library behind the commands: ownership on every write, visibility on every read, imports checked."""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load, save
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.jobs import Finished, JobService, TokenTaken, UnknownToken
from bot.library import LibraryError, LibraryService
from generation.bundled.novel import hexagon_photos
from generation.config import ModelConfig
from generation.errors import SpecError
from generation.models.adapter_files import AdapterFileError, inspect_adapter_file
from generation.models.loading import LoadedModel
from generation.pool.worker import WorkerSettings
from generation.pool.workers import Failed, PoolConfig, QueueFull, WorkerPool
from generation.training.loop import train_adapter
from storage import library
from storage.files import FileStore
from storage.models import Adapter, AdapterKind, Job, Visibility
from tests.generation.training.conftest import make_spec

pytestmark = pytest.mark.both_databases


@pytest.fixture(scope="module")
def lora_file(tiny_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    photos: list[Image.Image] = hexagon_photos(4, seed=2)
    work = tmp_path_factory.mktemp("lora")
    spec = make_spec(photos, "lora", steps=2)
    return train_adapter(tiny_model, spec, photos, checkpoint_path=work / "c", class_cache=work).safetensors


def to_kohya(diffusers_lora: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same LoRA under kohya/A1111 key names ("lora_unet_…_to_q.lora_down.weight" + alpha)."""
    out = {}
    for key, value in diffusers_lora.items():
        module, _, suffix = key.removeprefix("unet.").rpartition(".lora.")
        name = "lora_unet_" + module.replace(".", "_")
        direction = suffix.split(".")[0]
        out[f"{name}.lora_{direction}.weight"] = value
        out[f"{name}.alpha"] = torch.tensor(float(value.shape[0] if direction == "down" else value.shape[1]))
    return out


@pytest.fixture
async def services(
    request: pytest.FixtureRequest,
    sessions: async_sessionmaker[AsyncSession],
    tiny_config: ModelConfig,
    tmp_path: Path,
) -> tuple[LibraryService, JobService]:
    """The services on a real pool; its worker is started only for tests marked `needs_worker`."""
    worker = WorkerSettings(
        models={"tiny": tiny_config},
        data_dir=str(tmp_path),
        device="cpu",
        threads=2,
        log_level=logging.WARNING,
    )
    pool = WorkerPool(PoolConfig(worker=worker, interactive_devices=("cpu",)))
    if request.node.get_closest_marker("needs_worker"):
        await pool.start()
    files = FileStore(tmp_path / "files")
    jobs = JobService(sessions, pool, files)
    yield LibraryService(sessions, files, jobs), jobs
    await jobs.close()
    await pool.close()


async def add(
    sessions: async_sessionmaker[AsyncSession], owner: int, name: str, digest: str = "a" * 64
) -> None:
    async with sessions.begin() as session:
        await library.add_adapter(
            session, owner_id=owner, kind=AdapterKind.LORA, name=name, base_model="tiny", file_hash=digest
        )


# ---------------------------------------------------------------- file checks (no worker needed)
def test_pickles_are_refused_by_name_and_by_content() -> None:
    with pytest.raises(AdapterFileError, match="pickle file, which can run code"):
        inspect_adapter_file(b"whatever", "style.ckpt")
    with pytest.raises(AdapterFileError, match="pickle file"):
        inspect_adapter_file(pickle.dumps({"a": 1}), "innocent.safetensors")


def test_non_safetensors_and_truncated_files_are_refused(lora_file: bytes) -> None:
    with pytest.raises(AdapterFileError, match="not a safetensors file"):
        inspect_adapter_file(b"hello world, this is text", "x.safetensors")
    with pytest.raises(AdapterFileError, match="cut off"):
        inspect_adapter_file(lora_file[:-100], "x.safetensors")


def test_kinds_are_told_apart_from_the_header(lora_file: bytes) -> None:
    assert inspect_adapter_file(lora_file).kind == "lora"
    assert inspect_adapter_file(lora_file).trigger == "sks shape"
    assert inspect_adapter_file(save(to_kohya(load(lora_file)))).kind == "lora"
    assert inspect_adapter_file(save({"<cat>": torch.zeros(2, 32)})).kind == "embedding"
    assert inspect_adapter_file(save({"emb_params": torch.zeros(1, 32)})).kind == "embedding"
    with pytest.raises(AdapterFileError, match="neither a LoRA nor"):
        inspect_adapter_file(save({"a": torch.zeros(2), "b": torch.zeros(2)}))


# ---------------------------------------------------------------- imports (a worker loads them)
@pytest.mark.needs_worker
@pytest.mark.parametrize("form", ["diffusers", "kohya"])
async def test_a_lora_imports_into_the_owners_library(
    form: str,
    services: tuple[LibraryService, JobService],
    lora_file: bytes,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    service, _ = services
    # kohya's trainer records its captions' tags per folder: shown most used first.
    tag_frequency = json.dumps(
        {"10_hexy": {"hexy": 12, "blue shape": 3}, "5_more": {"outline": 4, "hexy": 5}}
    )
    data = (
        lora_file
        if form == "diffusers"
        else save(to_kohya(load(lora_file)), {"ss_tag_frequency": tag_frequency})
    )
    ticket = await service.import_file(5, "imported", "style.safetensors", data, model="tiny")
    assert isinstance(await asyncio.wait_for(ticket.wait(), 60), Finished)
    entry = await service.show(5, "imported", None)
    assert (entry.kind, entry.base_model, entry.visibility, entry.mine) == ("lora", "tiny", "private", True)
    assert entry.trigger_words == ("sks shape" if form == "diffusers" else "")
    assert entry.tags == ("" if form == "diffusers" else "hexy, outline, blue shape")


@pytest.mark.needs_worker
async def test_an_embedding_of_the_wrong_size_fails_clearly_and_adds_nothing(
    services: tuple[LibraryService, JobService], sessions: async_sessionmaker[AsyncSession]
) -> None:
    service, _ = services
    wrong = save({"<cat>": torch.zeros(1, 768)})  # an SD 1.5 embedding; the tiny model's width is 32
    ticket = await service.import_file(5, "cat", "cat.safetensors", wrong, model="tiny")
    final = await asyncio.wait_for(ticket.wait(), 60)
    assert isinstance(final, Failed) and "<cat> does not fit" in final.reason
    assert await service.entries(5, None) == []


def _stored(service: LibraryService) -> list[str]:
    return sorted(path.name for path in service.files.root.glob("??/*"))


@pytest.mark.needs_worker
@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("nan", "holds NaN or infinite values"),
        ("inf", "holds NaN or infinite values"),
        ("wrong shapes", "layer(s) have other shapes"),
        ("no matching layer", "matches no layer"),  # peft refuses it, or it loads as nothing
    ],
)
async def test_a_lora_the_worker_refuses_says_why_and_leaves_no_file(
    damage: str, reason: str, services: tuple[LibraryService, JobService], lora_file: bytes
) -> None:
    service, _ = services
    tensors = load(lora_file)
    first = next(iter(tensors))
    if damage in ("nan", "inf"):
        tensors[first] = tensors[first].clone()
        tensors[first][0, 0] = float(damage)
    elif damage == "wrong shapes":
        tensors = {name: torch.zeros(t.shape[0] + 3, *t.shape[1:]) for name, t in tensors.items()}
    else:
        tensors = {name.replace("unet.", "unet.no_such_block."): t for name, t in tensors.items()}
    ticket = await service.import_file(5, "broken", "broken.safetensors", save(tensors), model="tiny")
    final = await asyncio.wait_for(ticket.wait(), 60)
    assert isinstance(final, Failed) and reason in final.reason, final
    assert "\n" not in final.reason and len(final.reason) < 300
    assert await service.entries(5, None) == []
    assert _stored(service) == []  # refused: its file went with it


async def test_imports_refused_before_queueing_leave_no_file(
    services: tuple[LibraryService, JobService], lora_file: bytes
) -> None:
    service, jobs = services
    with pytest.raises(SpecError, match=r"trigger: .*\(got 'xxxxx.*…'\)$") as caught:
        await service.import_file(5, "long", "a.safetensors", lora_file, model="tiny", trigger="x" * 90_000)
    assert len(str(caught.value)) < 200  # quotes a short excerpt, not the 90,000 characters
    await add(service.sessions, owner=5, name="taken")
    with pytest.raises(TokenTaken):
        await service.import_file(5, "taken", "a.safetensors", lora_file, model="tiny")
    jobs.pool.config = replace(jobs.pool.config, max_queued_per_user=0)
    with pytest.raises(QueueFull):
        await service.import_file(5, "queued", "a.safetensors", lora_file, model="tiny")
    assert _stored(service) == []


async def test_a_pickle_import_queues_nothing(
    services: tuple[LibraryService, JobService], sessions: async_sessionmaker[AsyncSession]
) -> None:
    service, _ = services
    with pytest.raises(AdapterFileError):
        await service.import_file(5, "evil", "evil.pt", pickle.dumps([1]), model="tiny")
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0


# ---------------------------------------------------------------- ownership and visibility
async def test_another_users_private_token_cannot_be_seen_renamed_deleted_or_shared(
    services: tuple[LibraryService, JobService], sessions: async_sessionmaker[AsyncSession]
) -> None:
    service, _ = services
    await add(sessions, owner=1, name="secret")
    assert await service.entries(2, 77) == []
    with pytest.raises(UnknownToken):
        await service.show(2, "secret", 77)
    with pytest.raises(UnknownToken, match="you have no token <secret>"):
        await service.rename(2, "secret", "mine-now")
    with pytest.raises(UnknownToken):
        await service.delete(2, "secret")
    with pytest.raises(UnknownToken):
        await service.share(2, "secret", Visibility.PUBLIC, 77)
    assert [entry.name for entry in await service.entries(1, None)] == ["secret"]


async def test_shared_token_is_visible_to_the_guild_but_stays_the_owners(
    services: tuple[LibraryService, JobService], sessions: async_sessionmaker[AsyncSession]
) -> None:
    service, _ = services
    await add(sessions, owner=1, name="style")
    await service.share(1, "style", Visibility.GUILD, 77)
    seen = await service.entries(2, 77)
    assert [(e.name, e.mine, e.owner_id) for e in seen] == [("style", False, 1)]
    assert await service.entries(2, 78) == []
    with pytest.raises(UnknownToken):
        await service.delete(2, "style")
    await service.share(1, "style", Visibility.PRIVATE, 77)
    assert await service.entries(2, 77) == []


async def test_rename_checks_the_name_and_clashes(
    services: tuple[LibraryService, JobService], sessions: async_sessionmaker[AsyncSession]
) -> None:
    service, _ = services
    await add(sessions, owner=1, name="one")
    await add(sessions, owner=1, name="two", digest="b" * 64)
    with pytest.raises(TokenTaken, match="you already have <two>"):
        await service.rename(1, "one", "two")
    with pytest.raises(LibraryError, match="cannot be a token name"):
        await service.rename(1, "one", "has space")
    assert (await service.rename(1, "one", "three")).name == "three"
    assert sorted(e.name for e in await service.entries(1, None)) == ["three", "two"]


async def test_delete_removes_the_file_once_nothing_uses_it(
    services: tuple[LibraryService, JobService], sessions: async_sessionmaker[AsyncSession]
) -> None:
    service, jobs = services
    (digest,) = await jobs.store_files([b"adapter bytes"])
    await add(sessions, owner=1, name="mine", digest=digest)
    await add(sessions, owner=2, name="same-file", digest=digest)  # e.g. both imported one download
    await service.delete(1, "mine")
    assert jobs.files.exists(digest)
    await service.delete(2, "same-file")
    assert not jobs.files.exists(digest)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Adapter)) == 0


async def test_sharing_with_a_server_needs_a_server(
    services: tuple[LibraryService, JobService], sessions: async_sessionmaker[AsyncSession]
) -> None:
    service, _ = services
    await add(sessions, owner=1, name="style")
    with pytest.raises(LibraryError, match="only from inside that server"):
        await service.share(1, "style", Visibility.GUILD, None)
