"""What one progress preview costs, per preview decoder, measured side by side in one run (medians,
interleaved): the full VAE decode, the fitted latent-to-RGB map (the default) and a tiny decoder
(AutoencoderTiny in TAESD's architecture, random weights: the time is the architecture's).

    python bench/bench_previews.py               # bundled model (128 px) and SD 1.5's VAE at 512 px
    python bench/bench_previews.py --skip-full   # the bundled model only
    python bench/bench_previews.py --device cuda # the full-size VAE on a GPU, 512 and 1024 px (bench/gpu.sh)

The full-size VAE has random weights (none can be downloaded here): its time is its architecture's.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from diffusers import AutoencoderKL, AutoencoderTiny
from diffusers.image_processor import VaeImageProcessor

from generation.bundled import bundled_model_config
from generation.models.loading import load_model
from generation.models.previews import PreviewDecoder, VaeDecoder, fit_latent_rgb

# SD 1.5's VAE (diffusers' AutoencoderKL defaults are a smaller model).
SD15_VAE = {
    "block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "latent_channels": 4,
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
    "sample_size": 512, "scaling_factor": 0.18215,
}  # fmt: skip


def median_time(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def compare(
    name: str, decoders: dict[str, PreviewDecoder], latents: torch.Tensor, repeats: dict[str, int]
) -> None:
    times = {
        label: median_time(lambda d=decoder: d(latents), repeats[label])
        for label, decoder in decoders.items()
    }  # type: ignore[misc]
    full = times["full VAE"]
    print(f"\n{name}: latents {tuple(latents.shape)}")
    print("| decoder | per preview | vs full VAE |\n| --- | --- | --- |")
    for label, seconds in times.items():
        print(
            f"| {label} | {seconds * 1000:.2f} ms | {full / seconds:.1f}x faster |"
            if label != "full VAE"
            else f"| {label} | {seconds * 1000:.1f} ms | 1 |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-full", action="store_true", help="skip the full-size VAE (minutes on a CPU)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    torch.manual_seed(0)

    with torch.no_grad():
        bundled = load_model(bundled_model_config(), device="cpu")
        processor = bundled.pipeline.image_processor
        taesd = AutoencoderTiny(latent_channels=4).eval()
        latents = torch.randn(1, 4, 16, 16)
        compare(
            "bundled model, 128 px",
            {"full VAE": VaeDecoder(bundled.pipeline.vae, processor), "latent-to-RGB map (default)": bundled.preview_decoder(),
             "tiny decoder (TAESD architecture)": VaeDecoder(taesd, processor)},
            latents, {"full VAE": 41, "latent-to-RGB map (default)": 201, "tiny decoder (TAESD architecture)": 21},
        )  # fmt: skip
        if args.skip_full:
            return
        dtype = torch.float16 if args.device == "cuda" else torch.float32
        vae, taesd = AutoencoderKL(**SD15_VAE).eval().to(args.device, dtype), taesd.to(args.device, dtype)
        started = time.perf_counter()
        fitted = fit_latent_rgb(vae)
        print(
            f"\nfitting the map to SD 1.5's VAE (8 pictures of 128 px, encode + decode): {time.perf_counter() - started:.1f} s"
        )
        for side in (
            (512,) if args.device == "cpu" else (512, 1024)
        ):  # 1024: SDXL's size, SD's VAE architecture
            compare(
                f"SD VAE architecture, {side} px",
                {"full VAE": VaeDecoder(vae, VaeImageProcessor(vae_scale_factor=8)), "latent-to-RGB map (default)": fitted,
                 "tiny decoder (TAESD architecture)": VaeDecoder(taesd, VaeImageProcessor(vae_scale_factor=8))},
                torch.randn(1, 4, side // 8, side // 8).to(args.device, dtype),
                {"full VAE": 3, "latent-to-RGB map (default)": 51, "tiny decoder (TAESD architecture)": 5},
            )  # fmt: skip


if __name__ == "__main__":
    main()
