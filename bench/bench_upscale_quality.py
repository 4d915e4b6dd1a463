"""Upscale on the bundled model: does a subtle 2x upscale keep what the picture shows, stay near a
plain Lanczos resize, and come out sharper? First stage Lanczos vs the bundled super-resolution
network, each with and without the img2img detail passes, measured on the same pictures in one run.

For each one-shape prompt it renders a picture, asks the evaluator what it shows, upscales it 2x
each way and asks again ("kept": colour and shape as before), and measures the mean distance to the
Lanczos resize (0-255) and sharpness (edge energy, over Lanczos's).

    python bench/bench_upscale_quality.py [--prompts 40] [--model FOLDER] [--evaluator DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import statistics
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from PIL import Image

from generation.bundled import bundled_model_config, evaluator
from generation.bundled.dataset import sample_scene
from generation.bundled.train_upscaler import UPSCALER_DIR, UPSCALER_FILE
from generation.config import upscale_setup
from generation.models.loading import load_model
from generation.operations.imagine import run_imagine
from generation.operations.upscale import run_upscale
from generation.prompt import parse_prompt
from generation.specs import imagine_spec, upscale_spec

SOURCE_HASH = "0" * 64
DETAIL_STRENGTH = 0.2  # img2img detail passes: a real model's subtle upscale


def sharpness(image: Image.Image) -> float:
    """Edge energy: the mean squared step between neighbouring pixels (a blurred edge spreads the same
    total step over more pixels, so its energy is lower)."""
    rgb = np.asarray(image, dtype=np.float64)
    return float((np.diff(rgb, axis=1) ** 2).mean() + (np.diff(rgb, axis=0) ** 2).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument(
        "--model", help="a model folder in the bundled model's layout (default: the bundled model)"
    )
    parser.add_argument("--evaluator", type=Path, default=evaluator.EVALUATOR_DIR, help="its folder")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    config = bundled_model_config()
    if args.model:
        config = dataclasses.replace(config, source=args.model)
    # The bundled config names its network and sets subtle's detail passes to 0: both are what this
    # compares, so each row sets them itself.
    plain = load_model(dataclasses.replace(config, upscaler=None), device="cpu")
    upscaler = str(UPSCALER_DIR / UPSCALER_FILE)
    networked = dataclasses.replace(plain, config=dataclasses.replace(config, upscaler=upscaler), extras={})
    judge = evaluator.load(args.evaluator)
    rng = random.Random(7)
    rows: dict[str, dict[str, list[float]]] = {}
    for index in range(args.prompts):
        scene = sample_scene(rng, max_shapes=1)
        parsed = parse_prompt(f"{scene.caption()} --seed {500 + index}")
        base = imagine_spec(parsed, config, plain.resolution, count=1)
        source = run_imagine(plain, base).images[0]
        lanczos = source.resize((2 * source.width, 2 * source.height), Image.Resampling.LANCZOS)
        (before,) = evaluator.classify(judge, [source])
        for first, model in (("lanczos", plain), ("network", networked)):
            setup = upscale_setup(model.config)
            for detail in (False, True):
                name = f"{first} {'+ detail passes (0.2)' if detail else 'alone'}"
                strengths = {**setup.strengths, "subtle": DETAIL_STRENGTH if detail else 0.0}
                run = upscale_spec(
                    base,
                    SOURCE_HASH,
                    source.size,
                    2,
                    "subtle",
                    plain.resolution,
                    setup=dataclasses.replace(setup, strengths=strengths),
                    seed=1,
                )
                image = run_upscale(model, run, source).images[0]
                (after,) = evaluator.classify(judge, [image])
                row = rows.setdefault(name, {"kept": [], "distance": [], "sharpness": []})
                row["kept"].append(float((after.colour, after.shape) == (before.colour, before.shape)))
                distance = np.abs(np.asarray(image, float) - np.asarray(lanczos, float)).mean()
                row["distance"].append(float(distance))
                row["sharpness"].append(sharpness(image) / sharpness(lanczos))
    side = plain.resolution
    print(f"subtle 2x upscales of {args.prompts} pictures of {config.source} ({side} -> {2 * side} px):")
    print("| first stage | kept colour+shape | distance to Lanczos (0-255) | sharpness / Lanczos |")
    print("| --- | --- | --- | --- |")
    for name, row in rows.items():
        print(
            f"| {name} | {100 * statistics.mean(row['kept']):.0f}% | {statistics.mean(row['distance']):.1f} "
            f"| {statistics.mean(row['sharpness']):.2f} |"
        )


if __name__ == "__main__":
    main()
