"""Running a job for a Discord interaction: check, defer, persist, then show its progress."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord

from bot.captions import job_title
from bot.delivery import DiscordResultSink
from bot.jobs import JobService
from generation.errors import DreamcordError
from generation.eta import describe_seconds
from generation.pool import Cancelled, Failed, Progress, Queued, Started
from generation.specs import JobSpec

log = logging.getLogger(__name__)


async def reply_error(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral message to the person who asked, whether or not the interaction was answered."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)


def is_admin(interaction: discord.Interaction) -> bool:
    """Whether Discord says the user administers this server (the interaction's resolved permissions)."""
    return interaction.guild_id is not None and interaction.permissions.administrator


ControlsFactory = Callable[[int], discord.ui.View]


class InteractiveJobs:
    def __init__(
        self, jobs: JobService, sink: DiscordResultSink, controls: ControlsFactory | None = None
    ) -> None:
        self.jobs = jobs
        self.sink = sink
        self.controls = controls  # buttons shown while a job waits or runs (Cancel)

    async def run(
        self, interaction: discord.Interaction, spec: JobSpec, *, parent_job_id: int | None = None
    ) -> None:
        """Accept `spec` for the user behind `interaction` and keep its message up to date until the end."""

        async def ready() -> JobSpec:
            return spec

        await self.run_prepared(interaction, ready, parent_job_id=parent_job_id)

    async def run_prepared(
        self,
        interaction: discord.Interaction,
        prepare: Callable[[], Awaitable[JobSpec]],
        *,
        parent_job_id: int | None = None,
    ) -> None:
        """Like `run`, for a spec that takes time to build (downloading attachments): defer first, so
        Discord's 3 s deadline is met, then build; a problem with the input still ends ephemeral."""
        self.jobs.pool.check_capacity(interaction.user.id)  # before deferring: the refusal stays ephemeral
        await interaction.response.defer(thinking=True)
        try:
            spec = await prepare()
            ticket = await self.jobs.submit(
                owner_id=interaction.user.id,
                spec=spec,
                guild_id=interaction.guild_id,
                channel_id=interaction.channel_id,
                parent_job_id=parent_job_id,
            )
        except DreamcordError as error:
            await interaction.delete_original_response()
            await reply_error(interaction, str(error))
            return
        controls = self.controls(ticket.job_id) if self.controls else None
        message = self.sink.track(ticket.job_id, interaction, controls)
        title = job_title(spec) + (" · relax mode" if ticket.relax else "")
        await message.progress(f"**{title}** — queued (job {ticket.job_id})", force=True)
        async for event in ticket.events():
            if isinstance(event, Queued):
                wait = f" · starts in {describe_seconds(event.eta_s)}" if event.eta_s is not None else ""
                await message.progress(f"**{title}** — waiting, position {event.position} in the queue{wait}")
            elif isinstance(event, Started):
                await message.progress(f"**{title}** — starting", force=True)
            elif isinstance(event, Progress):
                note = f" · {event.note}" if event.note else ""
                if event.eta_s is not None and not event.note:  # a training's note has its own time left
                    note = f" · {describe_seconds(event.eta_s)} left"
                await message.progress(
                    f"**{title}** — step {event.step}/{event.total}{note}", preview=event.preview
                )
            elif isinstance(event, Failed):
                await message.fail(f"**{title}** — failed: {event.reason}")
            elif isinstance(event, Cancelled):
                await message.fail(f"**{title}** — cancelled")
