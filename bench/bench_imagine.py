"""Benchmarks for the imagine path, measured side by side in one run (medians, interleaved).

1. Engine overhead: `run_imagine(spec)` vs the raw diffusers call with the same model and arguments.
2. Batching: one batched 4-image call vs four single-image calls (throughput ratio).

    python bench/bench_imagine.py                 # tiny random model, 64 px, 20 steps
    python bench/bench_imagine.py --family sdxl   # the tiny random model in SDXL's (or Flux's) layout
    python bench/bench_imagine.py --model PATH    # any diffusers SD/SDXL folder (e.g. the bundled model)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from generation.config import ModelConfig
from generation.models.loading import LoadedModel, load_model
from generation.models.schedulers import make_scheduler
from generation.models.tiny import save_tiny_model, save_tiny_sdxl_model
from generation.models.tiny_flux import save_tiny_flux_model
from generation.operations.imagine import run_imagine
from generation.prompt import parse_prompt
from generation.specs import ImagineSpec, imagine_spec


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def raw_call(model: LoadedModel, spec: ImagineSpec) -> list[object]:
    """The plain diffusers call a user would write for the same job (no negative prompt: None, which
    SDXL turns into zeros, as dreamcord does)."""
    pipeline = model.pipeline
    pipeline.scheduler = make_scheduler(spec.scheduler, model.scheduler_config)
    # Flux: the T5 length dreamcord uses (512, or less if the tokenizer says so), as a user would pass.
    extra = (
        {"max_sequence_length": min(512, pipeline.tokenizer_2.model_max_length)}
        if model.family.name == "flux"
        else {}
    )
    output = pipeline(
        **extra,
        prompt=spec.prompt,
        negative_prompt=spec.negative_prompt or None,
        num_images_per_prompt=len(spec.seeds),
        width=spec.width,
        height=spec.height,
        num_inference_steps=spec.steps,
        guidance_scale=spec.guidance,
        generator=[torch.Generator("cpu").manual_seed(seed) for seed in spec.seeds],
    )
    return list(output.images)


def interleaved(repeats: int, **contenders: Callable[[], object]) -> dict[str, float]:
    """Median seconds of each contender, run in alternation so drift hits all alike."""
    for function in contenders.values():
        function()  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, function in contenders.items():
            samples[name].append(timed(function))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="diffusers model folder (default: a tiny random model)")
    parser.add_argument(
        "--family", choices=("sd1", "sdxl", "flux"), default="sd1", help="of the tiny random model"
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--size", type=int, help="image side in pixels (default: the model's native)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    save_tiny = {"sd1": save_tiny_model, "sdxl": save_tiny_sdxl_model, "flux": save_tiny_flux_model}[
        args.family
    ]
    source = args.model or str(save_tiny(Path(tempfile.mkdtemp()) / "tiny"))
    # The tiny Flux's configs say no size: its native side is the one asked for (64 by default).
    side = (args.size or 64) if args.family == "flux" and not args.model else None
    model = load_model(
        ModelConfig(name="bench", source=source, steps=args.steps, resolution=side), device="auto"
    )
    spec = imagine_spec(
        parse_prompt("a red circle on a blue background --seed 1"), model.config, model.resolution
    )
    if args.size:
        spec = spec.model_copy(update={"width": args.size, "height": args.size})

    print(
        f"machine: {platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}"
    )
    print(
        f"model: {args.model or f'tiny random ({args.family})'}, {spec.width}x{spec.height}, {spec.steps} steps"
    )

    same = all(
        ours.tobytes() == theirs.tobytes()  # type: ignore[attr-defined]
        for ours, theirs in zip(run_imagine(model, spec).images, raw_call(model, spec), strict=True)
    )
    print(f"same pixels as the raw call: {same}")
    overhead = interleaved(
        args.repeats, ours=lambda: run_imagine(model, spec), raw=lambda: raw_call(model, spec)
    )
    print(
        f"engine overhead: ours {overhead['ours']:.3f}s vs raw diffusers {overhead['raw']:.3f}s "
        f"-> ratio {overhead['ours'] / overhead['raw']:.3f} (target < 1.02)"
    )

    singles = [spec.single(index) for index in range(4)]
    batching = interleaved(
        args.repeats,
        batched=lambda: run_imagine(model, spec),
        singles=lambda: [run_imagine(model, single) for single in singles],
    )
    print(
        f"batching: one 4-image call {batching['batched']:.3f}s vs four single calls {batching['singles']:.3f}s "
        f"-> throughput ratio {batching['singles'] / batching['batched']:.2f}x"
    )


if __name__ == "__main__":
    main()
