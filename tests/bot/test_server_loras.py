"""The server's LoRA folders: each .safetensors in a model's `lora_folder` is `<file name>` for
everyone, checked like an upload; the library follows the folder (added, changed, removed files)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.server_loras import sync_server_folders, token_name
from generation.config import ModelConfig
from storage import library
from storage.files import FileStore
from storage.library import SERVER_OWNER_ID
from storage.models import AdapterKind, Visibility

pytestmark = pytest.mark.both_databases


def _lora(value: float) -> bytes:
    key = "lora_unet_down_blocks_0_attentions_0_proj_in"
    return save({f"{key}.lora_down.weight": torch.full((4, 32), value), f"{key}.lora_up.weight": torch.zeros(32, 4)},
                {"ss_tag_frequency": '{"1_ink": {"ink wash": 9, "monochrome": 4}}'})  # fmt: skip


def test_file_names_become_token_names() -> None:
    assert token_name("Ink Wash (v2)") == "ink-wash-v2"
    assert token_name("sdxl_lightning_4step") == "sdxl_lightning_4step"
    assert token_name("x" * 40) == "x" * 32


async def test_a_folder_becomes_public_library_entries_that_follow_it(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    folder = tmp_path / "loras"
    folder.mkdir()
    (folder / "Ink Style.safetensors").write_bytes(_lora(0.1))
    (folder / "hexy.safetensors").write_bytes(save({"<hexy>": torch.zeros(2, 32)}))
    (folder / "evil.ckpt").write_bytes(pickle.dumps({"x": 1}))
    (folder / "x.safetensors").write_bytes(_lora(0.2))  # too short a name
    (folder / "notes.txt").write_text("ignored")
    files = FileStore(tmp_path / "files")
    models = {"tiny": ModelConfig(name="tiny", source="a/b", lora_folder=str(folder))}

    report = await sync_server_folders(sessions, files, models)
    assert sorted(report.added) == ["hexy", "ink-style"]
    assert any(line.startswith("evil.ckpt: ") and "pickle" in line for line in report.refused)
    assert any(
        line.startswith("x.safetensors: ") and "cannot be a token name" in line for line in report.refused
    )
    async with sessions() as session:
        ink = await library.usable_adapter(session, 5, "ink-style", 77)  # anyone, in any server
        assert ink is not None and ink.owner_id == SERVER_OWNER_ID and ink.visibility == Visibility.PUBLIC
        assert (ink.kind, ink.base_model, ink.tags) == (AdapterKind.LORA, "tiny", "ink wash, monochrome")
        assert files.read(ink.file_hash) == _lora(0.1)
        hexy = await library.usable_adapter(session, 5, "hexy", None)
        assert hexy is not None and hexy.kind == AdapterKind.EMBEDDING
    async with sessions.begin() as session:  # a user's own token of that name wins for that user
        await library.add_adapter(session, owner_id=6, kind=AdapterKind.LORA, name="ink-style", base_model="tiny",
                                  file_hash="c" * 64)  # fmt: skip
    async with sessions() as session:
        mine = await library.usable_adapter(session, 6, "ink-style", None)
        assert mine is not None and mine.owner_id == 6

    assert (await sync_server_folders(sessions, files, models)).kept == ["hexy", "ink-style"]
    (folder / "hexy.safetensors").unlink()
    (folder / "Ink Style.safetensors").write_bytes(_lora(0.3))
    report = await sync_server_folders(sessions, files, models)
    assert (report.removed, report.updated, report.added) == (["hexy"], ["ink-style"], [])
    async with sessions() as session:
        assert await library.usable_adapter(session, 5, "hexy", None) is None
        ink = await library.usable_adapter(session, 5, "ink-style", None)
        assert ink is not None and files.read(ink.file_hash) == _lora(0.3)


async def test_a_missing_folder_is_reported_and_changes_nothing_else(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    models = {"tiny": ModelConfig(name="tiny", source="a/b", lora_folder=str(tmp_path / "nope"))}
    report = await sync_server_folders(sessions, FileStore(tmp_path / "files"), models)
    assert report.refused == [f"{tmp_path / 'nope'} (model tiny): not a folder"] and not report.added
