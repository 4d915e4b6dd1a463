"""Whether a bundled model folder puts a shape where its prompt says, without an evaluator (a folder
in training has none of its own yet): "a red circle at the {position} on a {background}
background" at the nine positions x four seeds, drawn with the folder's own pipeline, and the red
pixels' centroid read back as the nearest named position. Chance is 4/36. Quick enough to follow a
training run (about a minute a background on 2 cores at 128 px).

    python bench/bench_positions.py generation/bundled/model [--background white blue]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from diffusers import StableDiffusionPipeline

from generation.bundled.dataset import COLOURS, POSITIONS, Background, Scene, Shape, nearest_position

SEEDS = range(4)
RED = np.array(COLOURS["red"], dtype=np.float64)
NEAR_RED = 80  # RGB distance: the drawn circle's pixels, not the background's


def placed(picture: np.ndarray) -> str | None:
    """The named position nearest the red pixels' centroid (None: no red drawn)."""
    red = np.linalg.norm(picture.astype(np.float64) - RED, axis=-1) < NEAR_RED
    if red.sum() < 20:
        return None
    ys, xs = np.nonzero(red)
    return nearest_position((xs.mean() / picture.shape[1], ys.mean() / picture.shape[0]))


def check(pipeline: StableDiffusionPipeline, background: str) -> int:
    hits = 0
    for position in POSITIONS:
        prompt = Scene(
            (Shape("circle", "red", "medium", position),), Background("solid", (background,))
        ).caption()
        pictures = pipeline(
            [prompt] * len(SEEDS),
            num_inference_steps=20,
            guidance_scale=5.0,
            generator=[torch.Generator().manual_seed(seed) for seed in SEEDS],
            output_type="np",
        ).images
        found = [placed((picture * 255).round().astype(np.uint8)) for picture in pictures]
        hits += sum(where == position for where in found)
        print(f"  {position:13s} -> {', '.join(where or '-' for where in found)}")
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--background", nargs="+", default=["white", "blue"])
    args = parser.parse_args()
    pipeline = StableDiffusionPipeline.from_pretrained(
        args.model, torch_dtype=torch.float32, safety_checker=None
    )
    pipeline.set_progress_bar_config(disable=True)
    for background in args.background:
        print(f"{background} background:")
        hits = check(pipeline, background)
        print(f"{background}: {hits}/{len(POSITIONS) * len(SEEDS)} placed where asked (chance {len(SEEDS)})")


if __name__ == "__main__":
    main()
