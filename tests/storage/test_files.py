from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from storage.files import FileStore, StoredFileDamaged, StoredFileMissing


def test_put_names_the_file_by_its_sha256(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    digest = store.put(b"hello")
    assert digest == hashlib.sha256(b"hello").hexdigest()
    assert store.path(digest) == tmp_path / digest[:2] / digest
    assert store.read(digest) == b"hello"


def test_same_bytes_are_stored_once_and_only_their_time_refreshed(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    digest = store.put(b"x" * 100)
    path = store.path(digest)
    os.utime(path, (1_000_000, 1_000_000))
    inode = path.stat().st_ino
    assert store.put(b"x" * 100) == digest
    assert path.stat().st_ino == inode  # the same file, not rewritten…
    assert path.stat().st_mtime > 1_000_000  # …but fresh again for the sweeper
    assert sorted(p.name for p in path.parent.iterdir()) == [digest]  # no temp files left behind


def test_a_replaced_or_bit_flipped_file_is_refused_on_read_and_healed_by_storing_it_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileStore(tmp_path)
    digest = store.put(b"the real picture")
    store.path(digest).write_bytes(b"another picture")  # replaced by hand
    with pytest.raises(StoredFileDamaged, match="is damaged"):
        store.read(digest)
    flipped = bytearray(b"the real picture")
    flipped[3] ^= 1
    store.path(digest).write_bytes(bytes(flipped))
    with pytest.raises(StoredFileDamaged):
        store.read(digest)
    assert "damaged" in caplog.text  # the operator hears of it
    assert store.put(b"the real picture") == digest
    assert store.read(digest) == b"the real picture"


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    digest = store.put(b"gone soon")
    store.path(digest).unlink()
    with pytest.raises(StoredFileMissing, match="is missing"):
        store.read(digest)


def test_older_than_lists_only_files_past_the_grace_period(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    old, _ = store.put(b"old"), store.put(b"new")
    os.utime(store.path(old), (time.time() - 7200, time.time() - 7200))
    assert list(store.older_than(3600)) == [old]


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
