"""What the picture operations promise, on the bundled model (or another folder): issue 22's table.

Vary strength should be monotone (subtle < strong < 1.0 in mean change from the source, with the
picture's own prompt, one that leaves the layout open), --chaos monotone in how different a grid's
pictures are, the seams of Vary (Region), Zoom Out and Make Square invisible (change across the
repainted outline close to the picture's own texture: near 0), --tile pictures still showing the
prompt's subject and joining at their wrap, four seeds of a prompt without a position spread over
the picture, and no corner or edge with a mark of its own.

    python bench/bench_bundled_operations.py [--scenes 24] [--model generation/bundled/model] [--evaluator DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.operation_checks

import torch

from bench import operation_checks as checks
from generation.bundled import bundled_model_config, evaluator
from generation.models.loading import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=24)
    parser.add_argument(
        "--model", help="a model folder in the bundled model's layout (default: the bundled model)"
    )
    parser.add_argument(
        "--evaluator", type=Path, default=evaluator.EVALUATOR_DIR, help="its folder (evaluator.py --out)"
    )
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    config = bundled_model_config()
    if args.model:
        config = dataclasses.replace(config, source=args.model)
    model = load_model(config, device="cpu")
    scenes = checks.one_shape_scenes(args.scenes)
    print(f"model: {config.source} ({model.resolution} px), {args.scenes} one-shape scenes per row")
    vary = checks.vary_changes(model, scenes)
    print("vary, mean change from the source (0-255):", ", ".join(f"{s:g}: {c:.1f}" for s, c in vary.items()))
    chaos = checks.chaos_diversity(model, scenes)
    print(
        "chaos, mean change between a grid's pictures:", ", ".join(f"{c}: {d:.1f}" for c, d in chaos.items())
    )
    print(f"seam excess, Vary (Region): {checks.region_seams(model, scenes):.1f}")
    seams = checks.outpaint_seams(model, scenes)
    print(
        f"seam excess, Zoom Out 1.5x: {seams['zoom']:.1f}, Make Square of a 2:1 crop: {seams['square']:.1f}"
    )
    tile = checks.tile_verdicts(model, evaluator.load(args.evaluator), scenes)
    print(
        f"--tile: colour {100 * tile.colour:.0f}%, shape {100 * tile.shape:.0f}% as the prompt says;"
        f" seam excess across the wrap {tile.seam:.1f}"
    )
    print(
        f"layout spread of an open prompt's four seeds: {checks.layout_spread(model, scenes):.2f} of the side"
    )
    print(
        "corner and edge marks (a corner's 3x3 pixels, an edge's last 3 lines, against the mean colour"
        " just inside them, 0-255):"
    )
    for label, open_layout in (("small centred shapes", False), ("medium shapes, place left open", True)):
        marks = checks.frame_marks(model, open_layout=open_layout)
        print(f"  {label}:", ", ".join(f"{k} {v:.1f}" for k, v in marks.items()))


if __name__ == "__main__":
    main()
