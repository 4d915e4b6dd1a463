"""What the picture operations promise, measured on a model's own pictures (issue 22's operation
checks; bench/bench_bundled_operations.py prints them). Beside the benches, not in generation/: it
drives operations with the bundled model's evaluator, above every layer of the engine.

Each measure renders one-shape scenes from their captions and applies an operation the way the bot
does (the spec builders, the operations), then reads the pictures: pixel changes on the 0-255 scale,
the evaluator's verdicts, and a seam measure across the edge of a repainted region.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from generation.bundled import evaluator
from generation.bundled.dataset import COLOURS, Background, Scene, sample_scene
from generation.models.loading import LoadedModel
from generation.operations.imagine import run_imagine
from generation.operations.inpaint import run_outpaint, seam_margin
from generation.operations.masks import box_mask
from generation.operations.vary import run_vary
from generation.prompt import parse_prompt
from generation.specs import (
    STRONG_STRENGTH,
    SUBTLE_STRENGTH,
    ImagineSpec,
    OutpaintOperation,
    RegionBox,
    imagine_spec,
    outpaint_spec,
    vary_spec,
)

SOURCE_HASH = "0" * 64  # the operations read the picture itself; the hash only names it in the spec
VARY_STRENGTHS = (SUBTLE_STRENGTH, STRONG_STRENGTH, 1.0)
CHAOS_LEVELS = (0, 50, 100)
SEAM_BOX = RegionBox(left=0.25, top=0.25, right=0.75, bottom=0.75)


def one_shape_scenes(count: int, seed: int = 2022) -> list[Scene]:
    rng = random.Random(seed)
    return [sample_scene(rng, max_shapes=1) for _ in range(count)]


def open_layout(scene: Scene) -> Scene:
    """The scene with its shape's position left to the model: what a user who names no place types,
    and what Vary and --chaos are measured on (--tile and the layout spread: `open_on_solid`). A caption that pins colour, shape, size and place
    leaves a model that follows it nothing to vary (the second model's full-caption Vary changes are
    4.6 / 5.2 / 5.2 at subtle / strong / 1.0: one picture per prompt, as it should be)."""
    first = dataclasses.replace(scene.shapes[0], says_position=False)
    return dataclasses.replace(scene, shapes=(first, *scene.shapes[1:]))


def open_on_solid(scene: Scene) -> Scene:
    """The scene with its position left open, on a solid background (its first colour): a prompt that
    can repeat under --tile (a gradient cannot wrap, stripes only when a whole number fits the side),
    and one whose shape is found by its distance from the border's colour."""
    solid = Background("solid", scene.background.colours[:1])
    return dataclasses.replace(open_layout(scene), background=solid)


def change(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two pictures, 0-255."""
    return float(np.abs(_rgb(a) - _rgb(b)).mean())


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def picture(model: LoadedModel, scene: Scene, seed: int, extra: str = "") -> tuple[ImagineSpec, Image.Image]:
    return prompt_picture(model, f"{scene.caption()} --seed {seed} {extra}")


def prompt_picture(model: LoadedModel, prompt: str) -> tuple[ImagineSpec, Image.Image]:
    """One picture of `prompt` (its flags included) through the product's imagine path."""
    spec = imagine_spec(parse_prompt(prompt.strip()), model.config, model.resolution, count=1)
    return spec, run_imagine(model, spec).images[0]


def vary_changes(model: LoadedModel, scenes: list[Scene]) -> dict[float, float]:
    """Mean change of a variation from its source, per strength, with the picture's own prompt (one
    that leaves the layout open)."""
    changes: dict[float, list[float]] = {strength: [] for strength in VARY_STRENGTHS}
    for index, scene in enumerate(scenes):
        base, source = picture(model, open_layout(scene), 300 + index)
        for strength in VARY_STRENGTHS:
            spec = vary_spec(base, SOURCE_HASH, source.size, model.resolution, strength, seeds=(900 + index,))
            changes[strength].append(change(run_vary(model, spec, source).images[0], source))
    return {strength: statistics.mean(values) for strength, values in changes.items()}


def chaos_diversity(model: LoadedModel, scenes: list[Scene]) -> dict[int, float]:
    """Mean change between the pictures of one grid, per --chaos level (prompts that leave the layout open)."""
    diversity: dict[int, list[float]] = {level: [] for level in CHAOS_LEVELS}
    for index, scene in enumerate(scenes):
        for level in CHAOS_LEVELS:
            parsed = parse_prompt(f"{open_layout(scene).caption()} --seed {700 + index} --chaos {level}")
            grid = run_imagine(model, imagine_spec(parsed, model.config, model.resolution)).images
            diversity[level].append(statistics.mean(change(a, b) for a, b in itertools.combinations(grid, 2)))
    return {level: statistics.mean(values) for level, values in diversity.items()}


Box = tuple[int, int, int, int]  # left, top, right, bottom
Edge = str  # "left", "top", "right" or "bottom"


def across_edges(image: Image.Image, box: Box, edges: frozenset[Edge] | None = None) -> float:
    """Mean difference of pixels mirrored across the edges of `box` (1, 2 and 3 pixels either side),
    0-255: how much the picture changes across that rectangle's outline. By default the edges with 3
    pixels on both sides inside the picture (`inner_edges`)."""
    pixels = _rgb(image)
    left, top, right, bottom = box
    edges = inner_edges(image, box) if edges is None else edges
    pairs = []
    for k in range(3):
        if "left" in edges:
            pairs += [pixels[top:bottom, left - 1 - k] - pixels[top:bottom, left + k]]
        if "right" in edges:
            pairs += [pixels[top:bottom, right + k] - pixels[top:bottom, right - 1 - k]]
        if "top" in edges:
            pairs += [pixels[top - 1 - k, left:right] - pixels[top + k, left:right]]
        if "bottom" in edges:
            pairs += [pixels[bottom + k, left:right] - pixels[bottom - 1 - k, left:right]]
    return float(np.mean([np.abs(pair).mean() for pair in pairs]))


def inner_edges(image: Image.Image, box: Box) -> frozenset[Edge]:
    left, top, right, bottom = box
    inside = {
        "left": 3 <= left <= image.width - 3,
        "right": 3 <= right <= image.width - 3,
        "top": 3 <= top <= image.height - 3,
        "bottom": 3 <= bottom <= image.height - 3,
    }
    return frozenset(edge for edge, yes in inside.items() if yes)


def region_seams(model: LoadedModel, scenes: list[Scene]) -> float:
    """Median seam excess of Vary (Region) over the centre box, with the picture's own prompt: the
    change across the box's outline in the result, less the source's across the same outline (its own
    texture there). A band of another colour along the seam shows as a large value."""
    excess = []
    for index, scene in enumerate(scenes):
        base, source = picture(model, scene, 400 + index)
        spec = vary_spec(
            base, SOURCE_HASH, source.size, model.resolution, 1.0, box=SEAM_BOX, seeds=(950 + index,)
        )
        box = box_mask(source.size, SEAM_BOX).getbbox()  # the pixels the operation repaints
        assert box is not None
        result = run_vary(model, spec, source).images[0]
        excess.append(across_edges(result, box) - across_edges(source, box))
    return statistics.median(excess)


OutpaintSeams = dict[str, float]  # per operation: "zoom" (1.5x), "square" (of a 2:1 crop)


def outpaint_seams(model: LoadedModel, scenes: list[Scene]) -> OutpaintSeams:
    """Median seam excess where Zoom Out's or Make Square's new part meets the kept picture: the change
    across the kept picture's outline, less the median change across parallel outlines one and two
    latent cells inside and outside it (the result's own texture on either side of the seam).

    Whole cells, so that each parallel outline sits where the kept one does on the VAE's grid: a
    decoder leaves a faint texture along its cell edges, and Make Square's outline lies on them (on
    the second model's own pictures, without any outpainting, 0.56/255 more change there than 3
    pixels off it, 16 pictures)."""
    cell = seam_margin(model)
    excess: dict[str, list[float]] = {"zoom": [], "square": []}
    for index, scene in enumerate(scenes):
        base, whole = picture(model, scene, 500 + index)
        width, height = whole.size
        wide = whole.crop((0, height // 4, width, height // 4 + height // 2))  # 2:1, shape likely kept
        operations: tuple[tuple[OutpaintOperation, Image.Image], ...] = (("zoom", whole), ("square", wide))
        for operation, source in operations:
            spec = outpaint_spec(
                base, SOURCE_HASH, source.size, operation, model.resolution, zoom=1.5, seeds=(980 + index,)
            )
            result = run_outpaint(model, spec, source).images[0]
            place = spec.placement
            box = (place.left, place.top, place.left + place.width, place.top + place.height)
            excess[operation].append(
                across_edges(result, box) - statistics.median(_parallel_changes(result, box, cell))
            )
    return {operation: statistics.median(values) for operation, values in excess.items()}


def _parallel_changes(image: Image.Image, box: Box, cell: int) -> list[float]:
    """The change across outlines parallel to `box`'s inner edges, one and two `cell`s inside and outside."""
    edges = inner_edges(image, box)
    left, top, right, bottom = box
    changes = []
    for offset in (-2 * cell, -cell, cell, 2 * cell):  # negative: inside the box
        parallel = (left - offset, top - offset, right + offset, bottom + offset)
        if edges <= inner_edges(image, parallel) and parallel[0] < parallel[2] and parallel[1] < parallel[3]:
            changes.append(across_edges(image, _inside(parallel, image.size), edges))
    return changes


def _inside(box: Box, size: tuple[int, int]) -> Box:
    """`box` clipped to the picture (its edges on the border are not among those measured)."""
    left, top, right, bottom = box
    width, height = size
    return max(left, 0), max(top, 0), min(right, width), min(bottom, height)


@dataclass(frozen=True)
class TileVerdicts:
    colour: float  # share of --tile pictures whose evaluator verdict matches the prompt
    shape: float
    seam: float  # median wrap_seam


def tile_verdicts(model: LoadedModel, judge: evaluator.SceneClassifier, scenes: list[Scene]) -> TileVerdicts:
    """--tile on prompts that can repeat (`open_on_solid`). A tile is the same pattern whichever pixel
    it starts at, so the evaluator reads each one rolled to centre its foreground (a shape across the
    wrap is still one shape)."""
    pictures = [
        picture(model, open_on_solid(scene), 600 + index, "--tile")[1] for index, scene in enumerate(scenes)
    ]
    verdicts = evaluator.classify(judge, [centred_tile(image) for image in pictures])
    right = [
        (v.colour == s.shapes[0].colour, v.shape == s.shapes[0].shape)
        for v, s in zip(verdicts, scenes, strict=True)
    ]
    seams = [wrap_seam(image) for image in pictures]
    return TileVerdicts(
        statistics.mean(c for c, _ in right), statistics.mean(s for _, s in right), statistics.median(seams)
    )


def centred_tile(image: Image.Image) -> Image.Image:
    """The tile rolled so that the circular mean of its foreground (pixels far from its median colour)
    is at the centre."""
    pixels = _rgb(image)
    far = np.linalg.norm(pixels - np.median(pixels.reshape(-1, 3), axis=0), axis=2) > 80
    if not far.any():
        return image
    rows, columns = np.nonzero(far)
    shifts = [
        round(size / 2 - _circular_mean(coordinates, size))
        for coordinates, size in ((rows, image.height), (columns, image.width))
    ]
    return Image.fromarray(np.roll(np.asarray(image.convert("RGB")), shifts, axis=(0, 1)))


def _circular_mean(coordinates: np.ndarray, size: int) -> float:
    angles = coordinates * 2 * np.pi / size
    return float(np.arctan2(np.sin(angles).mean(), np.cos(angles).mean()) % (2 * np.pi) * size / (2 * np.pi))


def wrap_seam(image: Image.Image) -> float:
    """How much more the tile steps across its wrap (last column to first, last row to first) than
    across the lines 2-5 pixels either side of it (0-255; a shape crossing the wrap crosses those too)."""
    pixels = _rgb(image)
    height, width = pixels.shape[:2]
    rolled = np.roll(pixels, (height // 2, width // 2), axis=(0, 1))  # the wrap in the middle
    columns = np.abs(np.diff(rolled, axis=1)).mean(axis=(0, 2))  # columns[k]: step from k to k + 1
    rows = np.abs(np.diff(rolled, axis=0)).mean(axis=(1, 2))
    excess = []
    for steps, middle in ((columns, width // 2 - 1), (rows, height // 2 - 1)):
        beside = [steps[middle + offset] for offset in (-5, -4, -3, -2, 2, 3, 4, 5)]
        excess.append(float(steps[middle] - np.median(beside)))
    return statistics.mean(excess)


def layout_spread(model: LoadedModel, scenes: list[Scene]) -> float:
    """How far apart four seeds of a prompt that leaves the layout open put the shape: the mean
    distance between the shapes' centres (pixels far from the border's colour, so on a solid
    background: `open_on_solid`), as a share of the side."""
    spreads = []
    for index, scene in enumerate(scenes):
        parsed = parse_prompt(f"{open_on_solid(scene).caption()} --seed {800 + index}")
        grid = run_imagine(model, imagine_spec(parsed, model.config, model.resolution)).images
        centres = [centre for image in grid if (centre := _shape_centre(image)) is not None]
        if len(centres) >= 2:
            spreads.append(
                statistics.mean(
                    float(np.hypot(a[0] - b[0], a[1] - b[1])) for a, b in itertools.combinations(centres, 2)
                )
            )
    return statistics.mean(spreads) if spreads else 0.0


def _shape_centre(image: Image.Image) -> tuple[float, float] | None:
    pixels = _rgb(image)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    far = np.linalg.norm(pixels - np.median(border, axis=0), axis=2) > 80
    if far.mean() < 0.01:
        return None
    rows, columns = np.nonzero(far)
    return columns.mean() / image.width, rows.mean() / image.height


FRAME_BACKGROUNDS = ("white", "black", "blue", "yellow", "gray", "green", "red", "purple")


def frame_marks(model: LoadedModel, count: int = 16, *, open_layout: bool = False) -> dict[str, float]:
    """What each corner and each edge of a picture adds of its own, averaged over `count` pictures of a
    small centred shape on a solid background (issue 22: no fixed artefacts, no border lines). The VAE
    encoder pads only the right and bottom edges, and the bottom-right corner carried a 2-3 px colour
    fringe (bench/RESULTS.md, sessions 30-31). Keys: TL, TR, BL, BR, then left, right, top, bottom.
    `open_layout`: a medium shape whose place the prompt leaves open ("a red circle on a blue
    background", the README's prompt), where the marks are larger (session 32)."""
    scenes = frame_scenes(count, open_layout=open_layout)
    return mean_frame_marks(picture(model, scene, 100 + index)[1] for index, scene in enumerate(scenes))


def prompt_frame_marks(model: LoadedModel, prompt: str, seeds: Iterable[int]) -> dict[str, float]:
    """`frame_marks` for one prompt's pictures, one per seed, each the median over the seeds: the
    fringe and the edge line were far stronger for some prompts than on average (the README's "a red
    circle on a blue background": BR 26 and right 12 against 12 and 5 over frame_marks' open layouts;
    session 32). The prompt leaves the place open, so one seed may draw the shape into an edge, which
    is no mark but reads as one there (seed 1 of the README's: bottom 27-36); the median leaves it out."""
    pictures = (prompt_picture(model, f"{prompt} --seed {seed}")[1] for seed in seeds)
    return mean_frame_marks(pictures, average=statistics.median)


def frame_scenes(count: int, *, open_layout: bool = False) -> list[Scene]:
    """`count` small centred shapes (or, `open_layout`, medium ones placed by the model), each on a
    solid background of its own (FRAME_BACKGROUNDS in turn)."""
    rng = random.Random(5)
    scenes = []
    for index in range(count):
        background = FRAME_BACKGROUNDS[index % len(FRAME_BACKGROUNDS)]
        colour = rng.choice([c for c in COLOURS if c != background])
        shape = dataclasses.replace(
            sample_scene(rng, max_shapes=1).shapes[0], position="centre", size="small", colour=colour
        )
        if open_layout:
            shape = dataclasses.replace(shape, size="medium", says_position=False)
        scenes.append(Scene((shape,), Background("solid", (background,))))
    return scenes


def mean_frame_marks(
    images: Iterable[Image.Image], average: Callable[[list[float]], float] = statistics.mean
) -> dict[str, float]:
    """Each corner's and each edge's mark (picture_corner_marks, picture_edge_marks) averaged over
    `images` (by `average`: the mean, or the median)."""
    marks: dict[str, list[float]] = {}
    for image in images:
        pixels = _rgb(image)
        for name, mark in (picture_corner_marks(pixels) | picture_edge_marks(pixels)).items():
            marks.setdefault(name, []).append(mark)
    return {name: average(values) for name, values in marks.items()}


def picture_corner_marks(pixels: np.ndarray) -> dict[str, float]:
    """Each corner's 3x3 pixels' mean distance (0-255) from the mean colour of the 8x8 block
    diagonally inside them: on a flat background, what the corner adds of its own."""
    marks = {}
    for name, rows, columns in (("TL", 1, 1), ("TR", 1, -1), ("BL", -1, 1), ("BR", -1, -1)):
        flipped = pixels[::rows, ::columns]
        marks[name] = _distance_from_mean_colour(flipped[:3, :3], flipped[3:11, 3:11])
    return marks


def picture_edge_marks(pixels: np.ndarray) -> dict[str, float]:
    """Each edge's last 3 lines (8 px short of the corners at both ends) against the mean colour of the
    8 lines inside them, as `picture_corner_marks` reads a corner: a line along the edge shows here."""
    views = {
        "left": pixels,
        "right": pixels[:, ::-1],
        "top": pixels.transpose(1, 0, 2),
        "bottom": pixels.transpose(1, 0, 2)[:, ::-1],
    }
    marks = {}
    for name, view in views.items():  # in each view the edge is column 0
        marks[name] = _distance_from_mean_colour(view[8:-8, :3], view[8:-8, 3:11])
    return marks


def _distance_from_mean_colour(pixels: np.ndarray, inside: np.ndarray) -> float:
    """Mean distance (0-255) of `pixels` from the mean colour of `inside`."""
    return float(np.abs(pixels.reshape(-1, 3) - inside.reshape(-1, 3).mean(axis=0)).mean())
