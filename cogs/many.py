"""Prompts typed by a user becoming /imagine jobs (the /imagine command, and /describe's suggestion
buttons): with the user's saved defaults, option sets and suffix, `{a, b}` permutations and
`--repeat N`. Up to four jobs start at once; more wait for a yes in an ephemeral question (Cancel
queues nothing). Each is a job of its own, counted against the user's limits like any other; the
first is shown on the interaction's own message, the others are posted to the channel when done."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import discord

from bot.attachments import read_attachment
from generation.errors import DreamcordError
from generation.models.checkpoint_facts import native_resolution
from generation.pictures.uploads import open_user_image
from generation.prompt import (
    ParsedPrompt,
    apply_preferences,
    expand_permutations,
    parse_prompt,
    with_defaults,
)
from generation.specs import GRID_SIZE, MAX_SEED, ImagineSpec, JobSpec, imagine_spec

if TYPE_CHECKING:
    from bot.discord_bot import Services
    from bot.settings import Settings

WITHOUT_ASKING = 4


# Stands for an attachment not downloaded yet: a prompt that names pictures is checked with these
# before the interaction is deferred (a typo is answered at once), then built with the real hashes.
UNREAD_PICTURE = "0" * 64


async def typed_specs(
    interaction: discord.Interaction, services: Services, text: str, pictures: tuple[str, ...] = ()
) -> tuple[list[ImagineSpec], ParsedPrompt]:
    """The jobs `text` asks for when the user behind `interaction` types it (prompt_specs, after
    their /prefer option sets and suffix, with their /settings defaults)."""
    defaults = await services.admin.prompt_defaults(interaction.user.id, interaction.guild_id)
    suffix, options = await services.admin.preferences(interaction.user.id)
    text = apply_preferences(text, suffix, options)  # /prefer: --name option sets, the suffix
    return prompt_specs(text, defaults, services.settings, pictures)


def prompt_specs(
    text: str, defaults: ParsedPrompt | None, settings: Settings, pictures: tuple[str, ...] = ()
) -> tuple[list[ImagineSpec], ParsedPrompt]:
    """The jobs one /imagine asks for: a spec per `{a, b}` choice and per --repeat (new seeds each time,
    or the next four after a given --seed), and the last prompt as parsed (for its habit note);
    `pictures` prompt each of them too (image prompts: /imagine's `image`, /blend)."""
    specs = []
    for variant in expand_permutations(text):
        parsed = parse_prompt(variant, pictures=bool(pictures))
        if defaults is not None:
            parsed = with_defaults(parsed, defaults)
        config = settings.model_for(parsed)
        for repeat in range(parsed.repeat or 1):
            seed = None if parsed.seed is None else (parsed.seed + repeat * GRID_SIZE) % (MAX_SEED + 1)
            resolution = native_resolution(config)
            specs.append(imagine_spec(replace(parsed, seed=seed), config, resolution, pictures=pictures))
    return specs, parsed


async def imagine_many(
    interaction: discord.Interaction,
    services: Services,
    specs: Sequence[ImagineSpec],
    *,
    parent_job_id: int | None = None,
) -> None:
    if len(specs) <= WITHOUT_ASKING:
        await services.interactive.run(interaction, specs[0], parent_job_id=parent_job_id)
        await queue_rest(interaction, services, specs[1:], parent_job_id=parent_job_id)
        return
    shown = "\n".join(f"• {spec.prompt[:80]}" for spec in specs[:3]) + ("\n• …" if len(specs) > 3 else "")
    await interaction.response.send_message(
        f"This prompt makes **{len(specs)} jobs**, each counted against your limits:\n{shown}\nRun them all?",
        view=ConfirmMany(services, specs, interaction.user.id, parent_job_id),
        ephemeral=True,
    )


async def imagine_with_pictures(
    interaction: discord.Interaction,
    services: Services,
    text: str,
    uploads: Sequence[discord.Attachment],
    checked: Sequence[ImagineSpec],
) -> None:
    """The jobs of `text` with `uploads` as image prompts (/imagine's `image`, /blend). `checked` are
    those jobs built with UNREAD_PICTURE: the prompt, the count and the model's IP-Adapter are
    refused before the interaction is deferred; then the pictures are downloaded, checked and
    stored, and the jobs built again with their hashes (the first shown on the interaction's
    message, the rest queued)."""
    if len(checked) > WITHOUT_ASKING:
        raise DreamcordError(
            f"pictures that prompt run at most {WITHOUT_ASKING} jobs at once; use fewer {{…}} choices"
        )
    await services.jobs.check_operation(checked[0])  # a model without an IP-Adapter: before downloading
    rest: list[ImagineSpec] = []

    async def first() -> JobSpec:
        hashes = tuple(await stored_pictures(services, uploads))
        specs = (await typed_specs(interaction, services, text, hashes))[0]
        rest.extend(specs[1:])
        return specs[0]

    await services.interactive.run_prepared(interaction, first)
    if rest:
        await queue_rest(interaction, services, rest)


async def stored_pictures(services: Services, uploads: Sequence[discord.Attachment]) -> list[str]:
    """Download, check (format, size, pixels: off the event loop) and store attachments; their hashes."""
    blobs = []
    for upload in uploads:
        data = await read_attachment(upload)
        await asyncio.to_thread(open_user_image, data, upload.filename)
        blobs.append(data)
    return await services.jobs.store_files(blobs)


async def queue_rest(
    interaction: discord.Interaction,
    services: Services,
    specs: Sequence[ImagineSpec],
    *,
    parent_job_id: int | None = None,
) -> list[str]:
    """Queue each spec as a job of the user's (posted to the channel when done); a refusal (a full queue,
    a quota) stops the rest and is told in one ephemeral line. What was queued, as "job N"."""
    queued: list[str] = []
    for spec in specs:
        try:
            ticket = await services.jobs.submit(
                owner_id=interaction.user.id,
                spec=spec,
                guild_id=interaction.guild_id,
                channel_id=interaction.channel_id,
                parent_job_id=parent_job_id,
            )
        except DreamcordError as error:
            await interaction.followup.send(
                f"{len(queued)} more job(s) queued, then: {error}", ephemeral=True
            )
            break
        queued.append(f"job {ticket.job_id}")
    return queued


class ConfirmMany(discord.ui.View):
    def __init__(
        self, services: Services, specs: Sequence[ImagineSpec], user_id: int, parent_job_id: int | None
    ) -> None:
        super().__init__(timeout=300)
        self.services, self.specs, self.user_id = services, specs, user_id
        self.parent_job_id = parent_job_id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id

    @discord.ui.button(label="Run them all", style=discord.ButtonStyle.primary)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.stop()
        await interaction.response.edit_message(content=f"Queueing {len(self.specs)} jobs…", view=None)
        queued = await queue_rest(interaction, self.services, self.specs, parent_job_id=self.parent_job_id)
        await interaction.edit_original_response(
            content=f"Queued {len(queued)} of {len(self.specs)} jobs ({', '.join(queued) or 'none'}); "
            "each is posted here when it is done."
        )

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing was queued.", view=None)
