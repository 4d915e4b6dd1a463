"""Compares VAE decoders paired: the same latents, sampled once by one model, decoded by each decoder.

Two benches of 100 prompts differ by a few pictures from sampling alone, which hides what a decoder
change does (bench/RESULTS.md, session 31). Here the model's own sampler makes the latents once
(evaluation prompts, seeds 1000+i, its scheduler, 20 steps, cfg 5; cached in --latents), and each
decoder turns the same latents into pictures: the evaluator's agreement per attribute on seen and on
held-out pairs, how many verdicts each decoder changes against the first, and each corner's and
edge's mark on solid backgrounds (operation_checks.frame_marks' scenes: small centred shapes, and
medium ones whose place the prompt leaves open). The last column, `round-trip marks`, decodes what the
VAE's own encoder makes of the small centred shapes' true pictures, which carry no mark: the share of
the marks the VAE adds by itself, whatever the UNet writes (session 33: most of them).

    python bench/bench_decoders.py --model data/model --prompts 200 DECODER_FOLDER [DECODER_FOLDER ...]

A decoder folder is a model folder (its vae/ is read, padded as its training_config.json says:
generation.models.edge_padding) or a vae folder itself.
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
from diffusers import AutoencoderKL
from PIL import Image

from bench.bench_bundled import ATTRIBUTES, evaluation_scenes
from bench.operation_checks import frame_scenes, mean_frame_marks
from generation.bundled import BUNDLED_MODEL_DIR, bundled_model_config, decodes_edge_padded, evaluator
from generation.bundled.dataset import Scene
from generation.bundled.training_data import as_model_input, render_pictures
from generation.models.edge_padding import pad_decoder_edges
from generation.models.loading import LoadedModel, load_model
from generation.models.schedulers import make_scheduler

FRAME_PICTURES = 16
SETS = {"seen": (False, 2024), "held-out": (True, 2025)}  # held_out, the scenes' seed


@torch.no_grad()
def sample_latents(model: LoadedModel, scenes: list[Scene], first_seed: int) -> torch.Tensor:
    pipeline = model.pipeline
    latents = []
    for index, scene in enumerate(scenes):
        pipeline.scheduler = make_scheduler(model.config.scheduler, model.scheduler_config)
        latents.append(
            pipeline(
                prompt=scene.caption(),
                num_inference_steps=20,
                guidance_scale=5.0,
                output_type="latent",
                generator=torch.Generator("cpu").manual_seed(first_seed + index),
            ).images
        )
    return torch.cat(latents)


@torch.no_grad()
def decode(vae: AutoencoderKL, model: LoadedModel, latents: torch.Tensor) -> list[Image.Image]:
    pixels = vae.decode(latents.float() / vae.config.scaling_factor).sample
    images: list[Image.Image] = model.pipeline.image_processor.postprocess(pixels, output_type="pil")
    return images


@torch.no_grad()
def round_trip(vae: AutoencoderKL, model: LoadedModel, scenes: list[Scene]) -> list[Image.Image]:
    """`scenes`' true pictures through `vae`'s encoder (its posterior's mean) and decoder."""
    pictures = as_model_input(render_pictures(scenes, vae.config.sample_size))
    images: list[Image.Image] = model.pipeline.image_processor.postprocess(
        vae.decode(vae.encode(pictures).latent_dist.mean).sample, output_type="pil"
    )
    return images


def load_decoder(folder: Path) -> AutoencoderKL:
    vae_folder = folder / "vae" if (folder / "vae").is_dir() else folder
    vae: AutoencoderKL = AutoencoderKL.from_pretrained(vae_folder, torch_dtype=torch.float32)
    if decodes_edge_padded(folder):
        pad_decoder_edges(vae)
    return vae.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "decoders", type=Path, nargs="+", help="model or vae folders; the first is the reference"
    )
    parser.add_argument(
        "--model", default=str(BUNDLED_MODEL_DIR), help="the model whose sampler makes the latents"
    )
    parser.add_argument("--prompts", type=int, default=200, help="per set (seen, held-out)")
    parser.add_argument("--latents", type=Path, help="cache file (made when missing)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--evaluator", type=Path, default=evaluator.EVALUATOR_DIR, help="its folder (evaluator.py --out)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    model = load_model(dataclasses.replace(bundled_model_config(), source=args.model), device="cpu")
    scenes = {
        name: evaluation_scenes(args.prompts, held_out=held, seed=seed) for name, (held, seed) in SETS.items()
    }
    latents: dict[str, torch.Tensor] = {}
    if args.latents and args.latents.exists():
        latents = torch.load(args.latents, weights_only=True)
    wanted = {
        **{name: (batch, 1000) for name, batch in scenes.items()},
        "frame": (frame_scenes(FRAME_PICTURES), 100),
        "frame-open": (frame_scenes(FRAME_PICTURES, open_layout=True), 100),
    }
    missing = [name for name in wanted if name not in latents]
    for name in missing:  # a cache from an older run keeps what it has
        latents[name] = sample_latents(model, *wanted[name])
    if args.latents and missing:
        torch.save(latents, args.latents)
    print(f"latents: {args.model}, {args.prompts} prompts per set, {FRAME_PICTURES} frame pictures")
    judge = evaluator.load(args.evaluator)
    reference: dict[str, list[tuple[str, ...]]] = {}
    for folder in args.decoders:
        vae = load_decoder(folder)
        line = [str(folder)]
        for name, batch in scenes.items():
            verdicts = evaluator.classify(judge, decode(vae, model, latents[name]))
            keys = [tuple(getattr(v, a) for a in ATTRIBUTES) for v in verdicts]
            shares = [
                sum(getattr(v, a) == getattr(s.shapes[0], a) for v, s in zip(verdicts, batch, strict=True))
                / len(batch)
                for a in ATTRIBUTES
            ]
            changed = sum(k != r for k, r in zip(keys, reference.setdefault(name, keys), strict=True))
            line.append(f"{name} " + "/".join(f"{x:.1%}" for x in shares) + f" ({changed} changed)")
        for name in ("frame", "frame-open"):
            marks = mean_frame_marks(decode(vae, model, latents[name]))
            line.append(f"{name} marks " + " ".join(f"{k} {v:.1f}" for k, v in marks.items()))
        marks = mean_frame_marks(round_trip(vae, model, frame_scenes(FRAME_PICTURES)))
        line.append("round-trip marks " + " ".join(f"{k} {v:.1f}" for k, v in marks.items()))
        print(" | ".join(line), flush=True)
    print("columns: colour/shape/size/position agreement; verdicts changed against the first decoder;")
    print("marks: each corner's and edge's distance (0-255) from the colour just inside it; frame: small")
    print("centred shapes, frame-open: medium shapes placed by the model, round-trip: the small centred")
    print("shapes' true pictures (no marks) through the VAE's encoder and decoder")


if __name__ == "__main__":
    main()
