"""The deployment files (no Docker engine or systemd here: what they promise is read from them; the
Dockerfile is linted by hadolint in CI, and tests/e2e checks what the image relies on: the stop signal,
the healthcheck command, an unprivileged user with read-only code)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bot.settings import Settings, load_settings
from tests.e2e.test_readme_server import section

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"
DEFAULT_GRACE_S = Settings.model_fields["shutdown_grace_s"].default


def _instructions(dockerfile: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    return [
        line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def test_the_image_runs_unprivileged_with_a_healthcheck_and_one_copy_of_cuda() -> None:
    lines = _instructions((DEPLOY / "Dockerfile").read_text())
    bases = [line for line in lines if line.startswith("FROM") or line.startswith("ARG PYTHON_IMAGE")]
    assert bases and not any("nvidia/cuda" in line for line in bases)  # torch's wheels carry CUDA
    (user,) = [line for line in lines if line.startswith("USER ")]
    assert user.split()[1].split(":")[0] not in ("0", "root")
    assert "STOPSIGNAL SIGTERM" in lines
    (health,) = [line for line in lines if line.startswith("HEALTHCHECK")]
    assert health.endswith('CMD ["dreamcord", "health"]')
    (torch,) = [line for line in lines if "pip install" in line and " torch" in line]
    assert "--constraint constraints.txt" in torch  # the pinned version
    assert all("--constraint constraints.txt" in line for line in lines if "pip install" in line)


def test_compose_starts_without_a_hand_made_file_and_waits_for_running_jobs() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    service = compose["services"]["dreamcord"]
    config = service["environment"]["DREAMCORD_CONFIG"]
    default = re.fullmatch(r"/config/\$\{DREAMCORD_CONFIG_FILE:-(.+)\}", config)
    assert default is not None and (DEPLOY / default.group(1)).is_file()
    assert "./:/config:ro" in service["volumes"]  # mounted read-only
    assert any(volume.endswith(":/models:ro") for volume in service["volumes"])
    grace = int(service["stop_grace_period"].rstrip("s"))
    assert grace > DEFAULT_GRACE_S
    example = load_settings(DEPLOY / default.group(1), env={"DREAMCORD_DATA_DIR": "/data"})
    assert example.default_model in example.models


def test_the_systemd_unit_keeps_state_where_it_may_write_and_stops_gracefully() -> None:
    unit = dict(
        line.split("=", 1) for line in (DEPLOY / "dreamcord.service").read_text().splitlines() if "=" in line
        and not line.startswith("#")
    )  # fmt: skip
    assert unit["StateDirectory"] == "dreamcord"
    assert unit["PrivateTmp"] == "true" and unit["ProtectSystem"] == "strict"
    environment = [
        line
        for line in (DEPLOY / "dreamcord.service").read_text().splitlines()
        if line.startswith("Environment=")
    ]
    assert "Environment=HF_HOME=/var/lib/dreamcord/hf-cache" in environment
    assert "Environment=DREAMCORD_DATA_DIR=/var/lib/dreamcord" in environment
    assert unit["KillSignal"] == "SIGTERM" and unit["KillMode"] == "mixed"  # the workers stop after the bot
    assert int(unit["TimeoutStopSec"]) > DEFAULT_GRACE_S


def test_the_readme_names_deploy_files_that_exist() -> None:
    text = section()
    for path in (
        "deploy/compose.yaml",
        "deploy/dreamcord.service",
        "deploy/dreamcord.example.toml",
        "deploy/models/",
    ):
        assert path in text and (ROOT / path).exists(), path
    assert "docker compose -f deploy/compose.yaml exec dreamcord dreamcord doctor" in text
