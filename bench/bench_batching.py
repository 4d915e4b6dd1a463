"""Cross-user batching, measured side by side in one run: eight users each ask for one grid at the
same moment; the worker runs them one at a time, or in batches of the model's `batch_images`
pictures (generation.pool.batching decides which jobs may share a call; here all eight may).

Prints throughput (grids per second) and each user's time to result, and the largest pixel
difference between a user's batched pictures and the same job run alone.

    python bench/bench_batching.py                       # bundled model, 128 px, 20 steps, 3 rounds
    python bench/bench_batching.py --full-size --steps 1 --images 1   # SD 1.5's architecture at 512 px
    python bench/bench_batching.py --full-size sdxl --device cuda --steps 20    # on a GPU (bench/gpu.sh)

The full-size UNet, text encoder and VAE have random weights (none can be downloaded here): the
times are the architecture's. On a CPU most of a full-size job is the VAE decode, which a batch
does not make cheaper per picture; a GPU is where batching pays (run bench/gpu.sh there).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the full-size builder lives in tests/

import numpy as np
import torch

from generation.bundled import bundled_model_config
from generation.config import ModelConfig
from generation.outputs import JobOutput
from generation.pool.runner import JobRunner
from generation.specs import ImagineSpec

USERS = 8
THINGS = ["red circle", "blue square", "green star", "yellow triangle", "white circle", "orange star",
          "purple square", "pink triangle"]  # fmt: skip


def specs(model: str, side: int, steps: int, images: int) -> list[ImagineSpec]:
    return [
        ImagineSpec(model=model, prompt=f"a {thing}", seeds=tuple(range(100 * user, 100 * user + images)),
                    width=side, height=side, steps=steps, guidance=7.0)
        for user, thing in enumerate(THINGS[:USERS])
    ]  # fmt: skip


def one_at_a_time(runner: JobRunner, jobs: list[ImagineSpec]) -> tuple[list[float], list[JobOutput]]:
    """Each user's time to result (from the moment all asked) and the outputs."""
    started, done, outputs = time.perf_counter(), [], []
    for spec in jobs:
        outputs.append(runner.run(spec))
        done.append(time.perf_counter() - started)
    return done, outputs


def batched(runner: JobRunner, jobs: list[ImagineSpec], pictures: int) -> tuple[list[float], list[JobOutput]]:
    """The same, in batches of up to `pictures` pictures (consecutive jobs, as the pool takes them)."""
    started, done, outputs = time.perf_counter(), [], []
    batch: list[ImagineSpec] = []
    for spec in [*jobs, None]:
        if spec is None or (batch and sum(len(s.seeds) for s in batch) + len(spec.seeds) > pictures):
            outputs += runner.run_together(batch)
            done += [time.perf_counter() - started] * len(batch)
            batch = []
        if spec is not None:
            batch.append(spec)
    return done, outputs


def largest_difference(ours: list[JobOutput], theirs: list[JobOutput]) -> int:
    worst = 0
    for a, b in zip(ours, theirs, strict=True):
        for image_a, image_b in zip(a.images, b.images, strict=True):
            pixels_a = np.asarray(image_a.image(), dtype=np.int16)
            pixels_b = np.asarray(image_b.image(), dtype=np.int16)
            worst = max(worst, int(np.abs(pixels_a - pixels_b).max()))
    return worst


def full_size_model(folder: Path, family: str) -> ModelConfig:
    """SD 1.5's or SDXL's architecture with random weights in diffusers' layout (the slow tests' builder)."""
    from tests.generation.original_layout import save_full_size

    save_full_size(family, str(folder))
    return ModelConfig(
        name=f"{family}-random", source=str(folder), resolution=512 if family == "sd1" else 1024
    )


def model_arguments(parser: argparse.ArgumentParser) -> None:
    """--full-size [sd1|sdxl], --device, --dtype: what the speed benches run on (bench/gpu.sh)."""
    parser.add_argument(
        "--full-size", nargs="?", const="sd1", choices=["sd1", "sdxl"], help="a full-size architecture"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")


def set_up(args: argparse.Namespace) -> None:
    """Two threads on a CPU (as CI has), and the machine line every speed bench prints first."""
    if args.device == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, threads {torch.get_num_threads()}"
    )


def chosen_model(args: argparse.Namespace, folder: Path) -> ModelConfig:
    """The full-size architecture `--full-size` names (built in `folder`), else the bundled model."""
    return full_size_model(folder / "model", args.full_size) if args.full_size else bundled_model_config()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    model_arguments(parser)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--images", type=int, default=4, help="pictures per user (4: a grid)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    set_up(args)
    with tempfile.TemporaryDirectory() as folder:
        config = chosen_model(args, Path(folder))
        side = config.resolution or 64
        runner = JobRunner({config.name: config}, device=args.device, dtype=args.dtype)
        jobs = specs(config.name, side, args.steps, args.images)
        runner.run(jobs[0])  # warm: the model is loaded before anything is timed
        limits = sorted({8, USERS * args.images}) if args.images * 2 <= 8 else [USERS * args.images]
        times: dict[str, list[list[float]]] = {"one at a time": []} | {f"batches of {n}": [] for n in limits}
        alone: list[JobOutput] = []
        worst = 0
        for _ in range(args.rounds):  # interleaved: each contender once per round
            done, alone = one_at_a_time(runner, jobs)
            times["one at a time"].append(done)
            for limit in limits:
                done, together = batched(runner, jobs, limit)
                times[f"batches of {limit}"].append(done)
                worst = max(worst, largest_difference(together, alone))
    print(
        f"\n{USERS} users x {args.images} picture(s), {side} px, {args.steps} steps, {config.name}, medians of {args.rounds}"
    )
    print("| run | all eight done | throughput vs one at a time | a user's mean time to result |")
    print("| --- | --- | --- | --- |")
    base = statistics.median(max(done) for done in times["one at a time"])
    for label, rounds in times.items():
        total = statistics.median(max(done) for done in rounds)
        mean = statistics.median(statistics.mean(done) for done in rounds)
        print(f"| {label} | {total:.2f} s | {base / total:.2f}x | {mean:.2f} s |")
    print(f"\nlargest pixel difference, batched vs alone: {worst}/255")


if __name__ == "__main__":
    main()
