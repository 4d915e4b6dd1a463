"""`dreamcord vary|upscale|outpaint` on a picture file, in-process through `main()` on the tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.cli import main


def _read(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    image = Image.new("RGB", (96, 64), (30, 60, 200))
    image.paste((220, 40, 40), (32, 16, 64, 48))
    image.save(path)
    return path


def run(config: Path, *args: str) -> int:
    return main(["--config", str(config), *args])


def test_vary_writes_a_grid_and_a_region_vary_keeps_the_rest(
    config_file: Path,
    picture: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "vary.png"
    assert (
        run(
            config_file, "vary", str(picture), "a red square --seed 4", "--strength", "subtle", "-o", str(out)
        )
        == 0
    )
    assert _read(out).size == (192, 128) and "seeds: 4 5 6 7" in capsys.readouterr().out
    region = tmp_path / "region.png"
    assert run(config_file, "vary", str(picture), "a cat", "--region", "0,0,25,100", "-o", str(region)) == 0
    first = _read(region).crop((0, 0, 96, 64))
    right = np.asarray(first)[:, 64:]  # beyond the box (24 px) and its blend ramp (16 px)
    assert np.array_equal(right, np.asarray(_read(picture))[:, 64:])


def test_upscale_and_outpaint_write_pictures_of_the_planned_size(
    config_file: Path,
    picture: Path,
    tmp_path: Path,
) -> None:
    up = tmp_path / "up.png"
    assert run(config_file, "upscale", str(picture), "--factor", "2", "-o", str(up)) == 0
    assert _read(up).size == (192, 128)
    out = tmp_path / "pan.png"
    assert run(config_file, "outpaint", str(picture), "a wall --seed 1", "pan-up", "-o", str(out)) == 0
    assert _read(out).size == (192, 192)  # four 96x96 pictures: 64 px tall + half of it


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["vary", "{tmp}/nothere.png", "a cat", "-o", "{tmp}/x.png"], "does not exist"),
        (["vary", "{in}", "a cat", "--strength", "wild", "-o", "{tmp}/x.png"], "--strength must be"),
        (["vary", "{in}", "a cat", "--region", "1,2,3", "-o", "{tmp}/x.png"], "four percentages"),
        (["upscale", "{tmp}/notes.png", "-o", "{tmp}/x.png"], "notes.png is not an image"),
        (["outpaint", "{in}", "a cat", "zoom", "--zoom", "9", "-o", "{tmp}/x.png"], "zoom must be between"),
        (["outpaint", "{in}", "a cat", "aspect", "-o", "{tmp}/x.png"], "needs a ratio"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(
    config_file: Path,
    picture: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    fragment: str,
) -> None:
    (tmp_path / "notes.png").write_text("not a picture")
    args = [arg.replace("{tmp}", str(tmp_path)).replace("{in}", str(picture)) for arg in args]
    assert run(config_file, *args) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.startswith("dreamcord: ")


def test_imagine_with_a_control_picture(
    tmp_path: Path, tiny_model_dir: Path, tiny_controlnet_dir: Path, picture: Path
) -> None:
    config = tmp_path / "control.toml"
    config.write_text(
        f'default_model = "tiny"\ndevice = "cpu"\n[models.tiny]\nsource = "{tiny_model_dir}"\nsteps = 3\n'
        f'[models.tiny.controlnets]\ncanny = "{tiny_controlnet_dir}"\n'
    )
    plain, steered = tmp_path / "plain.png", tmp_path / "steered.png"
    assert run(config, "imagine", "a box --seed 2", "-n", "1", "-o", str(plain)) == 0
    assert (
        run(config, "imagine", "a box --seed 2", "-n", "1", "--control", str(picture), "-o", str(steered))
        == 0
    )
    assert _read(plain).size == _read(steered).size and _read(plain).tobytes() != _read(steered).tobytes()
    assert (
        run(
            config, "imagine", "a box", "--control", str(picture), "--control-mode", "depth", "-o", str(plain)
        )
        == 2
    )


def test_describe_prints_four_numbered_prompts_and_refuses_a_model_without_a_describer(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from generation.bundled.dataset import Background, Scene, Shape

    path = tmp_path / "circle.png"
    Scene((Shape("circle", "red", "large", "centre"),), Background("solid", ("blue",))).render().save(path)
    assert run(config_file, "describe", str(path), "--model", "bundled") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "1. a red circle on a blue background" and [line[:3] for line in lines] == [
        "1. ", "2. ", "3. ", "4. "
    ]  # fmt: skip
    assert run(config_file, "describe", str(path), "--model", "tiny") == 2
    assert "model 'tiny' has no describer configured" in capsys.readouterr().err
