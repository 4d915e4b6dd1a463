from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from storage.files import FileStore


def test_put_names_the_file_by_its_sha256(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    digest = store.put(b"hello")
    assert digest == hashlib.sha256(b"hello").hexdigest()
    assert store.path(digest) == tmp_path / digest[:2] / digest
    assert store.read(digest) == b"hello"


def test_same_bytes_are_stored_once_and_never_rewritten(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    digest = store.put(b"x" * 100)
    path = store.path(digest)
    before = path.stat().st_mtime_ns
    assert store.put(b"x" * 100) == digest
    assert path.stat().st_mtime_ns == before
    assert sorted(p.name for p in path.parent.iterdir()) == [digest]  # no temp files left behind


def test_a_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileStore(tmp_path)

    def broken_replace(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("storage.files.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.put(b"data")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("bad", ["../etc/passwd", "abc", "A" * 64, "g" * 64])
def test_only_hex_digests_name_files(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="sha256"):
        FileStore(tmp_path).path(bad)


def test_delete(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    digest = store.put(b"bye")
    assert store.delete(digest) and not store.exists(digest)
    assert not store.delete(digest)
