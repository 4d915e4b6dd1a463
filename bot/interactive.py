"""Accepting a job for a Discord interaction (check, defer, persist), and the one error handler."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord
from discord import app_commands

from bot.job_messages import DiscordJobMessages
from bot.jobs import JobService
from generation.errors import DreamcordError
from generation.specs import JobSpec
from storage.files import StoredFileDamaged, StoredFileMissing

log = logging.getLogger(__name__)


INTERNAL_ERROR = "Something went wrong on our side; it has been logged. Please try again."


async def reply_error(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral message to the person who asked, whether or not the interaction was answered; a
    public "thinking…" left by a defer is removed first, so a refusal leaves nothing behind."""
    response = interaction.response
    if response.type == discord.InteractionResponseType.deferred_channel_message:
        try:
            await interaction.delete_original_response()
        except discord.HTTPException as error:  # already gone (a moderator), or the token expired
            log.info("could not remove the deferred reply: %s", error)
    if response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await response.send_message(text, ephemeral=True)


async def answer_error(interaction: discord.Interaction, error: BaseException, where: str) -> None:
    """The one error handler of commands, buttons and forms: a user's mistake is told as it is, anything
    else is logged (with `where`) and answered with a generic line."""
    if isinstance(error, DreamcordError | app_commands.CheckFailure | app_commands.TransformerError):
        await reply_error(interaction, str(error))
        return
    if isinstance(error, StoredFileMissing | StoredFileDamaged):  # logged by the store for the operator
        await reply_error(
            interaction, f"That picture cannot be used: {error}. The bot's operator can see why."
        )
        return
    log.error("%s failed", where, exc_info=error)
    await reply_error(interaction, INTERNAL_ERROR)


class InteractiveJobs:
    """Accepts jobs for interactions; from then on the job's message belongs to the job service."""

    def __init__(self, jobs: JobService, messages: DiscordJobMessages) -> None:
        self.jobs = jobs
        self.messages = messages

    async def run(
        self, interaction: discord.Interaction, spec: JobSpec, *, parent_job_id: int | None = None
    ) -> None:
        """Accept `spec` for the user behind `interaction`; its message shows it until the end."""

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
        self.jobs.check_capacity(interaction.user.id)  # before deferring: the refusal stays ephemeral
        deferred = await interaction.response.defer(thinking=True)
        try:
            await self.jobs.submit(
                owner_id=interaction.user.id,
                spec=await prepare(),
                guild_id=interaction.guild_id,
                channel_id=interaction.channel_id,
                parent_job_id=parent_job_id,
                message_id=deferred.message_id if deferred is not None else None,
                message=self.messages.for_interaction(interaction),
            )
        except Exception as error:  # a bad upload, a refusal, a download Discord could not deliver
            await answer_error(interaction, error, f"preparing a job for {interaction.user.id}")
