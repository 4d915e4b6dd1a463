"""The CLI's jobs run as the bot's do: a spec through `JobRunner`, so the files the CLI writes carry
the same provenance chunks as the bot's results and get the same out-of-memory halving."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image

from bot.images import grid_png
from bot.settings import Settings
from generation.config import ModelConfig
from generation.errors import SpecError
from generation.outputs import JobOutput
from generation.pictures.provenance import encode_with_parameters, parameters_of
from generation.specs import JobSpec


def run_spec(
    settings: Settings,
    config: ModelConfig,
    spec: JobSpec,
    files: dict[str, bytes],
    *,
    device: str | None = None,
    dtype: str | None = None,
) -> JobOutput:
    """Run `spec` in this process; `files` are the pictures it names (by their sha256)."""
    from tqdm import tqdm  # imported here, like torch (below): bad input is answered before these load

    from generation.pool.runner import JobRunner

    def read_file(digest: str) -> bytes:
        if digest not in files:
            raise SpecError(f"file {digest[:12]}… was not given to this command")
        return files[digest]

    runner = JobRunner(
        {config.name: config},
        device=device or settings.device,
        dtype=dtype or settings.dtype,
        read_file=read_file,
        offline=settings.offline or None,
    )
    with tqdm(desc=spec.kind, unit="step", file=sys.stderr) as bar:

        def on_step(step: int, total: int, note: str | None = None) -> None:
            bar.total = total
            bar.update(step - bar.n)

        return runner.run(spec, on_step=on_step)


def save_output(output: JobOutput, path: Path, *, each: bool = False) -> Image.Image:
    """Write the job's picture (several as a grid) to `path`; with `each`, every picture also to
    `<stem>_<n><suffix>`. PNGs are written as the runner made them, provenance included."""
    pictures = [_decoded(image.png) for image in output.images]
    if len(pictures) == 1:
        shown = pictures[0]
        _write(output.images[0].png, shown, path)
    else:
        grid = grid_png([image.png for image in output.images])  # with the first one's infotext
        shown = _decoded(grid)
        _write(grid, shown, path)
    if each:
        for index, (image, picture) in enumerate(zip(output.images, pictures, strict=True), start=1):
            _write(image.png, picture, path.with_stem(f"{path.stem}_{index}"))
    return shown


def _decoded(png: bytes) -> Image.Image:
    with Image.open(io.BytesIO(png)) as image:
        return image.convert("RGB")


def _write(png: bytes, picture: Image.Image, path: Path) -> None:
    if path.suffix.lower() == ".png":
        path.write_bytes(png)  # as made: its provenance chunks stay
    else:  # JPEG, WebP: the infotext goes in EXIF
        image_format = Image.registered_extensions()[path.suffix.lower()]
        path.write_bytes(encode_with_parameters(picture, image_format, parameters_of(png), quality=95))
