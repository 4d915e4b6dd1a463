"""The bundled model's describer (for /describe): four prompt suggestions for a picture, from what
its evaluator reads in it (shape, colour, size, position), worded as the training captions are, so
each suggestion is a prompt the bundled model knows. It works offline and can be measured:
describe(imagine(p)) should name p's colour and shape, and imagine(describe(x)) should look like x
(tests/generation/bundled/test_describer.py). Real deployments configure a captioning model instead.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from generation.bundled import evaluator
from generation.bundled.dataset import COLOURS, Background, Shape
from generation.specs import SUGGESTIONS


@torch.no_grad()
def describe(judge: evaluator.SceneClassifier, image: Image.Image) -> list[str]:
    """Four suggestions, most likely first: the colour and shape (what the bundled model draws most
    faithfully), the full reading (size and place too), then the runner-up colour and the runner-up
    shape (what the evaluator was least sure of is what a user may want to try instead)."""
    outputs = judge(evaluator.to_tensor([image]))
    ranked = {
        name: [evaluator.HEADS[name][i] for i in outputs[name][0].argsort(descending=True).tolist()]
        for name in evaluator.HEADS
    }
    best = Shape(**{name: labels[0] for name, labels in ranked.items()})
    plain = Shape(best.shape, best.colour, "medium", "centre")
    background = Background("solid", (background_colour(image, exclude=best.colour),)).phrase()
    suggestions = [
        f"{_without_place(plain.phrase())} {background}",
        f"{best.phrase()} {background}",
        f"{_without_place(Shape(best.shape, ranked['colour'][1], 'medium', 'centre').phrase())} {background}",
        f"{_without_place(Shape(ranked['shape'][1], best.colour, 'medium', 'centre').phrase())} {background}",
    ]
    unique = list(dict.fromkeys(suggestions))
    return unique[:SUGGESTIONS]


def background_colour(image: Image.Image, exclude: str) -> str:
    """The named colour nearest the picture's border (where the training scenes' backgrounds show),
    other than the shape's own (a shape on its own colour would vanish)."""
    pixels = np.asarray(image.convert("RGB").resize((64, 64)), dtype=np.float32)
    border = np.concatenate([pixels[:4].reshape(-1, 3), pixels[-4:].reshape(-1, 3),
                             pixels[:, :4].reshape(-1, 3), pixels[:, -4:].reshape(-1, 3)])  # fmt: skip
    seen = np.median(border, axis=0)
    candidates = {name: rgb for name, rgb in COLOURS.items() if name != exclude}
    return min(candidates, key=lambda name: float(np.sum((np.array(candidates[name]) - seen) ** 2)))


def _without_place(phrase: str) -> str:
    """The phrase up to its position words ("a red circle in the centre" -> "a red circle")."""
    for marker in (" in the ", " on the ", " at the "):
        if marker in phrase:
            return phrase[: phrase.index(marker)]
    return phrase
