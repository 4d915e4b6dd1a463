"""Fixtures of the bot tests: a settings file naming the tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def config_file(tmp_path: Path, tiny_model_dir: Path) -> Path:
    path = tmp_path / "dreamcord.toml"
    path.write_text(
        f'default_model = "tiny"\ndevice = "cpu"\n[models.tiny]\nsource = "{tiny_model_dir}"\nsteps = 3\n'
    )
    return path
