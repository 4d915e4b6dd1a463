"""Who may see a job and its pictures, and who may manage it: the one rule every command and button asks.

A job is seen by its owner, and by people in the server where it was made who can see the channel it
was made in (administrators of that server always can). A job made in a DM is its owner's alone, and a
job made in one server is never reachable from another. Refusals say the same thing whether the job
does not exist or is not the asker's to see, so job numbers reveal nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from generation.errors import DreamcordError
from storage.models import Job


class JobNotVisible(DreamcordError):
    """No such job, or none the asker may see here (the same words for both)."""


def not_visible(job_id: int) -> JobNotVisible:
    return JobNotVisible(f"job {job_id} has no result you can see here")


def _no_channel(channel_id: int) -> bool:
    return False


@dataclass(frozen=True)
class Viewer:
    """Who asks, and from where."""

    user_id: int
    guild_id: int | None  # None: a DM
    is_admin: bool = False  # administers `guild_id`
    channel_id: int | None = None
    sees_channel: Callable[[int], bool] = field(default=_no_channel, compare=False)  # other channels


def may_see(job: Job, viewer: Viewer) -> bool:
    """The rule: the owner; else only from the job's own server, by its admins or whoever sees its channel."""
    if job.owner_id == viewer.user_id:
        return True
    if job.guild_id is None or job.guild_id != viewer.guild_id:
        return False  # a DM's job stays private; another server's jobs stay in that server
    if viewer.is_admin or job.channel_id is None or job.channel_id == viewer.channel_id:
        return True
    return viewer.sees_channel(job.channel_id)


def may_manage(job: Job, viewer: Viewer) -> bool:
    """Cancel and the like: the owner, or an administrator of the server the job was made in."""
    if job.owner_id == viewer.user_id:
        return True
    return viewer.is_admin and job.guild_id is not None and job.guild_id == viewer.guild_id
