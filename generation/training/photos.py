"""Preparing a user's training photos (Pillow only, so the bot can check them before queueing a job).

Each photo is opened safely, turned upright (EXIF), centre-cropped to a square and resized to the
model's resolution; near-duplicates are dropped so five copies of one photo do not pass for five.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from generation.outputs import encode_png
from generation.pictures.uploads import UserImageError, open_user_image
from generation.specs import MAX_TRAIN_IMAGES, MIN_TRAIN_IMAGES

DUPLICATE_DISTANCE = 2  # difference-hash bits: re-encodes and resizes of one photo differ by fewer


class TrainingPhotosError(UserImageError):
    """The photos cannot be used for training; the message says what to change."""


@dataclass(frozen=True)
class PreparedPhotos:
    pngs: tuple[bytes, ...]  # square PNGs at the model's resolution, in upload order
    dropped_duplicates: tuple[str, ...]  # labels of the photos dropped as duplicates


def prepare_training_photos(photos: Sequence[tuple[str, bytes]], resolution: int) -> PreparedPhotos:
    """Validate and preprocess (label, bytes) pairs; raise TrainingPhotosError with a clear reason."""
    _check_count(len(photos), "photos")
    kept: list[tuple[int, Image.Image]] = []
    dropped: list[str] = []
    for label, data in photos:
        image = open_user_image(data, label)
        if min(image.size) < resolution // 2:
            raise TrainingPhotosError(
                f"{label} is {image.width}x{image.height}; photos must be at least "
                f"{resolution // 2} pixels on the short side for this model"
            )
        square = ImageOps.fit(image, (resolution, resolution), Image.Resampling.LANCZOS)
        fingerprint = difference_hash(square)
        if any(bin(fingerprint ^ other).count("1") <= DUPLICATE_DISTANCE for other, _ in kept):
            dropped.append(label)
            continue
        kept.append((fingerprint, square))
    if len(kept) < MIN_TRAIN_IMAGES:
        raise TrainingPhotosError(
            f"only {len(kept)} different photos after dropping duplicates ({', '.join(dropped)}); "
            f"upload at least {MIN_TRAIN_IMAGES} different ones"
        )
    return PreparedPhotos(tuple(encode_png(image) for _, image in kept), tuple(dropped))


def difference_hash(image: Image.Image, size: int = 8) -> int:
    """64-bit dHash: whether each pixel of a tiny greyscale copy is brighter than its right neighbour."""
    small = np.asarray(image.convert("L").resize((size + 1, size), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = 0
    for brighter in (small[:, :-1] > small[:, 1:]).flatten():
        bits = (bits << 1) | int(brighter)
    return bits


def _check_count(count: int, what: str) -> None:
    if not MIN_TRAIN_IMAGES <= count <= MAX_TRAIN_IMAGES:
        raise TrainingPhotosError(
            f"{count} {what} given; training needs {MIN_TRAIN_IMAGES} to {MAX_TRAIN_IMAGES}"
        )
