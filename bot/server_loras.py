"""The server's own LoRA folders: `lora_folder = "loras/sdxl"` in a model's config makes every
`.safetensors` there a library entry for everyone, used as `<file name>` with that model.

Owners put files on the server (no upload limit, no Discord round trip); the bot mirrors the folders
into the library at start: each file gets the same header check as an upload (safetensors only,
pickles refused unopened), is copied into the content-addressed file store (workers fetch by hash,
across machines too), and becomes a public entry of the server itself. A file that is gone from its
folder is gone from the library; a file that changed is replaced. A user's own token of the same name
wins for that user, as with any shared token.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generation.config import SINGLE_FILE_SUFFIXES, ModelConfig
from generation.models.adapter_files import (
    AdapterFileError,
    AdapterFileInfo,
    head_of_file,
    inspect_adapter_head,
)
from generation.specs import adapter_name_problem
from storage import library
from storage.db import write_transaction
from storage.files import FileStore
from storage.jobs import ensure_user
from storage.library import SERVER_OWNER_ID
from storage.models import AdapterKind, Visibility

log = logging.getLogger(__name__)


@dataclass
class FolderSync:
    """What one pass changed, by token name, and the files it refused (with why)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Found:
    name: str
    model: str
    info: AdapterFileInfo
    digest: str


def token_name(stem: str) -> str:
    """A file name as a token: lower case, anything but letters, digits, '-' and '_' becomes '-'."""
    name = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")
    return name[:32].rstrip("-_")


async def sync_server_folders(
    sessions: async_sessionmaker[AsyncSession], files: FileStore, models: Mapping[str, ModelConfig]
) -> FolderSync:
    """Make the server's library entries match the configured folders; logs what changed."""
    report = FolderSync()
    found: dict[str, _Found] = {}
    for model in models.values():
        if model.lora_folder is None:
            continue
        folder = Path(model.lora_folder).expanduser()
        if not folder.is_dir():
            report.refused.append(f"{folder} (model {model.name}): not a folder")
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in SINGLE_FILE_SUFFIXES or not path.is_file():
                continue
            name = token_name(path.stem)
            if problem := adapter_name_problem(name):
                report.refused.append(f"{path.name}: {problem}")
            elif name in found:
                report.refused.append(
                    f"{path.name}: <{name}> is already {found[name].model}'s file of that name"
                )
            else:
                try:
                    info, digest = await asyncio.to_thread(_check_and_store, files, path)
                except (AdapterFileError, OSError) as error:
                    report.refused.append(f"{path.name}: {error}")
                    continue
                found[name] = _Found(name, model.name, info, digest)
    await _mirror(sessions, found, report)
    for names in (report.added, report.updated, report.kept, report.removed):
        names.sort()
    for line in report.refused:
        log.warning("server LoRA folder: refused %s", line)
    log.info(
        "server LoRA folders: %d added, %d updated, %d kept, %d removed, %d refused",
        len(report.added), len(report.updated), len(report.kept), len(report.removed), len(report.refused),
    )  # fmt: skip
    return report


def _check_and_store(files: FileStore, path: Path) -> tuple[AdapterFileInfo, str]:
    """The upload checks on the file's header and size first (nothing stored if they refuse), then a copy."""
    info = inspect_adapter_head(head_of_file(path), path.stat().st_size, path.name)
    return info, files.put(path.read_bytes())


async def _mirror(
    sessions: async_sessionmaker[AsyncSession], found: dict[str, _Found], report: FolderSync
) -> None:
    async with write_transaction(sessions) as session:
        await ensure_user(session, SERVER_OWNER_ID)
        existing = {adapter.name: adapter for adapter in await library.adapters_of(session, SERVER_OWNER_ID)}
        for name, entry in found.items():
            kind, trigger = AdapterKind(entry.info.kind), " ".join(entry.info.trigger.split())[:200]
            adapter = existing.pop(name, None)
            if adapter is None:
                adapter = await library.add_adapter(
                    session, owner_id=SERVER_OWNER_ID, kind=kind, name=name, base_model=entry.model,
                    file_hash=entry.digest, trigger_words=trigger, tags=entry.info.tags,
                )  # fmt: skip
                adapter.visibility = Visibility.PUBLIC
                report.added.append(name)
            elif (adapter.file_hash, adapter.base_model, adapter.kind) != (entry.digest, entry.model, kind):
                adapter.file_hash, adapter.base_model, adapter.kind = entry.digest, entry.model, kind
                adapter.trigger_words, adapter.tags = trigger, entry.info.tags
                report.updated.append(name)
            else:
                report.kept.append(name)
        for name, adapter in existing.items():
            await session.delete(adapter)
            report.removed.append(name)
