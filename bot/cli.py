"""dreamcord: a self-hosted, Midjourney-style Discord bot that runs Stable Diffusion on your own GPUs.

`imagine` renders a prompt to a file; `vary`, `upscale` and `outpaint` work on a picture file;
`models` lists what is configured; `doctor` checks a deployment; `pull` downloads the configured hub
models; `run` starts the bot.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli_edit import add_edit_commands, check_output_path, run_describe_command, run_edit
from bot.model_sources import model_availability, model_family
from bot.settings import Settings, load_settings
from generation.config import ModelConfig
from generation.errors import DreamcordError
from generation.logs import configure_logging
from generation.specs import CONTROL_MODES, SCHEDULER_NAMES
from generation.version import dreamcord_version

if TYPE_CHECKING:
    from generation.specs import ImagineSpec

USAGE_ERROR = 2
EXIT_CODES = "exit codes: 0 done, 2 bad input (prompt, flags, model, file, token), 1 anything unexpected"
EDIT_COMMANDS = ("vary", "upscale", "outpaint")
log = logging.getLogger("dreamcord")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dreamcord",
        description=__doc__.splitlines()[0],
        epilog=EXIT_CODES,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"dreamcord {dreamcord_version()}")
    parser.add_argument(
        "--config", type=Path, help="settings file (default: $DREAMCORD_CONFIG or ./dreamcord.toml)"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log what happens (-vv: debug); `run` logs at the settings' log_level otherwise",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    imagine = commands.add_parser(
        "imagine",
        allow_abbrev=False,
        help="render a prompt to an image file",
        description="Render a prompt. Prompt flags (--ar 16:9 --seed 42 --no text --steps 30 --cfg 7 --chaos 20 "
        "--tile --model NAME) may go inside or after the quoted prompt.",
    )
    imagine.add_argument("prompt", help='what to draw, e.g. "a red circle on a blue background --ar 3:2"')
    imagine.add_argument(
        "-o", "--output", type=Path, required=True, help="image file to write (png, jpg, webp)"
    )
    imagine.add_argument(
        "-n", "--count", type=int, default=4, choices=range(1, 5), help="images (default 4: a 2x2 grid)"
    )
    imagine.add_argument("--scheduler", choices=SCHEDULER_NAMES, help="sampler (default: the model's)")
    imagine.add_argument(
        "--each", action="store_true", help="also write each image as NAME_1.png, NAME_2.png, …"
    )
    imagine.add_argument(
        "--control", type=Path, help="a picture the result follows (ControlNet; see --control-mode)"
    )
    imagine.add_argument(
        "--control-mode",
        choices=CONTROL_MODES,
        default="canny",
        help="canny: edges found in the picture (default); depth, pose: the picture is that map",
    )
    imagine.add_argument(
        "--control-scale", type=float, default=1.0, help="0-2, how strongly it steers (default 1)"
    )
    imagine.add_argument(
        "--image",
        type=Path,
        action="append",
        default=[],
        help="a picture that prompts too (the model's IP-Adapter; --iw, --sref); up to 5 blend",
    )
    imagine.add_argument("--device", help="cpu, cuda, mps (default: the settings' device, auto)")
    imagine.add_argument("--dtype", help="float32, float16, bfloat16 (default: the settings' dtype, auto)")

    add_edit_commands(commands)

    commands.add_parser("models", help="list the configured models")
    commands.add_parser(
        "doctor",
        help="check the config, each model, the database and the token; print the invite URL",
    )
    commands.add_parser("pull", help="download the configured hub models into the cache ($HF_HOME)")

    commands.add_parser("run", help="run the Discord bot (token from $DISCORD_TOKEN)")
    commands.add_parser(
        "health", help="ask the running bot's health port (/healthz): exit 0 healthy, 1 not (HEALTHCHECK)"
    )

    database = commands.add_parser("db", help="database migrations (the bot also upgrades on start)")
    database.add_argument("action", choices=("upgrade", "downgrade", "current"))
    database.add_argument("revision", nargs="?", help="target revision (default: head; downgrade: -1)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "imagine":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        settings = load_settings(args.config)
        configure_logging(log_level(args.verbose, args.command, settings))
        if args.command == "models":
            return list_models(settings)
        if args.command == "db":
            return migrate(settings, args.action, args.revision)
        if args.command in EDIT_COMMANDS:
            return run_edit(settings, args)
        if args.command == "describe":
            return run_describe_command(settings, args)
        if args.command == "doctor":
            from bot.doctor import run_doctor

            return run_doctor(settings, args.config)
        if args.command == "pull":
            from bot.pull import run_pull

            return run_pull(settings)
        if args.command == "health":
            from bot.health_check import check_health

            return check_health(settings)
        if args.command == "run":
            from bot.run import main as run_main

            return run_main(settings)
        return imagine(settings, args, extra)
    except DreamcordError as error:
        print(f"dreamcord: {error}", file=sys.stderr)
        return USAGE_ERROR


def log_level(verbose: int, command: str, settings: Settings) -> int:
    """-vv: debug; -v: info; otherwise the bot logs at its configured level and the other commands
    only warn (their output is the result)."""
    if verbose >= 2:
        return logging.DEBUG
    if verbose == 1:
        return min(logging.INFO, logging.getLevelNamesMapping()[settings.log_level.upper()])
    if command == "run":
        return logging.getLevelNamesMapping()[settings.log_level.upper()]
    return logging.WARNING


def list_models(settings: Settings) -> int:
    for name, config in sorted(settings.models.items()):
        marker = "*" if name == settings.default_model else " "
        where = model_availability(config.source)
        base = f"; base {config.base}: {model_availability(config.base)}" if config.base else ""
        print(f"{marker} {name:<16} {config.source}  [{where}{model_family(config, where)}{base}]")
        if config.description:
            print(f"  {'':<16} {config.description}")
    print("(* = default model)")
    return 0


def migrate(settings: Settings, action: str, revision: str | None) -> int:
    from storage import db

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if action == "upgrade":
        db.upgrade(settings.db_url, revision or "head")
    elif action == "downgrade":
        db.downgrade(settings.db_url, revision or "-1")
    print(f"database at revision {db.current_revision(settings.db_url) or 'none (empty)'}")
    return 0


def imagine(settings: Settings, args: argparse.Namespace, extra: Sequence[str]) -> int:
    from generation.prompt import parse_prompt
    from generation.specs import check_control_mode, imagine_spec

    # Every check of the input first: a typo is answered at once, before torch is imported (seconds).
    parsed = parse_prompt(" ".join([args.prompt, *extra]), pictures=bool(args.image))
    check_output_path(args.output)
    config = settings.model_for(parsed)
    if args.control is not None:
        check_control_mode(config.name, config.controlnets, args.control_mode)
    pictures = read_pictures(args.image)
    from bot.cli_runs import run_spec, save_output
    from generation.models.checkpoint_facts import known_family, native_resolution, operation_refusal

    resolution = native_resolution(config)
    spec = imagine_spec(
        parsed, config, resolution, count=args.count, scheduler=args.scheduler, pictures=tuple(pictures)
    )
    if refusal := operation_refusal(config, known_family(config), spec.needs()):
        raise DreamcordError(refusal)
    files: dict[str, bytes] = dict(pictures)
    if args.control is not None:
        spec, files = with_control(spec, config, args.control, args.control_mode, args.control_scale)
    if note := settings.habit_note(parsed):
        print(f"note: {note}", file=sys.stderr)
    output = run_spec(settings, config, spec, files, device=args.device, dtype=args.dtype)
    image = save_output(output, args.output, each=args.each)
    seeds = " ".join(str(seed) for seed in spec.seeds)
    print(f"wrote {args.output} ({image.width}x{image.height}) in {output.elapsed_s:.2f}s")
    print(
        f"seeds: {seeds}   model: {spec.model}   {spec.steps} steps {spec.scheduler}, cfg {spec.guidance:g}"
    )
    return 0


def read_pictures(paths: Sequence[Path]) -> dict[str, bytes]:
    """Image prompts given as files: checked (a picture Pillow opens safely), by their sha256."""
    import hashlib

    from generation.pictures.uploads import open_user_image
    from generation.specs.imagine import MAX_IMAGE_PROMPTS

    if len(paths) > MAX_IMAGE_PROMPTS:
        raise DreamcordError(f"at most {MAX_IMAGE_PROMPTS} --image pictures, got {len(paths)}")
    pictures = {}
    for path in paths:
        if not path.is_file():
            raise DreamcordError(f"picture {path} does not exist")
        data = path.read_bytes()
        open_user_image(data, path.name)
        pictures[hashlib.sha256(data).hexdigest()] = data
    return pictures


def with_control(
    spec: ImagineSpec, config: ModelConfig, path: Path, mode: str, scale: float
) -> tuple[ImagineSpec, dict[str, bytes]]:
    """`spec` steered by the picture at `path` (ControlNet), and that picture's bytes by hash."""
    import hashlib

    from generation.pictures.uploads import open_user_image
    from generation.specs import ControlRef, build_spec, check_control_mode

    if not path.is_file():
        raise DreamcordError(f"control picture {path} does not exist")
    data = path.read_bytes()
    open_user_image(data, path.name)  # a picture Pillow opens safely, or a clear error now
    check_control_mode(spec.model, config.controlnets, mode)
    control = build_spec(ControlRef, image=hashlib.sha256(data).hexdigest(), mode=mode, scale=scale)
    return spec.model_copy(update={"control": control}), {control.image: data}


if __name__ == "__main__":
    sys.exit(main())
