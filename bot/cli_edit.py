"""`dreamcord vary|upscale|outpaint|describe`: the picture operations on a local image file.

They build the same specs as the Discord buttons (generation/specs) and run them in-process.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from generation.config import upscale_setup
from generation.errors import DreamcordError
from generation.specs import OUTPAINT_OPERATIONS, UPSCALE_MODES, UPSCALE_PROMPT

if TYPE_CHECKING:
    from bot.settings import Settings
    from generation.specs import JobSpec, PromptedSpec, UpscaleSetup


def add_edit_commands(commands: Any) -> None:
    vary = _picture_command(commands, "vary", "four variations of a picture, or of one region of it")
    vary.add_argument("prompt", help="what to draw (flags such as --steps 30 --model NAME work here)")
    vary.add_argument(
        "--strength", default="strong", help="subtle, strong or a number 0.05-1 (default strong)"
    )
    region = vary.add_mutually_exclusive_group()
    region.add_argument(
        "--region", help="repaint only this box: left,top,right,bottom in %% (e.g. 25,25,75,75)"
    )
    region.add_argument(
        "--mask", type=Path, help="repaint only the white (or transparent) part of this image"
    )

    upscale = _picture_command(commands, "upscale", "a larger, sharper picture")
    upscale.add_argument("--factor", type=int, choices=(2, 4), default=2, help="2x or 4x (default 2)")
    upscale.add_argument("--mode", choices=UPSCALE_MODES, default="subtle", help="default subtle")
    upscale.add_argument("--tile-prompt", default="", help="what each tile is redrawn as (default: nothing)")
    upscale.add_argument("--prompt", default=UPSCALE_PROMPT, help="flags such as --model NAME --steps 30")

    outpaint = _picture_command(commands, "outpaint", "zoom out, pan, make square or change the aspect")
    outpaint.add_argument("prompt", help="what to draw in the new area (and flags)")
    outpaint.add_argument("operation", choices=OUTPAINT_OPERATIONS, help="what to do")
    outpaint.add_argument("--zoom", type=float, default=2.0, help="zoom factor, 1.1-4 (default 2)")
    outpaint.add_argument("--aspect", help="the new aspect W:H for `aspect` (e.g. 16:9)")

    description = "four prompts for a picture, from the model's describer"
    describe = commands.add_parser("describe", help=description, description=description)
    describe.add_argument("image", type=Path, help="the picture to describe")
    describe.add_argument("--model", help="the model the prompts are for (default: the default model)")
    describe.add_argument("--device", help="cpu, cuda, mps (default: the settings' device, auto)")


def _picture_command(commands: Any, name: str, description: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(name, help=description, description=description)
    parser.add_argument("image", type=Path, help="the picture to start from")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="image file to write (png, jpg, webp)"
    )
    parser.add_argument("--seed", type=int, help="seed of the first result (default: random)")
    parser.add_argument("--device", help="cpu, cuda, mps (default: the settings' device, auto)")
    parser.add_argument("--dtype", help="float32, float16, bfloat16 (default: the settings' dtype, auto)")
    return parser


def run_edit(settings: Settings, args: argparse.Namespace) -> int:
    from generation.models.checkpoint_facts import native_resolution
    from generation.pictures.uploads import open_user_image
    from generation.prompt import parse_prompt
    from generation.specs import imagine_spec

    check_output_path(args.output)
    source_bytes = _read(args.image)
    source = open_user_image(source_bytes, args.image.name)
    parsed = parse_prompt(args.prompt)
    config = settings.model_for(parsed)
    resolution = native_resolution(config)
    base = imagine_spec(parsed, config, resolution, count=1)
    digest = hashlib.sha256(source_bytes).hexdigest()
    seed = args.seed if args.seed is not None else parsed.seed
    spec, mask_file = _derived_spec(args, base, digest, source.size, resolution, seed, upscale_setup(config))
    from bot.cli_runs import run_spec, save_output  # only now: every check of the input is answered

    files = {digest: source_bytes, **mask_file}
    output = run_spec(settings, config, spec, files, device=args.device, dtype=args.dtype)
    image = save_output(output, args.output)
    seeds = " ".join(str(image.seed) for image in output.images)
    print(f"wrote {args.output} ({image.width}x{image.height}) in {output.elapsed_s:.2f}s · seeds: {seeds}")
    return 0


def run_describe_command(settings: Settings, args: argparse.Namespace) -> int:
    from generation.models.checkpoint_facts import operation_refusal
    from generation.pictures.uploads import open_user_image
    from generation.specs import DescribeSpec, build_spec

    config = settings.model(args.model)
    if refusal := operation_refusal(config, None, {"describe"}):
        raise DreamcordError(refusal)
    data = _read(args.image)
    open_user_image(data, args.image.name)  # a picture Pillow opens safely, or a clear error now
    digest = hashlib.sha256(data).hexdigest()
    spec = build_spec(DescribeSpec, model=config.name, source=digest)
    from bot.cli_runs import run_spec  # only now: every check of the input is answered

    output = run_spec(settings, config, spec, {digest: data}, device=args.device)
    for number, text in enumerate(output.texts, start=1):
        print(f"{number}. {text}")
    return 0


def _derived_spec(
    args: argparse.Namespace,
    base: PromptedSpec,
    digest: str,
    size: tuple[int, int],
    resolution: int,
    seed: int | None,
    upscale: UpscaleSetup,
) -> tuple[JobSpec, dict[str, bytes]]:
    """The spec the command asks for, and the mask file it names (by hash), if any."""
    from generation.pictures.uploads import open_user_image
    from generation.prompt import parse_aspect
    from generation.specs import REGION_STRENGTH, outpaint_spec, parse_box, upscale_spec, vary_spec

    spec: JobSpec
    if args.command == "upscale":
        spec = upscale_spec(
            base,
            digest,
            size,
            args.factor,
            args.mode,
            resolution,
            tile_prompt=args.tile_prompt,
            seed=seed,
            setup=upscale,
        )
        return spec, {}
    if args.command == "outpaint":
        aspect = parse_aspect(args.aspect) if args.aspect else None
        spec = outpaint_spec(
            base, digest, size, args.operation, resolution, zoom=args.zoom, aspect=aspect, seed=seed
        )
        return spec, {}
    box = parse_box(args.region) if args.region else None
    mask_bytes = _read(args.mask) if args.mask else None
    if mask_bytes is None:
        mask_file = {}
    else:
        open_user_image(mask_bytes, args.mask.name)  # a picture Pillow opens safely, or a clear error now
        mask_file = {hashlib.sha256(mask_bytes).hexdigest(): mask_bytes}
    strength = REGION_STRENGTH if box or mask_file else _strength(args.strength)
    mask_hash = next(iter(mask_file), None)
    spec = vary_spec(base, digest, size, resolution, strength, box=box, mask=mask_hash, seed=seed)
    return spec, mask_file


def _strength(text: str) -> float:
    from generation.specs import STRONG_STRENGTH, SUBTLE_STRENGTH

    named = {"subtle": SUBTLE_STRENGTH, "strong": STRONG_STRENGTH}
    try:
        value = named[text] if text in named else float(text)
    except ValueError:
        value = -1.0
    if not 0.05 <= value <= 1.0:
        raise DreamcordError(f"--strength must be subtle, strong or a number from 0.05 to 1, got {text!r}")
    return value


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise DreamcordError(f"{path} does not exist")
    return path.read_bytes()


def check_output_path(path: Path) -> None:
    """Fail before the slow part: the folder must exist and Pillow must know the extension."""
    if not path.parent.is_dir():
        raise DreamcordError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.suffix.lower() not in Image.registered_extensions():
        raise DreamcordError(
            f"cannot write {path}: unknown image type {path.suffix!r} (use .png, .jpg or .webp)"
        )
