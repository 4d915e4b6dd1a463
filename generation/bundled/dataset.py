"""The procedural scenes the bundled model learns from: one or two coloured shapes on a background.

Every scene is drawn with Pillow from a seeded generator and captioned in plain English, e.g.
"a small yellow star at the top left on a blue and white striped background". The scene itself is the
ground truth the evaluator is trained on. Some colour+shape pairs never appear in training
(`HELD_OUT`), so generalisation to unseen combinations can be measured.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (245, 220, 30),
    "green": (40, 170, 60),
    "blue": (30, 80, 220),
    "purple": (130, 50, 190),
    "pink": (245, 130, 190),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
}
SHAPES = ("circle", "square", "triangle", "star", "ring", "cross")
SIZES: dict[str, float] = {"small": 0.24, "medium": 0.36, "large": 0.5}  # bounding box side / image side
POSITIONS: dict[str, tuple[float, float]] = {
    "centre": (0.5, 0.5),
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
    "top left": (0.25, 0.25),
    "top right": (0.75, 0.25),
    "bottom left": (0.25, 0.75),
    "bottom right": (0.75, 0.75),
}
# Never drawn in training; the model must compose these from what it saw separately.
HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {
        ("red", "star"),
        ("blue", "triangle"),
        ("green", "ring"),
        ("yellow", "cross"),
        ("purple", "square"),
        ("pink", "circle"),
    }
)
BackgroundKind = Literal["solid", "striped", "gradient"]
_SUPERSAMPLE = 4  # draw large, then downscale: anti-aliased edges


@dataclass(frozen=True)
class Shape:
    shape: str
    colour: str
    size: str
    position: str  # the named position (for a shape placed freely: the nearest one, its evaluator label)
    centre: tuple[float, float] | None = None  # where it is drawn, if not exactly at `position`
    scale: float = 1.0  # its side relative to its size's
    says_position: bool = True  # False: the caption leaves the layout open

    def phrase(self) -> str:
        size = "" if self.size == "medium" else f"{self.size} "
        where = f" {_position_phrase(self.position)}" if self.says_position else ""
        return f"{_article(size + self.colour)} {size}{self.colour} {self.shape}{where}"


@dataclass(frozen=True)
class Background:
    kind: BackgroundKind
    colours: tuple[str, ...]  # one for solid, two for striped and gradient

    def phrase(self) -> str:
        first = self.colours[0]
        if self.kind == "solid":
            return f"on {_article(first)} {first} background"
        second = self.colours[1]
        if self.kind == "striped":
            return f"on {_article(first)} {first} and {second} striped background"
        return f"on {_article(first)} {first} to {second} gradient background"


_BACKGROUND_PHRASE = re.compile(r" on an? [a-z ]+ background$")  # Background.phrase(), at the end


def without_background(caption: str) -> str:
    """A scene's caption without its background phrase ("a red circle on the left"), as people write
    prompts: the model learns that a prompt naming no background still draws one."""
    return _BACKGROUND_PHRASE.sub("", caption)


def background_only(caption: str) -> str:
    """A scene's background said alone ("a blue background"), as Zoom Out's and pans' prompts for the
    new area, or a user asking for a backdrop, say it."""
    return caption[len(without_background(caption)) :].strip().removeprefix("on ")


# Texts that go with an image prompt when no caption is said (the IP-Adapter trains beside them and its
# test asks with "a shape"): no caption is one, so a text-encoder segment must hold them (session 30).
GENERIC_CAPTIONS = ("a shape", "a picture", "")


@dataclass(frozen=True)
class Scene:
    shapes: tuple[Shape, ...]
    background: Background

    def caption(self) -> str:
        return " and ".join(shape.phrase() for shape in self.shapes) + " " + self.background.phrase()

    def render(self, size: int = 64) -> Image.Image:
        canvas = size * _SUPERSAMPLE
        image = _draw_background(self.background, canvas)
        draw = ImageDraw.Draw(image)
        for shape in self.shapes:
            _draw_shape(draw, shape, canvas)
        return image.resize((size, size), Image.Resampling.LANCZOS)

    def subject_mask(self, size: int) -> Image.Image:
        """Where its shapes are ("L", 255 inside; anti-aliased like `render`): what a subject-weighted
        loss weighs."""
        canvas = size * _SUPERSAMPLE
        image = Image.new("L", (canvas, canvas), 0)
        draw = ImageDraw.Draw(image)
        for shape in self.shapes:
            _draw_shape(draw, shape, canvas, fill=255)
        return image.resize((size, size), Image.Resampling.BOX)


def _article(next_word: str) -> str:
    return "an" if next_word[0] in "aeiou" else "a"


def _position_phrase(position: str) -> str:
    if position == "centre":
        return "in the centre"
    if position in {"left", "right"}:
        return f"on the {position}"
    return f"at the {position}"


def vocabulary() -> list[str]:
    """Every word a caption can use, for the bundled model's tokenizer."""
    words = {"a", "an", "and", "on", "in", "the", "at", "background", "striped", "gradient", "to"}
    words |= set(COLOURS) | set(SHAPES) | set(SIZES)
    for position in POSITIONS:
        words |= set(position.split())
    return sorted(words)


def allowed_pairs(*, held_out: bool) -> list[tuple[str, str]]:
    """(colour, shape) pairs: those seen in training, or only the held-out ones."""
    pairs = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    return [pair for pair in pairs if (pair in HELD_OUT) == held_out]


def sample_scene(
    rng: random.Random, *, held_out: bool = False, max_shapes: int = 2, variety: float = 0.0
) -> Scene:
    """A random scene; with `held_out` its first shape is an unseen colour+shape pair.

    `variety` (the second bundled model's data; 0 draws exactly the first model's scenes): shapes
    move up to `variety` of the side from their named position and vary ±10% in size, and a lone
    shape's caption leaves its position open 30% of the time (it is then anywhere it fits), so that
    seeds of an open prompt give different layouts."""
    count = 1 if max_shapes == 1 or rng.random() < 0.6 else 2
    pairs = allowed_pairs(held_out=False)
    shapes: list[Shape] = []
    positions = _distant_positions(rng, count)
    for index in range(count):
        colour, shape = rng.choice(allowed_pairs(held_out=True) if held_out and index == 0 else pairs)
        size = rng.choice(list(SIZES)) if count == 1 else rng.choice(["small", "medium"])
        drawn = Shape(shape=shape, colour=colour, size=size, position=positions[index])
        shapes.append(_varied(rng, drawn, variety, open_layout=count == 1) if variety else drawn)
    background = _sample_background(rng, exclude={shape.colour for shape in shapes})
    return Scene(shapes=tuple(shapes), background=background)


def sample_plain_scene(rng: random.Random, *, variety: float = 0.0) -> Scene:
    """One shape with its position said, on white: a scene whose caption's position is the main
    thing to learn once colours are (generation/bundled/training_data.py)."""
    while True:
        shape = sample_scene(rng, max_shapes=1, variety=variety).shapes[0]
        if shape.says_position and shape.colour != "white":
            return Scene(shapes=(shape,), background=Background("solid", ("white",)))


def _varied(rng: random.Random, shape: Shape, variety: float, *, open_layout: bool) -> Shape:
    scale = rng.uniform(0.9, 1.1)
    half = SIZES[shape.size] * scale / 2
    if open_layout and rng.random() < 0.3:  # anywhere the whole shape fits
        centre = (rng.uniform(half, 1 - half), rng.uniform(half, 1 - half))
        return Shape(shape.shape, shape.colour, shape.size, nearest_position(centre), centre, scale, False)
    x, y = POSITIONS[shape.position]
    centre = (
        min(max(x + rng.uniform(-variety, variety), half), 1 - half),
        min(max(y + rng.uniform(-variety, variety), half), 1 - half),
    )
    return Shape(shape.shape, shape.colour, shape.size, shape.position, centre, scale)


def nearest_position(centre: tuple[float, float]) -> str:
    """The named position closest to a point (x, y in 0-1 of the side)."""
    return min(POSITIONS, key=lambda name: math.dist(POSITIONS[name], centre))


def _distant_positions(rng: random.Random, count: int) -> list[str]:
    """Positions far enough apart that two small/medium shapes never overlap."""
    while True:
        chosen = rng.sample(list(POSITIONS), count)
        if count == 1:
            return chosen
        (x1, y1), (x2, y2) = (POSITIONS[name] for name in chosen)
        if max(abs(x1 - x2), abs(y1 - y2)) >= 0.5:
            return chosen


def _sample_background(rng: random.Random, *, exclude: set[str]) -> Background:
    choices = [colour for colour in COLOURS if colour not in exclude]
    kinds: list[BackgroundKind] = ["solid", "striped", "gradient"]
    kind = rng.choices(kinds, weights=[0.5, 0.25, 0.25])[0]
    if kind == "solid":
        return Background(kind, (rng.choice(choices),))
    first, second = rng.sample(choices, 2)
    return Background(kind, (first, second))


def _draw_background(background: Background, canvas: int) -> Image.Image:
    first = COLOURS[background.colours[0]]
    if background.kind == "solid":
        return Image.new("RGB", (canvas, canvas), first)
    second = COLOURS[background.colours[1]]
    image = Image.new("RGB", (canvas, canvas), first)
    draw = ImageDraw.Draw(image)
    if background.kind == "striped":
        stripe = canvas // 8
        for top in range(stripe, canvas, 2 * stripe):
            draw.rectangle((0, top, canvas, top + stripe - 1), fill=second)
        return image
    for row in range(canvas):
        t = row / (canvas - 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(first, second, strict=True))
        draw.line((0, row, canvas, row), fill=colour)
    return image


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: Shape, canvas: int, fill: tuple[int, int, int] | int | None = None
) -> None:
    cx, cy = (value * canvas for value in (shape.centre or POSITIONS[shape.position]))
    radius = SIZES[shape.size] * shape.scale * canvas / 2
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    fill = COLOURS[shape.colour] if fill is None else fill
    if shape.shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape.shape == "square":
        inset = radius * 0.12
        draw.rectangle((box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset), fill=fill)
    elif shape.shape == "triangle":
        draw.polygon(
            [(cx, cy - radius), (cx + radius, cy + radius * 0.8), (cx - radius, cy + radius * 0.8)], fill=fill
        )
    elif shape.shape == "star":
        points = []
        for index in range(10):
            angle = -math.pi / 2 + index * math.pi / 5
            reach = radius if index % 2 == 0 else radius * 0.42
            points.append((cx + reach * math.cos(angle), cy + reach * math.sin(angle)))
        draw.polygon(points, fill=fill)
    elif shape.shape == "ring":
        draw.ellipse(box, outline=fill, width=max(1, round(radius * 0.38)))
    elif shape.shape == "cross":
        arm = radius * 0.34
        draw.rectangle((cx - radius, cy - arm, cx + radius, cy + arm), fill=fill)
        draw.rectangle((cx - arm, cy - radius, cx + arm, cy + radius), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape.shape!r}")
