"""How files reach Ray workers: by hash through the object store, checked, and not kept."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from generation.errors import SpecError
from storage.files import FileStore

ray = pytest.importorskip("ray")
from generation.pool.ray_backend import FetchedFiles, Uploads  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_instance")]


def test_a_file_is_uploaded_once_and_dropped_when_the_bot_deletes_it(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "files")
    photo, lora = store.put(b"a photo"), store.put(b"a lora")
    uploads = Uploads(store)
    first = uploads.references([photo, lora, "f" * 64])  # a missing file is left for the worker to report
    assert set(first) == {photo, lora} and ray.get(first[photo]) == b"a photo"
    assert uploads.references([lora])[lora] is first[lora]  # reused, not put again
    store.delete(photo)  # /forget
    uploads.references([lora])
    assert photo not in uploads._references


def test_the_worker_checks_hashes_and_keeps_nothing_past_the_job() -> None:
    files = FetchedFiles()
    good = hashlib.sha256(b"pixels").hexdigest()
    files.offer(7, {good: ray.put(b"pixels"), "0" * 64: ray.put(b"not what the hash says")})
    assert files.read(good) == b"pixels"
    with pytest.raises(SpecError, match="arrived damaged"):
        files.read("0" * 64)
    files.release(7)  # the job ended
    with pytest.raises(SpecError, match="was not sent to this worker"):
        files.read(good)
