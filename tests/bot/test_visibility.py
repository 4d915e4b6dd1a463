"""The one visibility rule (bot.visibility): who may see a job, and who may manage it."""

from __future__ import annotations

import pytest

from bot.visibility import Viewer, may_manage, may_see
from storage.models import Job

GUILD, OTHER_GUILD, CHANNEL, PRIVATE = 1, 2, 10, 11
OWNER, MEMBER = 100, 200


def job(guild_id: int | None, channel_id: int | None = CHANNEL) -> Job:
    return Job(id=5, owner_id=OWNER, kind="imagine", spec_json="{}", guild_id=guild_id, channel_id=channel_id)


def sees_public_only(channel_id: int) -> bool:
    return channel_id != PRIVATE


@pytest.mark.parametrize(
    ("made_in", "viewer", "expected"),
    [
        (job(GUILD), Viewer(OWNER, OTHER_GUILD), True),  # the owner, anywhere
        (job(None), Viewer(OWNER, None), True),
        (job(None), Viewer(MEMBER, None), False),  # a DM's job: nobody else, even from their own DM
        (job(None), Viewer(MEMBER, GUILD, is_admin=True), False),
        (job(GUILD), Viewer(MEMBER, OTHER_GUILD, is_admin=True), False),  # another server's job
        (job(GUILD), Viewer(MEMBER, GUILD, channel_id=CHANNEL), True),  # same channel
        (job(GUILD), Viewer(MEMBER, GUILD, channel_id=99, sees_channel=sees_public_only), True),
        (
            job(GUILD, PRIVATE),
            Viewer(MEMBER, GUILD, channel_id=CHANNEL, sees_channel=sees_public_only),
            False,
        ),
        (job(GUILD, PRIVATE), Viewer(MEMBER, GUILD, channel_id=CHANNEL, is_admin=True), True),
        (job(GUILD, PRIVATE), Viewer(MEMBER, GUILD, channel_id=CHANNEL), False),  # unknown channels: no
    ],
)
def test_who_may_see_a_job(made_in: Job, viewer: Viewer, expected: bool) -> None:
    assert may_see(made_in, viewer) is expected


@pytest.mark.parametrize(
    ("made_in", "viewer", "expected"),
    [
        (job(GUILD), Viewer(OWNER, None), True),
        (job(GUILD), Viewer(MEMBER, GUILD, channel_id=CHANNEL), False),  # seeing is not managing
        (job(GUILD), Viewer(MEMBER, GUILD, is_admin=True), True),
        (job(GUILD), Viewer(MEMBER, OTHER_GUILD, is_admin=True), False),
        (job(None), Viewer(MEMBER, GUILD, is_admin=True), False),
    ],
)
def test_who_may_manage_a_job(made_in: Job, viewer: Viewer, expected: bool) -> None:
    assert may_manage(made_in, viewer) is expected
