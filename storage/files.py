"""Content-addressed file store: files named by their sha256, written atomically, never overwritten."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")


class FileStore:
    """Files under `root/ab/abcdef…` (sharded by the first two hex digits of their sha256)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, data: bytes) -> str:
        """Store `data` and return its sha256; storing the same bytes twice is a no-op."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write next to the target, fsync, then rename: readers never see a half-written file.
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return digest

    def path(self, digest: str) -> Path:
        if not _HASH_RE.match(digest):
            raise ValueError(f"not a sha256 hex digest: {digest!r}")
        return self.root / digest[:2] / digest

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def delete(self, digest: str) -> bool:
        """Remove a file (only when no row refers to it any more: the caller checks)."""
        path = self.path(digest)
        existed = path.is_file()
        path.unlink(missing_ok=True)
        return existed
