"""Picture operations on the bundled model: how long each takes next to /imagine, and how much
memory a tiled upscale needs next to redrawing the whole picture at once.

Part 1 times, in one process and one after another: a 4-picture imagine, vary subtle / strong /
region, zoom out 2x, pan left, and upscales 2x and 4x (img2img method), each twice (the first call
warms up; the second is reported).

Part 2 runs the same img2img detail pass over an upscaled picture in a fresh process per variant:
tiled (native-size tiles in batches of 4, as dreamcord does) vs untiled (the whole picture in one
img2img call), and reports each one's peak RSS above the loaded model, and its time.

    python bench/bench_operations.py [--sizes 256 512]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image

from generation.bundled import bundled_model_config
from generation.models.loading import LoadedModel, load_model
from generation.operations.imagine import ImagineResult, run_imagine
from generation.operations.inpaint import run_outpaint
from generation.operations.upscale import run_upscale, tile_prompting
from generation.operations.vary import run_vary
from generation.specs import (
    STRONG_STRENGTH,
    SUBTLE_STRENGTH,
    ImagineSpec,
    RegionBox,
    UpscaleSpec,
    outpaint_spec,
    upscale_spec,
    vary_spec,
)

SOURCE = "0" * 64  # the operations take the picture itself; the hash only names it
BASE = ImagineSpec(
    model="bundled",
    prompt="a large red circle in the centre on a blue background",
    seeds=(1, 2, 3, 4),
    width=64,
    height=64,
    steps=20,
    guidance=5.0,
)


def timed(run: Callable[[], ImagineResult]) -> float:
    run()  # warm-up: first-call allocations, derived pipelines
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def operation_times(model: LoadedModel) -> list[tuple[str, float, str]]:
    picture = run_imagine(model, BASE).images[0]
    size, res = picture.size, model.resolution
    box = RegionBox(left=0.25, top=0.25, right=0.75, bottom=0.75)
    operations: dict[str, tuple[Callable[[], ImagineResult], str]] = {
        "imagine (4 pictures)": (lambda: run_imagine(model, BASE), "64x64, 20 steps"),
        "vary subtle": (
            lambda: run_vary(model, vary_spec(BASE, SOURCE, size, res, SUBTLE_STRENGTH, seed=5), picture),
            "7 of 20 steps",
        ),
        "vary strong": (
            lambda: run_vary(model, vary_spec(BASE, SOURCE, size, res, STRONG_STRENGTH, seed=5), picture),
            "14 of 20 steps",
        ),
        "vary region (box)": (
            lambda: run_vary(model, vary_spec(BASE, SOURCE, size, res, 1.0, box=box, seed=5), picture),
            "20 steps, inpaint",
        ),
        "zoom out 2x": (
            lambda: run_outpaint(model, outpaint_spec(BASE, SOURCE, size, "zoom", res, seed=5), picture),
            "64x64, inpaint",
        ),
        "pan left": (
            lambda: run_outpaint(model, outpaint_spec(BASE, SOURCE, size, "pan-left", res, seed=5), picture),
            "96x64, inpaint",
        ),
        "upscale 2x (1 picture)": (
            lambda: run_upscale(model, upscale_spec(BASE, SOURCE, size, 2, "subtle", res, seed=5), picture),
            "128x128, 4 tiles",
        ),
        "upscale 4x (1 picture)": (
            lambda: run_upscale(model, upscale_spec(BASE, SOURCE, size, 4, "subtle", res, seed=5), picture),
            "256x256, 25 tiles",
        ),
    }
    return [(name, timed(run), note) for name, (run, note) in operations.items()]


def detail_pass_in_this_process(side: int, tiled: bool) -> dict[str, float]:
    model = load_model(bundled_model_config(), device="cpu")
    picture = run_imagine(model, BASE.single(0)).images[0]
    spec = upscale_spec(BASE, SOURCE, picture.size, 4, "subtle", model.resolution, seed=5)
    spec = spec.model_copy(update={"width": side, "height": side})
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    if tiled:
        run_upscale(model, spec, picture)
    else:
        untiled_detail_pass(model, spec, picture)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_mib": peak / 1024, "peak_above_model_mib": (peak - baseline) / 1024, "seconds": elapsed}


def untiled_detail_pass(model: LoadedModel, spec: UpscaleSpec, picture: Image.Image) -> None:
    """What tiling avoids: one img2img call over the whole upscaled picture."""
    pipeline = model.derive(StableDiffusionImg2ImgPipeline)
    whole = picture.resize((spec.width, spec.height), Image.Resampling.LANCZOS)
    prompt: dict[str, Any] = tile_prompting(spec)
    pipeline(
        prompt=prompt["prompt"],
        image=whole,
        strength=spec.strength,
        num_inference_steps=spec.steps,
        guidance_scale=prompt.get("guidance", spec.guidance),
        generator=torch.Generator("cpu").manual_seed(spec.seeds[0]),
    )


def in_fresh_process(side: int, tiled: bool) -> dict[str, float]:
    command = [sys.executable, __file__, "--one", str(side), "tiled" if tiled else "untiled"]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.one:
        print(json.dumps(detail_pass_in_this_process(int(args.one[0]), args.one[1] == "tiled")))
        return
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 2 threads, CPU\n")
    model = load_model(bundled_model_config(), device="cpu")
    times = operation_times(model)
    imagine_s = times[0][1]
    print("| operation | what | time | vs imagine |\n| --- | --- | --- | --- |")
    for name, seconds, note in times:
        print(f"| {name} | {note} | {seconds * 1000:.0f} ms | {seconds / imagine_s:.2f}x |")
    print(
        "\n| output side | tiled: peak RSS (above model) | untiled: peak RSS (above model) | tiled time | untiled time |"
    )
    print("| --- | --- | --- | --- | --- |")
    for side in args.sizes:
        tiled, untiled = in_fresh_process(side, True), in_fresh_process(side, False)
        print(
            f"| {side} | {tiled['peak_mib']:.0f} MiB ({tiled['peak_above_model_mib']:.0f}) | "
            f"{untiled['peak_mib']:.0f} MiB ({untiled['peak_above_model_mib']:.0f}) | "
            f"{tiled['seconds']:.2f} s | {untiled['seconds']:.2f} s |"
        )


if __name__ == "__main__":
    main()
