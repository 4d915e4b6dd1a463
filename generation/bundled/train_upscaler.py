"""Train the bundled upscaler: Real-ESRGAN's compact network (`SRVGGNetCompact`, 4x) on the procedural
scenes, saved in Real-ESRGAN's own key layout as one `.safetensors` (what spandrel and chaiNNer load).

    python -m generation.bundled.train_upscaler --out generation/bundled/upscaler

Pairs are crops of scenes drawn at 256 px (the shapes' edges sharp, as a picture four times larger
would have them) and the same crops reduced 4x, softened a little at random as a generated picture is
(its VAE's decode is slightly soft) and rounded to 8-bit. L1 loss, AdamW, cosine decay; seeded.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from safetensors.torch import save_file
from tqdm import tqdm

from generation.bundled import BUNDLED_UPSCALER
from generation.bundled.dataset import sample_scene
from generation.models.sr_networks import SRVGGNetCompact

UPSCALER_DIR = BUNDLED_UPSCALER.parent
UPSCALER_FILE = BUNDLED_UPSCALER.name
SCALE, FEATURES, CONVS = 4, 32, 8
HIGH, CROP = 256, 128  # scenes drawn at HIGH px; high-resolution crops of CROP px (CROP/4 in)


def training_pairs(rng: random.Random, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) in 0-1: `count` random crops, the low one 4x smaller."""
    lows, highs = [], []
    for _ in range(count):
        scene = sample_scene(rng, variety=0.06).render(HIGH)
        left, top = rng.randrange(0, HIGH - CROP + 1, 4), rng.randrange(0, HIGH - CROP + 1, 4)
        high = scene.crop((left, top, left + CROP, top + CROP))
        low = high.resize((CROP // SCALE, CROP // SCALE), Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            low = low.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.7)))
        lows.append(np.asarray(low))
        highs.append(np.asarray(high))
    return _as_tensor(lows), _as_tensor(highs)


def _as_tensor(arrays: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


def train(steps: int, batch: int, pool: int, seed: int) -> SRVGGNetCompact:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    lows, highs = training_pairs(rng, pool)
    network = SRVGGNetCompact(FEATURES, CONVS, SCALE)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    progress = tqdm(range(steps), desc="upscaler")
    for _ in progress:
        index = torch.randint(len(lows), (batch,), generator=generator)
        loss = F.l1_loss(network(lows[index]), highs[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        schedule.step()
        progress.set_postfix(loss=f"{loss.item():.4f}")
    return network.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the bundled 4x upscaler on procedural scenes.")
    parser.add_argument("--out", type=Path, default=UPSCALER_DIR)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--pool", type=int, default=4000, help="crops drawn once, then sampled")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    network = train(args.steps, args.batch, args.pool, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(args.out / UPSCALER_FILE))
    settings = {key: getattr(args, key) for key in ("steps", "batch", "pool", "seed")}
    settings |= {
        "features": FEATURES,
        "convs": CONVS,
        "scale": SCALE,
        "minutes": (time.perf_counter() - started) / 60,
    }
    (args.out / "training_config.json").write_text(json.dumps(settings, indent=2))
    print(f"saved {args.out / UPSCALER_FILE} after {settings['minutes']:.1f} min")


if __name__ == "__main__":
    main()
