"""Nothing heavy on the bot's event loop: a hostile LoRA header, a 40 MP upload and a 4096² result
going out each stall the loop far less than doing the same work on it (bench/bench_loop_lag.py
measures the figures; here the bound is loose, for a loaded machine)."""

from __future__ import annotations

import io
import json
import random
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord
import pytest
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.delivery import DiscordResults
from bot.jobs import JobService, StoredImage
from bot.library import LibraryService
from bot.loop_lag import LoopLagProbe
from cogs.pictures import uploaded_picture
from generation.config import ModelConfig
from generation.models.adapter_files import MAX_HEADER_BYTES, AdapterFileError
from generation.pool.worker import WorkerSettings
from generation.pool.workers import PoolConfig, WorkerPool
from storage.files import FileStore

LOOSE_BOUND_S = 0.5  # the bench measures < 0.1 s; a busy CI machine may wake the probe late anyway


def hostile_header_file() -> bytes:
    """A header just under the size bound, made of many small JSON objects: slow to parse."""
    entry = json.dumps({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})
    count = (MAX_HEADER_BYTES - 1000) // len(f'"lora_A.{10**6}": {entry}, ')
    raw = ("{" + ", ".join(f'"lora_A.{i}": {entry}' for i in range(count)) + "}").encode()
    assert len(raw) <= MAX_HEADER_BYTES
    return struct.pack("<Q", len(raw)) + raw + b"\0" * 4


def smooth_jpeg(width: int, height: int) -> bytes:
    """A large photo-like JPEG: small to upload, as costly to decode as any of its size."""
    picture = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def noise_png(width: int, height: int) -> bytes:
    """A result that does not compress: far over Discord's upload limit as PNG."""
    picture = Image.frombytes("RGB", (width, height), random.Random(0).randbytes(width * height * 3))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


@pytest.fixture
def jobs(sessions: async_sessionmaker[AsyncSession], tiny_config: ModelConfig, tmp_path: Path) -> JobService:
    worker = WorkerSettings(models={"tiny": tiny_config}, device="cpu")
    pool = WorkerPool(PoolConfig(worker=worker, interactive_devices=("cpu",)))  # never started
    return JobService(sessions, pool, FileStore(tmp_path / "files"))


async def test_a_hostile_lora_header_is_parsed_off_the_loop(jobs: JobService) -> None:
    library = LibraryService(jobs.sessions, jobs.files, jobs)
    data = hostile_header_file()
    async with LoopLagProbe() as probe:
        with pytest.raises(AdapterFileError, match="at most 10,000"):
            await library.import_spec("big", "big.safetensors", data, model="tiny")
    assert probe.samples > 0 and probe.worst_s < LOOSE_BOUND_S, probe.worst_s


async def test_a_40_megapixel_upload_is_decoded_off_the_loop(
    jobs: JobService, tiny_config: ModelConfig
) -> None:
    data = smooth_jpeg(8000, 5000)

    async def read() -> bytes:
        return data

    async def no_defaults(*_: object) -> None:
        return None

    upload = SimpleNamespace(size=len(data), filename="huge.jpg", read=read)
    services = SimpleNamespace(
        jobs=jobs,
        admin=SimpleNamespace(prompt_defaults=no_defaults),
        settings=SimpleNamespace(model=lambda name: tiny_config, model_for=lambda parsed: tiny_config),
    )
    interaction = SimpleNamespace(user=SimpleNamespace(id=1), guild_id=None)
    async with LoopLagProbe() as probe:
        picture = await uploaded_picture(SimpleNamespace(services=services), upload, "a fox", interaction)  # type: ignore[arg-type]
    assert picture.size == (8000, 5000)
    assert probe.worst_s < LOOSE_BOUND_S, probe.worst_s


class _Channel(discord.abc.Messageable):
    def __init__(self) -> None:
        self.guild = SimpleNamespace(filesize_limit=10 * 2**20)
        self.sent: list[discord.File] = []

    async def _get_channel(self) -> Any:
        return self

    async def send(self, content: str, **fields: Any) -> Any:  # type: ignore[override]
        self.sent.append(fields["file"])
        return SimpleNamespace(id=99)


async def test_a_4096_pixel_result_is_shrunk_to_the_upload_limit_off_the_loop(jobs: JobService) -> None:
    png = noise_png(4096, 4096)
    digest = jobs.files.put(png)
    channel = _Channel()
    client = SimpleNamespace(get_channel=lambda _: channel)
    results = DiscordResults(client, jobs.files, caption=lambda job: "done")  # type: ignore[arg-type]
    job = SimpleNamespace(id=5, kind="imagine", channel_id=7, owner_id=1)
    async with LoopLagProbe() as probe:
        posted = await results.post(job, [StoredImage(0, 1, digest, 4096, 4096)], None)  # type: ignore[arg-type]
    assert posted == 99 and len(png) > 10 * 2**20
    assert channel.sent[0].filename == "dreamcord_5.jpg"
    assert probe.worst_s < LOOSE_BOUND_S, probe.worst_s
