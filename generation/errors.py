"""Errors whose message is meant for the person who asked (a Discord user or a CLI user)."""

from __future__ import annotations


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
