"""dreamcord's version, as installed (what `--version` prints and pictures' infotext names)."""

from __future__ import annotations

from functools import cache


@cache
def dreamcord_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dreamcord")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"
