"""The CLI, run in-process through `main()` on the tiny model."""

from __future__ import annotations

import hashlib
import logging
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.cli import log_level, main
from bot.settings import Settings
from generation.config import ModelConfig
from generation.pictures.provenance import parameters_of, read_chunks
from generation.specs import spec_from_json
from storage.db import MIGRATIONS_DIR


def _read(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.copy()


def test_imagine_writes_a_grid_and_prints_seeds(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "grid.png"
    code = main(
        [
            "--config",
            str(config_file),
            "imagine",
            "a red circle --seed 9",
            "--ar",
            "3:2",
            "-o",
            str(output),
            "--each",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert _read(output).size == (144, 96)
    assert "seeds: 9 10 11 12" in captured.out
    assert "3/3" in captured.err  # the progress bar reached the last step
    tiles = [_read(tmp_path / f"grid_{i}.png") for i in range(1, 5)]
    assert all(tile.size == (72, 48) for tile in tiles)
    assert np.array_equal(np.asarray(_read(output).crop((72, 0, 144, 48))), np.asarray(tiles[1]))


def test_count_one_writes_a_single_image(config_file: Path, tmp_path: Path) -> None:
    output = tmp_path / "one.webp"
    assert main(["--config", str(config_file), "imagine", "a cat", "-n", "1", "-o", str(output)]) == 0
    assert _read(output).size == (64, 64)


def test_a_cli_png_carries_the_same_provenance_as_the_bots(config_file: Path, tmp_path: Path) -> None:
    """The CLI runs its spec through the bot's runner: the PNG holds the spec and A1111's parameters."""
    output = tmp_path / "one.png"
    args = ["--config", str(config_file), "imagine", "a cat --seed 7", "-n", "1", "-o", str(output)]
    assert main(args) == 0
    chunks = read_chunks(output.read_bytes())
    assert spec_from_json(chunks["dreamcord"]).seeds == (7,)  # type: ignore[union-attr]
    assert "Seed: 7" in chunks["parameters"] and chunks["parameters"].startswith("a cat")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["imagine", "", "-o", "{tmp}/x.png"], "prompt is empty"),
        (["imagine", "a cat --ar 100:1", "-o", "{tmp}/x.png"], "--ar"),
        (["imagine", "a cat", "--steps", "-5", "-o", "{tmp}/x.png"], "--steps"),
        (["imagine", "a cat --wat", "-o", "{tmp}/x.png"], "unknown flag --wat"),
        (["imagine", "a cat --model nothere", "-o", "{tmp}/x.png"], "unknown model 'nothere'"),
        (["imagine", "a cat", "-o", "{tmp}/missing/x.png"], "does not exist"),
        (["imagine", "a cat", "-o", "{tmp}/x.txt2"], "unknown image type"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    assert main(["--config", str(config_file), *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.startswith("dreamcord: ")


def test_unknown_scheduler_is_an_argparse_error(config_file: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        main(
            [
                "--config",
                str(config_file),
                "imagine",
                "a cat",
                "--scheduler",
                "plms",
                "-o",
                str(tmp_path / "x.png"),
            ]
        )
    assert caught.value.code == 2


def test_missing_model_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'default_model = "gone"\n[models.gone]\nsource = "{tmp_path / "nope"}"\n')
    assert main(["--config", str(config), "imagine", "a cat", "-o", str(tmp_path / "x.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_models_lists_configured_models_with_their_family(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from generation.models.tiny import save_tiny_sdxl_model

    xl = save_tiny_sdxl_model(tmp_path / "xl")
    config_file.write_text(config_file.read_text() + f'[models.xl]\nsource = "{xl}"\n')
    assert main(["--config", str(config_file), "models"]) == 0
    out = capsys.readouterr().out
    assert "* tiny" in out and "[local, SD 1.x/2.x]" in out and "bundled" in out
    assert "xl " in out and "[local, SDXL]" in out


def test_a_single_file_checkpoint_runs_through_the_config_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.generation.original_layout import conventional_tiny_sdxl, save_single_file

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "ckpt").mkdir()
    save_single_file(conventional_tiny_sdxl(), tmp_path / "ckpt" / "xl.safetensors")
    config = tmp_path / "c.toml"
    config.write_text(
        'default_model = "xl"\n[models.xl]\nsource = "ckpt/xl.safetensors"\nresolution = 64\nsteps = 2\n'
        '[models.gone]\nsource = "ckpt/gone.safetensors"\n'
    )
    assert main(["--config", str(config), "models"]) == 0
    out = capsys.readouterr().out
    assert "[single file, SDXL]" in out and "gone" in out and "[missing]" in out
    assert main(["--config", str(config), "imagine", "a red cat", "-o", str(tmp_path / "x.jpg")]) == 0
    with Image.open(tmp_path / "x.jpg") as grid:
        assert grid.size == (128, 128)  # the 2x2 grid of 64-px pictures
    model_hash = hashlib.sha256((tmp_path / "ckpt" / "xl.safetensors").read_bytes()).hexdigest()[:10]
    infotext = parameters_of((tmp_path / "x.jpg").read_bytes())  # from EXIF, as A1111 writes a JPEG
    assert infotext is not None and infotext.startswith("a red cat\n")
    assert f"Model hash: {model_hash}, Model: xl," in infotext


def test_db_upgrade_then_downgrade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    assert (tmp_path / "data" / "dreamcord.db").is_file()
    newest = max(p.name[:4] for p in (MIGRATIONS_DIR / "versions").glob("0*.py"))
    assert f"database at revision {newest}" in capsys.readouterr().out
    assert main(["--config", str(config), "db", "downgrade", "0001"]) == 0
    assert "database at revision 0001" in capsys.readouterr().out
    assert main(["--config", str(config), "db", "downgrade"]) == 0
    assert "database at revision none (empty)" in capsys.readouterr().out


def test_run_without_a_token_exits_2_and_says_where_it_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    config = tmp_path / "c.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    assert main(["--config", str(config), "run"]) == 2
    assert "DISCORD_TOKEN is not set" in capsys.readouterr().err


def test_version_and_a_help_that_ends_its_sentences(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as version:
        main(["--version"])
    assert version.value.code == 0
    assert capsys.readouterr().out.strip() == f"dreamcord {metadata.version('dreamcord')}"
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "runs Stable Diffusion on your own GPUs." in shown
    assert "exit codes: 0 done, 2 bad input" in shown


@pytest.mark.parametrize(
    ("verbose", "command", "configured", "expected"),
    [
        (0, "run", "info", logging.INFO),
        (0, "run", "warning", logging.WARNING),
        (0, "imagine", "info", logging.WARNING),  # the CLI's output is its result
        (1, "imagine", "info", logging.INFO),
        (1, "run", "debug", logging.DEBUG),
        (2, "run", "error", logging.DEBUG),
    ],
)
def test_the_log_level_comes_from_v_or_the_settings(
    verbose: int, command: str, configured: str, expected: int, tmp_path: Path
) -> None:
    settings = Settings(models={"tiny": ModelConfig(name="tiny", source=str(tmp_path))}, default_model="tiny",
                        log_level=configured)  # type: ignore[arg-type]  # fmt: skip
    assert log_level(verbose, command, settings) == expected


def test_a_pasted_midjourney_prompt_runs_with_a_note(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "one.png"
    argv = [
        "--config",
        str(config_file),
        "imagine",
        "a red circle --v 6 --s 250 --steps 2",
        "-n",
        "1",
        "-o",
        str(output),
    ]
    assert main(argv) == 0
    assert output.is_file()
    assert "note: --v 6, --s 250: Midjourney options with no effect here" in capsys.readouterr().err


def test_imagine_takes_pictures_that_prompt_where_the_model_has_an_ip_adapter(
    tmp_path: Path, tiny_model_dir: Path, tiny_config: ModelConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    from generation.models.loading import load_model
    from generation.models.tiny import TINY_IP_ADAPTER_FILE, save_tiny_ip_adapter

    adapter = save_tiny_ip_adapter(tmp_path / "ip", load_model(tiny_config, device="cpu").pipeline.unet)
    base = f'default_model = "tiny"\ndevice = "cpu"\n[models.tiny]\nsource = "{tiny_model_dir}"\nsteps = 2\n'
    plain, adapted = tmp_path / "plain.toml", tmp_path / "adapted.toml"
    plain.write_text(base)
    adapted.write_text(
        base + f'[models.tiny.ip_adapter]\nsource = "{adapter}"\nweight_name = "{TINY_IP_ADAPTER_FILE}"\n'
    )
    picture = tmp_path / "red.png"
    Image.new("RGB", (48, 48), (220, 20, 20)).save(picture)
    out = tmp_path / "out.png"
    common = ["imagine", "a photo of a cat --seed 2", "-o", str(out), "--count", "1"]
    assert main(["--config", str(plain), *common, "--image", str(picture)]) == 2
    assert "has no IP-Adapter configured" in capsys.readouterr().err
    assert main(["--config", str(adapted), "imagine", "a cat --iw 2", "-o", str(out)]) == 2
    assert "--iw needs a picture" in capsys.readouterr().err
    assert main(["--config", str(adapted), *common]) == 0
    alone = np.asarray(Image.open(out).convert("RGB"), dtype=np.int16)
    assert main(["--config", str(adapted), *common, "--image", str(picture), "--iw", "1.5"]) == 0
    steered = np.asarray(Image.open(out).convert("RGB"), dtype=np.int16)
    assert np.abs(alone - steered).mean() > 0.5
