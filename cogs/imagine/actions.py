"""What the buttons under a single picture make: specs derived from a stored result.

Whoever presses owns the new job (their tokens, not the owner's: the job service resolves them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.jobs import StoredImage
from generation.checkpoint import native_resolution
from generation.derive import outpaint_spec, upscale_spec, vary_spec
from generation.errors import DreamcordError
from generation.specs import (
    STRONG_STRENGTH,
    SUBTLE_STRENGTH,
    JobSpec,
    PromptedSpec,
    RegionBox,
    spec_from_json,
)
from storage.models import JobState

if TYPE_CHECKING:
    from bot.discord_bot import DreamcordBot


@dataclass(frozen=True)
class Picture:
    """One stored picture and the job that made it: what every derived spec starts from."""

    job_id: int
    spec: PromptedSpec
    image: StoredImage
    resolution: int  # the native side of the model that made it

    @property
    def size(self) -> tuple[int, int]:
        return self.image.width, self.image.height


async def stored_picture(bot: DreamcordBot, job_id: int, index: int) -> Picture:
    """Picture `index` of finished job `job_id`, or a friendly error."""
    services = bot.services
    job = await services.jobs.get_job(job_id)
    if job is None or job.state != JobState.DONE:
        raise DreamcordError(f"job {job_id} has no finished pictures")
    spec = spec_from_json(job.spec_json)
    images = await services.jobs.images_of(job_id)
    if not isinstance(spec, PromptedSpec) or not 0 <= index < len(images):
        raise DreamcordError(f"job {job_id} has no picture #{index + 1}")
    resolution = native_resolution(services.settings.model(spec.model))
    return Picture(job_id, spec, images[index], resolution)


def vary(
    picture: Picture, strength: float, *, box: RegionBox | None = None, prompt: str | None = None
) -> JobSpec:
    changes = {"prompt": prompt} if prompt else {}
    return vary_spec(
        picture.spec, picture.image.file_hash, picture.size, picture.resolution, strength, box=box, **changes
    )


def _upscale(factor: int) -> Callable[[Picture], JobSpec]:
    return lambda p: upscale_spec(p.spec, p.image.file_hash, p.size, factor, "subtle", p.resolution)  # type: ignore[arg-type]


def _outpaint(operation: str, zoom: float = 2.0) -> Callable[[Picture], JobSpec]:
    return lambda p: outpaint_spec(p.spec, p.image.file_hash, p.size, operation, p.resolution, zoom=zoom)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ImageAction:
    label: str
    row: int
    build: Callable[[Picture], JobSpec] | None  # None: asks for more first (Vary (Region) opens a form)


IMAGE_ACTIONS: dict[str, ImageAction] = {
    "vs": ImageAction("Vary (Subtle)", 0, lambda p: vary(p, SUBTLE_STRENGTH)),
    "vt": ImageAction("Vary (Strong)", 0, lambda p: vary(p, STRONG_STRENGTH)),
    "vr": ImageAction("Vary (Region)", 0, None),
    "u2": ImageAction("Upscale 2x", 1, _upscale(2)),
    "u4": ImageAction("Upscale 4x", 1, _upscale(4)),
    "z2": ImageAction("Zoom Out 2x", 2, _outpaint("zoom", 2.0)),
    "z15": ImageAction("Zoom Out 1.5x", 2, _outpaint("zoom", 1.5)),
    "sq": ImageAction("Make Square", 2, _outpaint("square")),
    "pl": ImageAction("⬅️", 3, _outpaint("pan-left")),
    "pr": ImageAction("➡️", 3, _outpaint("pan-right")),
    "pu": ImageAction("⬆️", 3, _outpaint("pan-up")),
    "pd": ImageAction("⬇️", 3, _outpaint("pan-down")),
}
