"""Personal tokens on the bundled model: do they work, how fast do they train, how fast do they switch.

For each method (DreamBooth-LoRA, textual inversion) it trains `<hexy>` with the bundled model's
defaults on 5 photos of a teal hexagon (a colour and a shape the model has never drawn), then renders
the same prompts with the token and with the class noun in its place ("a <hexy>" vs "a shape") and
measures how close each image is to the photos:
  - palette distance: mean RGB distance from each pixel to the nearest main colour of the photos
    (0-441, lower is closer; the photos against each other score ~8),
  - teal share: fraction of pixels near the hexagon's teal.
Then: seconds per training step and peak memory for each method (each trained in a fresh process,
so the peaks are separate), and the time to switch adapters between jobs vs reloading the model.

    python bench/bench_training.py [--images 16]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from generation.bundled import bundled_model_config
from generation.bundled.novel import concept_share, hexagon_photos, palette_distance
from generation.models.adapters import AdapterCache
from generation.models.loading import LoadedModel, load_model
from generation.operations.imagine import run_imagine
from generation.outputs import encode_png
from generation.prompt import parse_prompt
from generation.specs import AdapterRef, imagine_spec
from generation.training.defaults import train_spec
from generation.training.loop import train_adapter

PROMPTS = ("a {}", "a large {}", "a {} on a white background", "a small {} at the top")
TOKEN, CLASS_NOUN = "hexy", "shape"


def train_in_this_process(method: str, out: Path) -> dict[str, float]:
    """Train one method; write the file to `out`; return timing and peak memory."""
    model = load_model(bundled_model_config(), device="cpu")
    photos = hexagon_photos(5, seed=1)
    hashes = tuple(hashlib.sha256(encode_png(p)).hexdigest() for p in photos)
    spec = train_spec(
        model.config,
        model.resolution,
        token=TOKEN,
        class_noun=CLASS_NOUN,
        method=method,
        images=hashes,
        seed=0,
    )  # type: ignore[arg-type]
    spec = spec.model_copy(update={"samples": 0})
    rss_before = _peak_rss_mib()
    times: list[float] = []
    last = [time.perf_counter()]

    def tick(_: object) -> None:
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    with tempfile.TemporaryDirectory() as work:
        trained = train_adapter(
            model,
            spec,
            photos,
            checkpoint_path=Path(work) / "c.st",
            class_cache=Path(work) / "classes",
            on_progress=tick,
        )
    out.write_bytes(trained.safetensors)
    return {
        "steps": spec.steps,
        "seconds_per_step": statistics.median(times[1:]),
        "total_s": trained.elapsed_s,
        "peak_rss_mib": _peak_rss_mib(),
        "rss_before_training_mib": rss_before,
        "final_loss": trained.final_loss,
    }


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def closeness(
    model: LoadedModel, files: dict[str, tuple[str, bytes]], images_per_prompt: int
) -> dict[str, dict[str, float]]:
    photos = hexagon_photos(5, seed=1)
    cache = AdapterCache(lambda digest: next(blob for d, (_, blob) in files.items() if d == digest))
    results: dict[str, dict[str, float]] = {}
    rows = [("without token", None)] + [(method, digest) for digest, (method, _) in files.items()]
    for label, digest in rows:
        images = []
        for prompt in PROMPTS:
            if digest is None:
                text, refs = prompt.format(CLASS_NOUN), ()
            else:
                method = files[digest][0]
                trigger = f"sks {CLASS_NOUN}" if method == "lora" else ""
                text = prompt.format(f"<{TOKEN}>")
                refs = (AdapterRef(name=TOKEN, kind=method, file=digest, trigger=trigger),)  # type: ignore[arg-type]
            spec = imagine_spec(
                parse_prompt(f"{text} --seed 100"), model.config, model.resolution, count=images_per_prompt
            )
            spec = spec.model_copy(update={"adapters": refs})
            cache.activate(model.pipeline, spec.adapters)
            images += run_imagine(model, spec).images
        cache.reset()
        results[label] = {
            "palette_distance": palette_distance(images, photos),
            "teal_share": statistics.mean(concept_share(image) for image in images),
            "images": len(images),
        }
    return results


def switch_times(
    model: LoadedModel, files: dict[str, tuple[str, bytes]], rounds: int = 10
) -> dict[str, float]:
    cache = AdapterCache(lambda digest: files[digest][1])
    refs = [
        AdapterRef(name=f"t{i}", kind=method, file=digest, trigger="sks shape")  # type: ignore[arg-type]
        for i, (digest, (method, _)) in enumerate(files.items())
    ]
    for ref in refs:  # first loads, not timed
        cache.activate(model.pipeline, (ref,))
    started = time.perf_counter()
    for _ in range(rounds):
        for ref in refs:
            cache.activate(model.pipeline, (ref,))
    switch = (time.perf_counter() - started) / (rounds * len(refs))
    cache.reset()
    started = time.perf_counter()
    cold = AdapterCache(lambda digest: files[digest][1])
    for ref in refs:
        cold.activate(model.pipeline, (ref,))
    first_load = (time.perf_counter() - started) / len(refs)
    cold.reset()
    started = time.perf_counter()
    load_model(bundled_model_config(), device="cpu")
    reload = time.perf_counter() - started
    return {"switch_ms": switch * 1000, "first_load_ms": first_load * 1000, "model_reload_ms": reload * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=4, help="images per prompt (4 prompts)")
    parser.add_argument("--train-one", choices=["lora", "embedding"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.train_one:
        print(json.dumps(train_in_this_process(args.train_one, args.out)))
        return

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    )
    files: dict[str, tuple[str, bytes]] = {}
    with tempfile.TemporaryDirectory() as work:
        for method in ("lora", "embedding"):
            out = Path(work) / f"{method}.safetensors"
            result = subprocess.run(
                [sys.executable, __file__, "--train-one", method, "--out", str(out)],
                check=True,
                capture_output=True,
                text=True,
            )
            stats = json.loads(result.stdout.strip().splitlines()[-1])
            print(
                f"{method:9s}: {stats['steps']} steps, {stats['seconds_per_step'] * 1000:.0f} ms/step, "
                f"{stats['total_s']:.1f} s in all, peak RSS {stats['peak_rss_mib']:.0f} MiB "
                f"({stats['rss_before_training_mib']:.0f} MiB before training), final loss {stats['final_loss']:.3f}, "
                f"file {out.stat().st_size / 1024:.1f} KiB"
            )
            data = out.read_bytes()
            files[hashlib.sha256(data).hexdigest()] = (method, data)

    model = load_model(bundled_model_config(), device="cpu")
    print(
        f"closeness to the photos ({len(PROMPTS)} prompts x {args.images} seeds; photos vs each other: "
        f"{palette_distance(hexagon_photos(5, seed=9), hexagon_photos(5, seed=1)):.1f}):"
    )
    for label, row in closeness(model, files, args.images).items():
        print(
            f"  {label:14s}: palette distance {row['palette_distance']:6.1f}   teal share {row['teal_share']:.3f}"
        )
    times = switch_times(model, files)
    print(
        f"switch adapters between jobs: {times['switch_ms']:.1f} ms (first load {times['first_load_ms']:.0f} ms); "
        f"full model reload {times['model_reload_ms']:.0f} ms: {times['model_reload_ms'] / times['switch_ms']:.0f}x"
    )


if __name__ == "__main__":
    main()
