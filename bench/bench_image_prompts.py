"""Image prompts on the bundled model (its own IP-Adapter, generation/bundled/ip_adapter), measured
by its evaluator, each figure side by side with its baseline in one run:

- a picture of one coloured shape as the image prompt, with the text "a shape": how often the result
  has the picture's colour and shape (issue 20's bar: 70 of 100), against the text alone (chance);
- /blend of a red circle and a blue square: where each result's colour and shape come from;
- --iw 0 against no image prompt: the largest pixel difference (0 means the same pictures);
- --sref with a red circle under the text "a blue star": whose colour and whose shape win.

    python bench/bench_image_prompts.py --prompts 100
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
from bench_batching import set_up
from bench_bundled import evaluation_scenes
from PIL import Image

from generation.bundled import bundled_model_config, evaluator
from generation.bundled.dataset import Background, Scene, Shape
from generation.models.image_prompts import adapter_in, adapter_of
from generation.models.loading import LoadedModel, load_model
from generation.operations.imagine import run_imagine
from generation.prompt import parse_prompt
from generation.specs import imagine_spec

PLACEHOLDER = "0" * 64  # the spec names files by hash; here the pictures are passed directly


def render(model: LoadedModel, text: str, pictures: list[Image.Image], count: int = 1) -> list[Image.Image]:
    parsed = parse_prompt(text, pictures=bool(pictures))
    spec = imagine_spec(
        parsed, model.config, model.resolution, count=count, pictures=(PLACEHOLDER,) * len(pictures)
    )
    if not pictures:
        return run_imagine(model, spec).images
    adapter = adapter_of(model, offline=True)
    with adapter_in(model.pipeline, adapter):
        return run_imagine(model, spec, image_prompt=(adapter, pictures)).images


def one_shape(colour: str, shape: str) -> Image.Image:
    return Scene((Shape(shape, colour, "large", "centre"),), Background("solid", ("white",))).render()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=100)
    args = parser.parse_args()
    set_up(argparse.Namespace(device="cpu"))
    model = load_model(bundled_model_config(), device="cpu")
    judge = evaluator.load()

    scenes = evaluation_scenes(args.prompts, held_out=False, seed=21)
    hits: dict[str, Counter[str]] = {"text 'a shape' alone": Counter(), "image prompt + 'a shape'": Counter()}
    for index, scene in enumerate(scenes):  # interleaved: both on each picture in turn
        truth = scene.shapes[0]
        for name, pictures in (("text 'a shape' alone", []), ("image prompt + 'a shape'", [scene.render()])):
            (picture,) = render(model, f"a shape --seed {2000 + index}", pictures)
            verdict = evaluator.classify(judge, [picture])[0]
            colour, shape = verdict.colour == truth.colour, verdict.shape == truth.shape
            hits[name].update(colour=colour, shape=shape, both=colour and shape)
    print(
        f"\n{args.prompts} one-shape pictures as image prompts (seen colour/shape pairs), first picture judged"
    )
    print("| | colour | shape | both |\n| --- | --- | --- | --- |")
    for name, counts in hits.items():
        print(
            f"| {name} | {counts['colour']}/{args.prompts} | {counts['shape']}/{args.prompts} | {counts['both']}/{args.prompts} |"
        )

    red_circle, blue_square = one_shape("red", "circle"), one_shape("blue", "square")
    sources: Counter[str] = Counter()
    grids = max(1, args.prompts // 4)
    for index in range(grids):
        for picture in render(model, f"--seed {3000 + 4 * index}", [red_circle, blue_square], count=4):
            verdict = evaluator.classify(judge, [picture])[0]
            colour = {"red": "circle's", "blue": "square's"}.get(verdict.colour, "neither")
            shape = {"circle": "circle's", "square": "square's"}.get(verdict.shape, "neither")
            sources[f"colour {colour}, shape {shape}"] += 1
    print(f"\n/blend of a red circle and a blue square: {4 * grids} pictures ({grids} grids)")
    print("| colour from, shape from | pictures |\n| --- | --- |")
    for name, number in sources.most_common():
        print(f"| {name} | {number} |")

    worst = 0
    for index, scene in enumerate(scenes[:10]):
        alone = render(model, f"{scene.caption()} --seed {4000 + index}", [], count=4)
        zero = render(model, f"{scene.caption()} --seed {4000 + index} --iw 0", [red_circle], count=4)
        for a, b in zip(alone, zero, strict=True):
            worst = max(
                worst, int(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max())
            )
    print(f"\n--iw 0 against no image prompt, 10 grids: largest pixel difference {worst}/255")

    style: Counter[str] = Counter()
    content: Counter[str] = Counter()
    for index in range(grids):
        text = f"a blue star --seed {5000 + 4 * index}"
        for flags, counter in ((" --sref", style), ("", content)):
            for picture in render(model, text + flags, [red_circle], count=4):
                verdict = evaluator.classify(judge, [picture])[0]
                counter[f"colour {verdict.colour}, shape {verdict.shape}"] += 1
    print(f"\n'a blue star' with a red circle as the picture: {4 * grids} pictures each")
    print("| how the picture prompts | most common verdicts |\n| --- | --- |")
    for name, counter in (("--sref (style layers only)", style), ("image prompt (all layers)", content)):
        print(f"| {name} | {', '.join(f'{v} ({n})' for v, n in counter.most_common(4))} |")


if __name__ == "__main__":
    main()
