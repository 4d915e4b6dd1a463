"""What the container image relies on, checked outside a container: `dreamcord run` as a user without
privileges, with the code read-only and only its data folder writable, serves a job and stops cleanly.

The run happens in a private mount namespace (unshare), where the repository is remounted read-only and
the interpreter's installation is made reachable for that user; then setpriv drops to uid 65534. Where
namespaces or root are not available the test is skipped, saying why."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.processes import (
    ROOT,
    Dreamcord,
    free_port,
    imagine_and_wait_until_running,
    result_buttons,
)
from tests.fakediscord.server import FakeDiscord

pytestmark = pytest.mark.asyncio(loop_scope="module")
NOBODY = 65534


def _blocking_ancestor(path: Path) -> Path | None:
    """The first folder above `path` that other users cannot enter (e.g. /root for a pyenv Python)."""
    for folder in reversed(path.parents):
        if not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


def unprivileged_wrapper() -> list[str]:
    """A command prefix that runs its arguments as uid 65534 with the repository read-only."""
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")):
        pytest.skip("needs root, unshare and setpriv to switch to an unprivileged user")
    python_home = Path(sys.base_prefix).resolve()
    blocked = _blocking_ancestor(python_home / "bin")
    steps = ["set -eu"]
    if blocked is not None:
        if blocked in ROOT.parents or blocked == ROOT:
            pytest.skip(f"the repository is inside {blocked}, which other users cannot enter")
        stash = tempfile.mkdtemp(prefix="python-home-")
        steps += [
            f"mount --bind {shlex.quote(str(python_home))} {shlex.quote(stash)}",
            f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(str(blocked))}",  # only in this namespace
            f"mkdir -p {shlex.quote(str(python_home))}",
            f"mount --bind {shlex.quote(stash)} {shlex.quote(str(python_home))}",
        ]
    steps += [
        f"mount --bind {shlex.quote(str(ROOT))} {shlex.quote(str(ROOT))}",
        f"mount -o remount,bind,ro {shlex.quote(str(ROOT))}",
        f'exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- "$@"',
    ]
    probe = ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(steps), "sh"]
    check = subprocess.run([*probe, sys.executable, "-c", "import torch"], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip(f"cannot run Python as an unprivileged user here: {check.stderr.strip()[-200:]}")
    return probe


@pytest.fixture
def data_folder() -> Iterator[Path]:
    """A data folder only the unprivileged user may write (as the image's /data volume)."""
    folder = Path(tempfile.mkdtemp(prefix="dreamcord-data-"))
    os.chown(folder, NOBODY, NOBODY)
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


async def test_run_as_an_unprivileged_user_with_read_only_code(
    bare_fake: FakeDiscord, data_folder: Path
) -> None:
    wrapper = unprivileged_wrapper()
    config = data_folder / "dreamcord.toml"
    config.write_text(  # the bundled model, as a container started without a config serves
        f'data_dir = "{data_folder / "state"}"\ndevice = "cpu"\ntraining_devices = []\n'
        f"shutdown_grace_s = 60\nhealth_port = {free_port()}\n",
        encoding="utf-8",
    )
    env = {"HOME": str(data_folder), "HF_HOME": str(data_folder / "hf-cache"), "PYTHONDONTWRITEBYTECODE": "1"}
    dreamcord = await Dreamcord.start(bare_fake, config, wrapper=wrapper, env=env)
    await dreamcord.online(bare_fake)
    await imagine_and_wait_until_running(bare_fake, bare_fake.add_user("carol"))
    assert await dreamcord.stop() == 0, dreamcord.output
    assert len(result_buttons(bare_fake)) == 1
    assert (data_folder / "state" / "dreamcord.db").stat().st_uid == NOBODY  # it wrote where it may
    problems = [line for line in dreamcord.output.splitlines() if " ERROR " in line or "Traceback" in line]
    assert problems == [], dreamcord.output
