"""/admin: for server administrators only (hidden from others by Discord's default permissions, and
checked again here, since a server may override those): the server's default model, per-person
quotas, bans, and the audit log of what administrators did."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_bot import model_choices
from bot.gate import is_admin

if TYPE_CHECKING:
    from bot.admin import AdminService
    from bot.discord_bot import DreamcordBot

NOT_ADMIN = "Only server administrators can use /admin."


@app_commands.default_permissions(administrator=True)
@app_commands.guild_only()
class AdminCog(commands.GroupCog, group_name="admin", group_description="Server administration"):
    def __init__(self, bot: DreamcordBot) -> None:
        self.bot = bot
        super().__init__()

    @property
    def admin(self) -> AdminService:
        return self.bot.services.admin

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.guild_id is None or not is_admin(interaction):
            raise app_commands.CheckFailure(NOT_ADMIN)  # the tree answers it ephemerally
        return True

    async def _reply(self, interaction: discord.Interaction, text: str) -> None:
        await interaction.response.send_message(text[:2000], ephemeral=True)

    @app_commands.command(name="model", description="Set this server's default model (empty: the bot's)")
    @app_commands.describe(name="A configured model; leave out to use the bot's default")
    async def model(self, interaction: discord.Interaction, name: str | None = None) -> None:
        assert interaction.guild_id is not None
        await self.admin.set_model(interaction.guild_id, interaction.user.id, name)
        chosen = await self.admin.guild_model(interaction.guild_id)
        await self._reply(interaction, f"This server's default model is now **{chosen}**.")

    @model.autocomplete("name")
    async def _models(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return model_choices(self.bot.services.settings, current)

    @app_commands.command(name="quota", description="Per-person limits in this server")
    @app_commands.describe(
        max_queued="Jobs one person may have queued or running at once (at most the bot's own limit)",
        daily_jobs="Jobs one person may start per 24 hours (0: no daily limit)",
        fast_seconds="GPU-seconds per person per 24 hours in Fast mode; beyond, jobs run in Relax (0: no limit)",
    )
    async def quota(
        self,
        interaction: discord.Interaction,
        max_queued: app_commands.Range[int, 1, 100] | None = None,
        daily_jobs: app_commands.Range[int, 0, 10_000] | None = None,
        fast_seconds: app_commands.Range[int, 0, 1_000_000] | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        quotas = await self.admin.set_quotas(
            interaction.guild_id,
            interaction.user.id,
            max_queued=max_queued,
            daily_jobs=daily_jobs or None,
            fast_seconds=fast_seconds or None,
        )
        await self._reply(interaction, f"Limits: {quotas.describe()}.")

    @app_commands.command(name="ban", description="Stop someone from using the bot in this server")
    @app_commands.describe(user="Who", reason="Shown to them when they try")
    async def ban(
        self,
        interaction: discord.Interaction,
        user: discord.User,
        reason: app_commands.Range[str, 0, 200] = "",
    ) -> None:
        assert interaction.guild_id is not None
        added = await self.admin.ban(interaction.guild_id, interaction.user.id, user.id, reason)
        await self._reply(interaction, f"{user.mention} is {'now' if added else 'already'} banned here.")

    @app_commands.command(name="unban", description="Let someone use the bot again")
    async def unban(self, interaction: discord.Interaction, user: discord.User) -> None:
        assert interaction.guild_id is not None
        removed = await self.admin.unban(interaction.guild_id, interaction.user.id, user.id)
        await self._reply(
            interaction, f"{user.mention} {'may use the bot again' if removed else 'was not banned'}."
        )

    @app_commands.command(name="bans", description="Who is banned here")
    async def bans(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        bans = await self.admin.bans(interaction.guild_id)
        lines = [f"<@{b.user_id}> by <@{b.banned_by}>{f' — {b.reason}' if b.reason else ''}" for b in bans]
        await self._reply(interaction, "\n".join(lines) or "Nobody is banned here.")

    @app_commands.command(name="block", description="Refuse prompts containing a word, phrase or re:pattern")
    @app_commands.describe(term="A word or phrase (whole words, any case), or re: then a regular expression")
    async def block(self, interaction: discord.Interaction, term: app_commands.Range[str, 1, 100]) -> None:
        assert interaction.guild_id is not None
        terms = await self.admin.block(interaction.guild_id, interaction.user.id, term)
        await self._reply(interaction, f"Blocked in prompts here: {_listed(terms)}")

    @app_commands.command(name="unblock", description="Allow a blocked term again")
    async def unblock(self, interaction: discord.Interaction, term: app_commands.Range[str, 1, 100]) -> None:
        assert interaction.guild_id is not None
        terms = await self.admin.unblock(interaction.guild_id, interaction.user.id, term)
        await self._reply(interaction, f"Blocked in prompts here: {_listed(terms)}")

    @app_commands.command(name="blocklist", description="The terms prompts may not contain here")
    async def blocklist(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await self._reply(
            interaction, f"Blocked in prompts here: {_listed(await self.admin.blocked(interaction.guild_id))}"
        )

    @app_commands.command(name="log", description="What administrators did here, newest first")
    async def log(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        entries = await self.admin.audit_log(interaction.guild_id)
        lines = [
            f"{e.created_at:%Y-%m-%d %H:%M} <@{e.actor_id}> {e.action}"
            f"{f' <@{e.target}>' if e.target.isdigit() else ''}{f': {e.detail}' if e.detail else ''}"
            for e in entries
        ]
        await self._reply(interaction, "\n".join(lines) or "Nothing yet.")


def _listed(terms: list[str]) -> str:
    return ", ".join(f"`{term}`" for term in terms) or "nothing"
