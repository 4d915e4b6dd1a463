"""Full-size architectures (random weights) through `dreamcord imagine` at their native size, one
step: the shape and memory mistakes tiny models hide (SD 1.5 as a diffusers folder, SDXL base as
one original-layout file read with the shipped configs). Slow: minutes and ~15 GB of RAM."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from generation.models.loading import cpu_computes_half_precision

pytestmark = pytest.mark.slow
# `dreamcord …` that reports its own peak memory when it ends.
_MEASURED_CLI = """
import resource, sys
from bot.cli import main
try:
    sys.exit(main(sys.argv[1:]))
finally:
    print("peak-rss-kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


# SDXL in bf16 where the CPU has bf16 kernels (AVX-512): 13.5 GiB. Where it has AVX2 alone, bf16
# convolutions run ~600x slower (one step passed 30 min), so fp32: 3 min and 20 GiB of RSS, 7 of
# them the file's pages (page cache the kernel can drop, not memory the process holds).
SDXL_DTYPE = "bfloat16" if cpu_computes_half_precision() else "float32"


@pytest.mark.parametrize(
    ("family", "form", "side", "dtype"),
    [("sd1", "folder", 512, "float32"), ("sdxl", "single file", 1024, SDXL_DTYPE)],
)
def test_a_full_size_model_draws_at_its_native_size(
    family: str, form: str, side: int, dtype: str, tmp_path: Path
) -> None:
    source = tmp_path / ("model" if form == "folder" else "model.safetensors")
    # Built in a process of its own: freed memory is not given back to the system, and the model's
    # run below needs it all (SDXL in fp32 is 14 GiB).
    build = f"from tests.generation.original_layout import save_full_size; save_full_size({family!r}, {str(source)!r})"
    subprocess.run([sys.executable, "-c", build], check=True, timeout=1800)
    config = tmp_path / "dreamcord.toml"
    config.write_text(f'default_model = "big"\n[models.big]\nsource = "{source}"\nsteps = 1\n')
    output = tmp_path / "out.png"
    started = time.perf_counter()
    arguments = [
        "--config",
        str(config),
        "imagine",
        "a red fox --cfg 1",
        "-n",
        "1",
        "-o",
        str(output),
        "--dtype",
        dtype,
    ]
    run = subprocess.run(
        [sys.executable, "-c", _MEASURED_CLI, *arguments],
        capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"}, timeout=1800, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    peak_gib = (
        int(run.stderr.rsplit("peak-rss-kib ", 1)[-1].split()[0]) / 2**20
        if "peak-rss-kib" in run.stderr
        else 0
    )
    print(
        f"\n{family} ({form}, {dtype}) at {side} px, one step: {seconds:.0f} s, peak RSS {peak_gib:.1f} GiB"
    )
    assert run.returncode == 0, run.stderr[-2000:]
    with Image.open(output) as picture:
        assert picture.size == (side, side)
