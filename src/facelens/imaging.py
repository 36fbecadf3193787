"""Bytes → validated RGB arrays, and arrays → encoded images.

Every image goes through :func:`decode_image`: the format is checked, the declared pixel count
is compared with the limit *before* any pixel is decoded, EXIF orientation is applied, and any
mode (palette, 16-bit, alpha, greyscale, CMYK) becomes 8-bit RGB.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facelens.errors import ImageError, ImageTooLarge, InputPathError
from facelens.models.base import RGBImage

# Pillow's own bomb check raises on its own limit; we apply ours (a setting) instead.
Image.MAX_IMAGE_PIXELS = None

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "MPO", "GIF", "TIFF"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """An image ready for the models: RGB pixels, upright, with where it came from."""

    pixels: RGBImage
    source: str
    format: str

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def read_image_file(path: Path, *, max_pixels: int) -> DecodedImage:
    """Read and decode ``path``; every failure names the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputPathError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise InputPathError(f"{path}: is a folder, not an image file.") from None
    except OSError as exc:
        raise InputPathError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    return decode_image(data, source=str(path), max_pixels=max_pixels)


def decode_image(data: bytes, *, source: str, max_pixels: int) -> DecodedImage:
    """Decode ``data`` into upright 8-bit RGB, refusing non-images and oversized images."""
    if not data:
        raise ImageError(f"{source}: the file is empty, not an image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(
            f"{source}: not an image facelens can read (use JPEG, PNG, WebP or BMP)."
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(
            f"{source}: the image header is damaged or truncated ({exc}); re-export or re-copy it."
        ) from None
    if image.format not in SUPPORTED_FORMATS:
        raise ImageError(
            f"{source}: {image.format} images are not supported (use JPEG, PNG, WebP or BMP)."
        )
    fmt = str(image.format)
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{source}: {width}x{height} is {width * height:,} pixels, over the limit of "
            f"{max_pixels:,}; downscale it or raise FACELENS_MAX_PIXELS."
        )
    if width == 0 or height == 0:
        raise ImageError(f"{source}: the image has no pixels ({width}x{height}).")
    try:
        image.load()
        pixels = _to_rgb(ImageOps.exif_transpose(image))
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(
            f"{source}: the image data is corrupt or truncated ({exc}); re-export or re-copy it."
        ) from None
    return DecodedImage(pixels=pixels, source=source, format=fmt)


def _to_rgb(image: Image.Image) -> RGBImage:
    """Any Pillow mode → ``(h, w, 3)`` uint8 RGB; transparency is laid over white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale: keep the full range by scaling, not clipping, to 8 bits.
        grey = np.asarray(image, dtype=np.float64)
        top = 65535.0 if grey.max(initial=0) > 255 else 255.0
        grey8 = np.clip(grey * (255.0 / top), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.stack([grey8] * 3, axis=-1))
    if image.mode == "F":
        grey = np.asarray(image, dtype=np.float64)
        grey8 = np.clip(grey, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.stack([grey8] * 3, axis=-1))
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def downscale(pixels: RGBImage, max_side: int) -> tuple[RGBImage, float]:
    """A copy whose longest side is at most ``max_side``, and the factor back to the original."""
    height, width = pixels.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return pixels, 1.0
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # INTER_LINEAR: INTER_AREA costs more than YuNet's whole detection on a large photo.
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(small), longest / max_side


def encode_image(pixels: RGBImage, *, format: str = "JPEG", quality: int = 90) -> bytes:
    """Encode RGB pixels; JPEG by default, PNG/WebP/BMP when asked."""
    buffer = io.BytesIO()
    image = Image.fromarray(pixels, mode="RGB")
    if format.upper() in ("JPEG", "JPG", "MPO"):
        image.save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format=format.upper())
    return buffer.getvalue()
