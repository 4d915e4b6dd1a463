"""Opening images that users upload: never trust the bytes, the size or the orientation.

Pillow is the only decoder that ever sees user bytes; a file that is not an image, an image too large
to decode safely (a "decompression bomb": a small file that expands to gigapixels) or a truncated one
is refused with a `UserImageError` whose message the user can act on.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from generation.errors import DreamcordError

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000  # 40 MP: above any phone photo, far below what a bomb expands to
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")


class UserImageError(DreamcordError):
    """An uploaded file that cannot be used as an image; the message says which file and why."""


def open_user_image(data: bytes, label: str = "the image") -> Image.Image:
    """Decode `data` into an upright RGB image, or raise UserImageError saying what is wrong."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise UserImageError(
            f"{label} is {len(data) / 2**20:.1f} MiB; the limit is {MAX_UPLOAD_BYTES // 2**20} MiB"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
                _check_pixels(image, label)
                image.load()
                upright = ImageOps.exif_transpose(image)
                return upright.convert("RGB")
    except UserImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserImageError(
            f"{label} is far too large to open safely (the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels)"
        ) from None
    except UnidentifiedImageError:
        raise UserImageError(f"{label} is not an image (PNG, JPEG, WebP, GIF or BMP)") from None
    except (OSError, SyntaxError, ValueError):
        raise UserImageError(f"{label} is damaged or cut off; try saving it again") from None


def _check_pixels(image: Image.Image, label: str) -> None:
    # Checked from the header, before any pixel is decoded.
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise UserImageError(
            f"{label} is {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels"
        )
