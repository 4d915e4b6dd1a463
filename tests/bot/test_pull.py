"""`dreamcord pull`: which downloads a config asks for (no network here: the download functions are
replaced by recorders; what they are given is what the test checks)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from huggingface_hub.errors import RepositoryNotFoundError

from bot import pull
from bot.cli import main


def _config(tmp_path: Path, offline: bool = False) -> Path:
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "model_index.json").write_text("{}")
    config = tmp_path / "dreamcord.toml"
    config.write_text(
        f"offline = {str(offline).lower()}\n"
        '[models.xl]\nsource = "stabilityai/stable-diffusion-xl-base-1.0"\nvae = "madebyollin/sdxl-vae-fp16-fix"\n'
        '[models.xl.controlnets]\ncanny = "diffusers/controlnet-canny-sdxl-1.0"\n'
        '[models.flux]\nsource = "black-forest-labs/FLUX.1-dev"\nfill = "black-forest-labs/FLUX.1-Fill-dev"\n'
        '[models.again]\nsource = "stabilityai/stable-diffusion-xl-base-1.0"\n'
        f'[models.mine]\nsource = "{tmp_path / "local"}"\n'
    )
    return config


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the tests' default; a pull needs the hub
    calls: list[tuple[str, Any]] = []
    import diffusers
    import huggingface_hub

    monkeypatch.setattr(
        diffusers.DiffusionPipeline, "download", lambda repo, **kw: calls.append((repo, None))
    )
    monkeypatch.setattr(
        huggingface_hub,
        "snapshot_download",
        lambda repo, allow_patterns: calls.append((repo, allow_patterns)),
    )
    return calls


def test_every_hub_model_and_part_is_fetched_once_and_local_ones_not_at_all(
    tmp_path: Path, downloads: list[tuple[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(_config(tmp_path)), "pull"]) == 0
    assert downloads == [
        ("stabilityai/stable-diffusion-xl-base-1.0", None),  # once, though two models use it
        ("black-forest-labs/FLUX.1-dev", None),
        ("black-forest-labs/FLUX.1-Fill-dev", pull.FILL_FILES),  # its transformer only
        ("madebyollin/sdxl-vae-fp16-fix", pull.PART_FILES),
        ("diffusers/controlnet-canny-sdxl-1.0", pull.PART_FILES),
    ]
    assert "5 download(s) complete" in capsys.readouterr().out


def test_a_flux_files_base_is_fetched_without_its_transformer_unless_a_model_runs_it_whole(
    tmp_path: Path, downloads: list[tuple[str, Any]]
) -> None:
    (tmp_path / "flux.safetensors").write_bytes(b"")
    config = tmp_path / "dreamcord.toml"
    config.write_text(
        '[models.a]\nsource = "flux.safetensors"\nbase = "black-forest-labs/FLUX.1-schnell"\n'
        '[models.b]\nsource = "flux.safetensors"\nbase = "black-forest-labs/FLUX.1-dev"\n'
        '[models.c]\nsource = "black-forest-labs/FLUX.1-dev"\n'
    )
    assert main(["--config", str(config), "pull"]) == 0
    assert downloads == [
        ("black-forest-labs/FLUX.1-schnell", pull.BASE_FILES),
        ("black-forest-labs/FLUX.1-dev", None),  # model c runs it whole
    ]
    assert not any("transformer/*" in pattern for pattern in pull.BASE_FILES)


def test_offline_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(_config(tmp_path, offline=True)), "pull"]) == 2
    assert capsys.readouterr().err.strip() == (
        "dreamcord: offline is set (HF_HUB_OFFLINE): unset it to download models"
    )


def test_a_repository_that_is_not_there_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import diffusers

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def missing(repo: str, **options: object) -> None:
        raise RepositoryNotFoundError("404 Client Error", response=SimpleNamespace(headers={}, request=None))  # type: ignore[arg-type]

    monkeypatch.setattr(diffusers.DiffusionPipeline, "download", missing)
    assert main(["--config", str(_config(tmp_path)), "pull"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "stabilityai/stable-diffusion-xl-base-1.0 is not on the Hugging Face hub, or is private (set HF_TOKEN)"
        )
    )


def test_nothing_to_download(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text("")
    assert main(["--config", str(config), "pull"]) == 0
    assert "nothing to download" in capsys.readouterr().out
