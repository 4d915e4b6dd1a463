"""--turbo against the normal mode on the bundled model, side by side in one run: time per grid
and the evaluator's agreement with the prompt (colour and shape) over the same prompts and seeds.

    python bench/bench_turbo.py --prompts 100
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import torch
from bench_bundled import evaluation_scenes

from generation.bundled import bundled_model_config, evaluator
from generation.models.loading import load_model
from generation.operations.imagine import run_imagine
from generation.prompt import parse_prompt
from generation.specs import imagine_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    model = load_model(bundled_model_config(), device="cpu")
    judge = evaluator.load()
    scenes = evaluation_scenes(args.prompts, held_out=False, seed=7)
    modes = {"normal": "", "turbo": " --turbo"}
    pictures: dict[str, list[object]] = {mode: [] for mode in modes}
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    for index, scene in enumerate(scenes):  # interleaved: both modes on each prompt in turn
        for mode, flag in modes.items():
            spec = imagine_spec(
                parse_prompt(f"{scene.caption()} --seed {1000 + index}{flag}"), model.config, 64
            )
            started = time.perf_counter()
            result = run_imagine(model, spec)  # a whole grid, as a user gets it
            seconds[mode].append(time.perf_counter() - started)
            pictures[mode].append(result.images[0])
    print(f"\n{args.prompts} one-shape prompts, a 2x2 grid each, the first picture judged")
    print(
        "| mode | steps, sampler | grid time (median) | speed-up | colour | shape |\n| --- | --- | --- | --- | --- | --- |"
    )
    normal = statistics.median(seconds["normal"])
    for mode, flag in modes.items():
        spec = imagine_spec(parse_prompt(f"a red circle{flag}"), model.config, 64)
        verdicts = evaluator.classify(judge, pictures[mode])  # type: ignore[arg-type]
        colour = sum(v.colour == s.shapes[0].colour for v, s in zip(verdicts, scenes, strict=True)) / len(
            scenes
        )
        shape = sum(v.shape == s.shapes[0].shape for v, s in zip(verdicts, scenes, strict=True)) / len(scenes)
        median = statistics.median(seconds[mode])
        print(
            f"| {mode} | {spec.steps}, {spec.scheduler} | {median:.3f} s | {normal / median:.2f}x | {colour:.0%} | {shape:.0%} |"
        )


if __name__ == "__main__":
    main()
