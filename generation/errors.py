"""Errors whose message is meant for the person who asked (a Discord user or a CLI user)."""

from __future__ import annotations


def excerpt(text: str, limit: int = 40, *, quote: bool = True) -> str:
    """User-supplied text as error messages and logs quote it: at most `limit` characters, control
    characters escaped (a newline cannot start a forged log line), quoted unless `quote` is False."""
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    escaped = repr(shown)[1:-1] if not shown.isprintable() else shown
    return f"'{escaped}'" if quote else escaped


class DreamcordError(Exception):
    """Base of every error whose text can be shown to the user as it is."""


class PromptError(DreamcordError, ValueError):
    """The prompt text or one of its `--flags` is malformed."""

    def __init__(self, message: str, *, flag: str | None = None) -> None:
        super().__init__(message)
        self.flag = flag


class SpecError(DreamcordError, ValueError):
    """A job's parameters are out of range or inconsistent."""


class ModelNotFoundError(DreamcordError):
    """A configured model could not be found (missing folder, unknown name, not cached offline)."""


class ModelLoadError(DreamcordError):
    """A model was found but is unusable (wrong layout, broken tokenizer, …)."""


class JobCancelled(DreamcordError):
    """The job was cancelled by its owner before it finished."""

    def __init__(self, message: str = "the job was cancelled") -> None:
        super().__init__(message)
