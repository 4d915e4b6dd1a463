"""Training photos: opened safely, turned upright, cropped square, de-duplicated, counted."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from generation.pictures.uploads import UserImageError, open_user_image
from generation.training.photos import (
    DUPLICATE_DISTANCE,
    TrainingPhotosError,
    difference_hash,
    prepare_training_photos,
)


def png(image: Image.Image, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **save)
    return buffer.getvalue()


def photo(seed: int, size: tuple[int, int] = (96, 80)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def labelled(images: list[Image.Image]) -> list[tuple[str, bytes]]:
    return [(f"photo{i}.png", png(image)) for i, image in enumerate(images)]


def test_photos_are_cropped_square_to_the_model_resolution() -> None:
    prepared = prepare_training_photos(labelled([photo(i) for i in range(3)]), resolution=64)
    assert len(prepared.pngs) == 3
    for data in prepared.pngs:
        assert Image.open(io.BytesIO(data)).size == (64, 64)


def test_exif_orientation_is_applied() -> None:
    # A landscape picture stored with "rotate 90" in EXIF is portrait when shown: the crop must see it so.
    image = Image.new("RGB", (120, 60), "white")
    image.paste((255, 0, 0), (0, 0, 60, 60))  # the left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=95)
    upright = open_user_image(buffer.getvalue())
    assert upright.size == (60, 120)
    top, bottom = np.asarray(upright)[10, 30], np.asarray(upright)[110, 30]
    assert top[0] > 200 and top[1] < 80  # after turning, the red half is on top
    assert bottom.min() > 200


def test_duplicates_are_dropped_and_reported() -> None:
    first = photo(1)
    resized_copy = first.resize((192, 160))
    images = labelled([first, photo(2), resized_copy, photo(3)])
    prepared = prepare_training_photos(images, resolution=64)
    assert len(prepared.pngs) == 3
    assert prepared.dropped_duplicates == ("photo2.png",)


def test_too_few_different_photos_is_an_error() -> None:
    with pytest.raises(TrainingPhotosError, match="at least 3 different"):
        prepare_training_photos(labelled([photo(1), photo(1), photo(2)]), resolution=64)


@pytest.mark.parametrize("count", [2, 21])
def test_photo_count_outside_3_to_20_is_an_error(count: int) -> None:
    with pytest.raises(TrainingPhotosError, match=f"{count} photos given; training needs 3 to 20"):
        prepare_training_photos(labelled([photo(i, (40, 40)) for i in range(count)]), resolution=64)


def test_too_small_photo_is_an_error() -> None:
    with pytest.raises(TrainingPhotosError, match=r"photo1.png is 20x20"):
        prepare_training_photos(labelled([photo(0), photo(1, (20, 20)), photo(2)]), resolution=64)


def test_text_renamed_to_png_is_refused() -> None:
    with pytest.raises(UserImageError, match=r"notes.png is not an image"):
        open_user_image(b"just some text, not a picture", "notes.png")


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # A 1-bit 30000x30000 PNG compresses to a few hundred KiB but would decode to 900 megapixels.
    bomb = png(Image.new("1", (30_000, 30_000)), optimize=True)
    assert len(bomb) < 2_000_000
    with pytest.raises(UserImageError, match=r"bomb.png is far too large .*the limit is 40 megapixels"):
        open_user_image(bomb, "bomb.png")


def test_image_over_the_pixel_limit_is_refused_from_its_header() -> None:
    big = png(Image.new("1", (8000, 6250)))  # 50 MP: under Pillow's own bomb limit, over ours
    with pytest.raises(UserImageError, match=r"big.png is 8000x6250 pixels; the limit is 40 megapixels"):
        open_user_image(big, "big.png")


def test_truncated_image_is_refused() -> None:
    data = png(photo(5))
    with pytest.raises(UserImageError, match="damaged or cut off"):
        open_user_image(data[: len(data) // 2], "cut.png")


def test_difference_hash_separates_different_pictures() -> None:
    resampled = photo(1).resize((50, 40)).resize((96, 80))
    assert bin(difference_hash(photo(1)) ^ difference_hash(resampled)).count("1") <= DUPLICATE_DISTANCE
    assert bin(difference_hash(photo(1)) ^ difference_hash(photo(2))).count("1") > 10
