"""The bot process never imports torch, diffusers, transformers, peft or OpenCV: they belong to the
workers. Checked in a fresh interpreter where importing any of them fails."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = ("torch", "diffusers", "transformers", "peft", "cv2", "compel")

# Run first in each child interpreter: importing any of HEAVY fails there, naming the module.
REFUSE_HEAVY = textwrap.dedent(
    f"""
    import sys

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {HEAVY!r}:
                raise ImportError("imported " + name)
            return None

    sys.meta_path.insert(0, Refuse())
    """
)

CHECK = REFUSE_HEAVY + textwrap.dedent(
    f"""
    import importlib
    from bot.discord_bot import EXTENSIONS
    for module in ("bot.run", "bot.cli", "bot.jobs", "bot.library", *EXTENSIONS):
        importlib.import_module(module)
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in {HEAVY!r})
    assert not loaded, loaded
    print("ok", len(EXTENSIONS))
    """
)


def test_the_bot_and_every_cog_import_without_torch_diffusers_or_opencv() -> None:
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ok")


BAD_INPUT = REFUSE_HEAVY + textwrap.dedent(
    """
    from bot.cli import main
    codes = [
        main(["imagine", "", "-o", "out.png"]),
        main(["imagine", "a cat --bogus 3", "-o", "out.png"]),
        main(["imagine", "a cat --model nope", "-o", "out.png"]),
        main(["vary", "missing.png", "a cat", "-o", "out.png"]),
        main(["upscale", "missing.png", "-o", "out.png"]),
    ]
    print(codes)
    """
)


def test_the_cli_answers_bad_input_before_importing_torch(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", BAD_INPUT], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[2, 2, 2, 2, 2]", (result.stdout, result.stderr[-2000:])
