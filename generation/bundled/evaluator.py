"""A small classifier of shape, colour, size and position, trained on the scene generator's ground
truth, used to score the bundled model's pictures against their prompts.

    python -m generation.bundled.evaluator --out generation/bundled/evaluator   # trains it (~minutes)

for the shipped model's scenes (`--variety` and `--side` say another model's).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from generation.bundled import BUNDLED_MODEL_DIR, scene_variety
from generation.bundled.dataset import COLOURS, POSITIONS, SHAPES, SIZES, Scene, sample_scene

EVALUATOR_DIR = Path(__file__).parent / "evaluator"
HEADS: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "colour": tuple(COLOURS),
    "size": tuple(SIZES),
    "position": tuple(POSITIONS),
}


@dataclass(frozen=True)
class Verdict:
    shape: str
    colour: str
    size: str
    position: str


class SceneClassifier(nn.Module):
    """Four strided convolutions, then one linear head per attribute (flattened, so position survives)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        channels = [3, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(channels):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(8, c_out), nn.SiLU()]
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.heads = nn.ModuleDict(
            {name: nn.Linear(4 * width * 4 * 4, len(labels)) for name, labels in HEADS.items()}
        )

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.features(images)
        return {name: head(features) for name, head in self.heads.items()}


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """RGB images resized to 64x64, in [-1, 1]."""
    arrays = [
        np.asarray(image.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR)) for image in images
    ]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def labels_of(scenes: list[Scene]) -> dict[str, torch.Tensor]:
    return {
        name: torch.tensor([labels.index(getattr(scene.shapes[0], name)) for scene in scenes])
        for name, labels in HEADS.items()
    }


def train(
    steps: int = 2500, batch: int = 64, seed: int = 0, variety: float = 0.0, side: int = 64
) -> SceneClassifier:
    """Fit on freshly drawn one-shape scenes, held-out pairs included: it judges, it is not judged.
    `variety` and `side` draw them as a model trained on them shows them (dataset.sample_scene); a
    freely placed shape is labelled with its nearest named position."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model = SceneClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    for _ in tqdm(range(steps), desc="evaluator"):
        scenes = [
            sample_scene(rng, held_out=rng.random() < 0.1, max_shapes=1, variety=variety)
            for _ in range(batch)
        ]
        images = to_tensor([scene.render(side) for scene in scenes])
        outputs, targets = model(images), labels_of(scenes)
        loss = sum(F.cross_entropy(outputs[name], targets[name]) for name in HEADS)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        optimizer.step()
        schedule.step()
    return model.eval()


def save(model: SceneClassifier, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), folder / "classifier.safetensors")
    (folder / "labels.json").write_text(json.dumps(HEADS, indent=1))


def load(folder: Path = EVALUATOR_DIR) -> SceneClassifier:
    model = SceneClassifier()
    model.load_state_dict(load_file(folder / "classifier.safetensors"))
    return model.eval()


@torch.no_grad()
def classify(model: SceneClassifier, images: list[Image.Image]) -> list[Verdict]:
    outputs = model(to_tensor(images))
    picks = {name: outputs[name].argmax(dim=1).tolist() for name in HEADS}
    return [Verdict(**{name: HEADS[name][picks[name][i]] for name in HEADS}) for i in range(len(images))]


@torch.no_grad()
def accuracy_on_ground_truth(
    model: SceneClassifier, count: int = 1000, seed: int = 123, variety: float = 0.0, side: int = 64
) -> dict[str, float]:
    rng = random.Random(seed)
    scenes = [
        sample_scene(rng, held_out=rng.random() < 0.5, max_shapes=1, variety=variety) for _ in range(count)
    ]
    verdicts = classify(model, [scene.render(side) for scene in scenes])
    return {
        name: sum(
            getattr(v, name) == getattr(s.shapes[0], name) for v, s in zip(verdicts, scenes, strict=True)
        )
        / count
        for name in HEADS
    }


def _native_side(model: Path) -> int:
    return int(json.loads((model / "vae" / "config.json").read_text())["sample_size"])


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the bundled model's evaluator.")
    parser.add_argument("--out", type=Path, default=EVALUATOR_DIR)
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--threads", type=int, default=2)
    # Defaults: the scenes the shipped model draws (its training variety and native size).
    parser.add_argument(
        "--variety", type=float, default=scene_variety(BUNDLED_MODEL_DIR), help="dataset.sample_scene's"
    )
    parser.add_argument(
        "--side",
        type=int,
        default=_native_side(BUNDLED_MODEL_DIR),
        help="scenes drawn at this size, read at 64 px",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = train(args.steps, variety=args.variety, side=args.side)
    save(model, args.out)
    accuracy = accuracy_on_ground_truth(model, variety=args.variety, side=args.side)
    print("accuracy on ground truth:", json.dumps(accuracy))


if __name__ == "__main__":
    main()
