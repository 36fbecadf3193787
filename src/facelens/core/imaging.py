"""Bytes → validated RGB arrays, and arrays → encoded images.

Every image goes through :func:`decode_image`: the format is checked, the declared pixel count
is compared with the limit *before* any pixel is decoded, EXIF orientation is applied, and any
mode (palette, 16-bit, alpha, greyscale, CMYK) becomes 8-bit RGB. A large JPEG that is only to
be analysed may be decoded reduced (``reduce_to``, see :class:`Reduction`).
"""

from __future__ import annotations

import functools
import io
import stat
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from facelens.errors import ImageError, ImageTooComplex, ImageTooLarge, InputPathError
from facelens.models.base import Box, Detection, Landmarks, RGBImage

# Pillow's own bomb check raises on its own limit; we apply ours (a setting) instead.
Image.MAX_IMAGE_PIXELS = None

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "MPO", "GIF", "TIFF"})
SUPPORTED_TEXT = "JPEG, PNG, WebP, BMP, GIF or TIFF"

# Decoding work has to be bounded before decoding, like the pixel count. A progressive JPEG
# holds ~10 scans (libjpeg's script; mozjpeg's up to a few dozen) and each scan is a pass over
# the whole image: one crafted with thousands of repeated scans fits in 1 MB and takes seconds
# per thousand. The marker is counted anywhere in the file (an EXIF thumbnail's scans too), an
# upper bound that costs one pass over the bytes.
MAX_JPEG_SCANS = 100
_JPEG_SOS = b"\xff\xda"
# A strip 1 pixel wide and 40 million long is within the pixel limit but costs seconds and GB
# to decode row by row, and holds no face. Panoramas are at most ~10:1.
MAX_ASPECT_RATIO = 20
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


# The first bytes of every supported format: how an upload is known to be an image when its
# field name, file name and part type say nothing (clients send "image", no extension, text/plain).
_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG (and MPO)
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
)


def looks_like_image(data: bytes) -> bool:
    """Whether ``data`` starts like a supported image format (decoding decides for sure)."""
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


# libjpeg decodes a JPEG at 1/2, 1/4 or 1/8 of its size by scaling in the DCT, for a fraction of
# the time and memory (a 12 MP photo: ~15 ms at 1/2 instead of ~30 ms, and the copies after it
# a quarter of the size); each output pixel is the mean of its block, a proper reduction.
DRAFT_SCALES = (8, 4, 2)
# EXIF orientations whose upright x (first) or y (second) axis runs against the stored one.
_REVERSED_X = frozenset({2, 3, 6, 7})
_REVERSED_Y = frozenset({3, 4, 7, 8})


@dataclass(frozen=True, slots=True)
class Reduction:
    """How the pixels of a JPEG decoded reduced map to the full image: a point at ``(x, y)`` in
    them (pixel edges) is at ``scale * (x, y) + offset`` in the full image, both upright. The
    offset is not zero when the orientation mirrors an axis whose length is not a multiple of
    ``scale`` (libjpeg rounds the reduced size up). ``full`` decodes the full image."""

    scale: int
    offset: tuple[int, int]
    size: tuple[int, int]  # the full image's upright width and height
    full: Callable[[], DecodedImage]

    def points(self, points: Landmarks) -> Landmarks:
        mapped: Landmarks = points * self.scale + np.array(self.offset, dtype=np.float64)
        return mapped

    def box(self, box: Box) -> Box:
        (dx, dy), s = self.offset, self.scale
        return Box(
            box.left * s + dx, box.top * s + dy, box.right * s + dx, box.bottom * s + dy
        ).clipped(*self.size)

    def detection(self, detection: Detection) -> Detection:
        """``detection`` (in the reduced pixels) in the full image's pixels."""
        landmarks = detection.landmarks
        return Detection(
            self.box(detection.box),
            detection.score,
            None if landmarks is None else self.points(landmarks),
        )


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """An image ready for the models: RGB pixels, upright, with where it came from. When
    ``reduction`` is set the pixels are the image reduced (see :class:`Reduction`); ``width``
    and ``height`` are always the full image's."""

    pixels: RGBImage
    source: str
    format: str
    reduction: Reduction | None = None

    @property
    def width(self) -> int:
        return self.reduction.size[0] if self.reduction else int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return self.reduction.size[1] if self.reduction else int(self.pixels.shape[0])


def max_file_bytes(max_pixels: int) -> int:
    """The largest image file worth reading: 4 bytes per allowed pixel (uncompressed RGBA)."""
    return 4 * max_pixels + (1 << 20)


def read_file_bytes(path: Path, *, max_pixels: int) -> bytes:
    """The bytes of an image file, checked first: a regular file (a FIFO would hang, a device
    never end) of a size an image within the pixel limit can have (a 3 GB file is not read)."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise InputPathError(f"{path}: is a folder, not an image file.")
        if not stat.S_ISREG(info.st_mode):
            raise InputPathError(f"{path}: is not a regular file (a pipe or a device?).")
        limit = max_file_bytes(max_pixels)
        if info.st_size > limit:
            raise ImageTooLarge(
                f"{path}: {info.st_size:,} bytes is larger than any image within the pixel limit "
                f"({limit:,} bytes); downscale it or raise FACELENS_MAX_PIXELS."
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise InputPathError(f"{path}: no such file.") from None
    except OSError as exc:
        raise InputPathError(f"{path}: cannot be read ({exc.strerror or exc}).") from None


@dataclass(frozen=True, slots=True)
class ImageFiles:
    """The files a batch of photos is made of, and the entries of its folders left out."""

    files: tuple[Path, ...]
    left_out: tuple[Path, ...]  # not images by their names, or sub-folders


def image_files(paths: Sequence[Path]) -> ImageFiles:
    """``paths`` with each folder replaced by its image files (by their names, sorted): what
    the shell's ``FOLDER/*`` gives, so neither its sub-folders nor hidden files. Files are
    checked when they are read (a pipe or a device is refused then, a folder's too)."""
    files: list[Path] = []
    left_out: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        try:
            entries = sorted(e for e in path.iterdir() if not e.name.startswith("."))
        except OSError as exc:
            raise InputPathError(f"{path}: cannot be listed ({exc.strerror or exc}).") from None
        images = {e for e in entries if e.suffix.lower() in IMAGE_SUFFIXES and not e.is_dir()}
        if not images:
            raise InputPathError(
                f"{path}: holds no images ({SUPPORTED_TEXT}, by their names); sub-folders are "
                "not searched: give them too."
            )
        files += [e for e in entries if e in images]
        left_out += [e for e in entries if e not in images]
    return ImageFiles(tuple(files), tuple(left_out))


def read_image_file(path: Path, *, max_pixels: int, reduce_to: int | None = None) -> DecodedImage:
    """Read and decode ``path``; every failure names the file."""
    data = read_file_bytes(path, max_pixels=max_pixels)
    return decode_image(data, source=str(path), max_pixels=max_pixels, reduce_to=reduce_to)


def decode_image(
    data: bytes, *, source: str, max_pixels: int, reduce_to: int | None = None
) -> DecodedImage:
    """Decode ``data`` into upright 8-bit RGB, refusing non-images and oversized images.

    With ``reduce_to``, a JPEG is decoded reduced 2, 4 or 8 times (the most that keeps its
    longest side at least ``reduce_to``), its ``reduction`` saying how to map back; for
    analysis only (drawing and thumbnails need the full image)."""
    if not data:
        raise ImageError(f"{source}: the file is empty, not an image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(
            f"{source}: not an image facelens can read (use {SUPPORTED_TEXT})."
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(
            f"{source}: the image header is damaged or truncated ({exc}); re-export or re-copy it."
        ) from None
    if image.format not in SUPPORTED_FORMATS:
        raise ImageError(
            f"{source}: {image.format} images are not supported (use {SUPPORTED_TEXT})."
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
    _check_decoding_work(data, fmt, width, height, source)
    scale = _draft_scale(fmt, width, height, reduce_to)
    try:
        if scale > 1:
            drafted = image.draft(None, (width // scale, height // scale))
            scale = 1 if drafted is None else round(width / drafted[1][2])
        image.load()
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1) if scale > 1 else 1
        ImageOps.exif_transpose(image, in_place=True)  # no copy when already upright
        pixels = _to_rgb(image)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(
            f"{source}: the image data is corrupt or truncated ({exc}); re-export or re-copy it."
        ) from None
    if scale == 1:
        return DecodedImage(pixels=pixels, source=source, format=fmt)
    full = functools.partial(decode_image, data, source=source, max_pixels=max_pixels)
    return DecodedImage(pixels, source, fmt, _reduction(scale, width, height, orientation, full))


def _draft_scale(fmt: str, width: int, height: int, reduce_to: int | None) -> int:
    """How many times smaller a JPEG may be decoded, its longest side staying at least
    ``reduce_to``; 1 for other formats or without ``reduce_to``."""
    if reduce_to is None or fmt not in ("JPEG", "MPO"):
        return 1
    return next((s for s in DRAFT_SCALES if max(width, height) >= s * reduce_to), 1)


def _reduction(
    scale: int, width: int, height: int, orientation: int, full: Callable[[], DecodedImage]
) -> Reduction:
    """The :class:`Reduction` of a ``width`` x ``height`` JPEG (as stored) decoded ``scale``
    times smaller, then turned upright by its EXIF ``orientation``."""
    # libjpeg's reduced size is rounded up: the last reduced pixel reaches past the stored
    # edge by this much, which moves everything when that edge is the upright start.
    over_x, over_y = -width % scale, -height % scale
    size = (width, height)
    if orientation in (5, 6, 7, 8):  # the axes swap
        over_x, over_y, size = over_y, over_x, (height, width)
    offset = (
        -over_x if orientation in _REVERSED_X else 0,
        -over_y if orientation in _REVERSED_Y else 0,
    )
    return Reduction(scale, offset, size, full)


def _check_decoding_work(data: bytes, fmt: str, width: int, height: int, source: str) -> None:
    """Refuse files whose decoding would cost far more than any photo's (see the limits)."""
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageTooComplex(
            f"{source}: {width}x{height} is not a photo's shape (more than "
            f"{MAX_ASPECT_RATIO}:1); crop it to the part with the faces."
        )
    if fmt in ("JPEG", "MPO"):
        scans = data.count(_JPEG_SOS)
        if scans > MAX_JPEG_SCANS:
            raise ImageTooComplex(
                f"{source}: the JPEG holds {scans:,} scans (a photo has at most a few dozen); "
                "it is refused because decoding it would take far too long. Re-save it."
            )


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
    if image.mode != "RGB":  # convert() copies even when there is nothing to convert
        image = image.convert("RGB")
    return _rgb_array(image)


_EXPORT_CHUNK = 1 << 20


def _rgb_array(image: Image.Image) -> RGBImage:
    """The pixels of an RGB image, packed straight into a new array. ``np.asarray`` goes
    through ``tobytes``, which packs them into pieces and joins those: two more copies of the
    whole image in memory fresh from the kernel (12 MP: ~50 ms here, mostly page faults;
    NumPy's own arrays get huge pages)."""
    pixels = np.empty((image.height, image.width, 3), dtype=np.uint8)
    flat = pixels.reshape(-1)
    encoder = Image._getencoder("RGB", "raw", "RGB")  # what tobytes() uses
    encoder.setimage(image.im, (0, 0, *image.size))
    done = 0
    while True:
        _, status, chunk = encoder.encode(_EXPORT_CHUNK)
        flat[done : done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        done += len(chunk)
        if status:
            break
    if status < 0 or done != flat.size:
        raise OSError(f"packing the pixels failed (status {status})")
    return pixels


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


THUMBNAIL_MAX_SIDE = 160
# The margin kept around a face box in a thumbnail, as a share of the box's size on each side:
# enough context for a detector to find the face again (gallery migrate re-embeds from it).
THUMBNAIL_MARGIN = 0.4


def face_thumbnail(pixels: RGBImage, box: Box, *, max_side: int = THUMBNAIL_MAX_SIDE) -> bytes:
    """A small JPEG of the face in ``box`` with a margin around it, its longest side at most
    ``max_side`` pixels."""
    height, width = pixels.shape[:2]
    dx, dy = round(box.width * THUMBNAIL_MARGIN), round(box.height * THUMBNAIL_MARGIN)
    crop = Box(box.left - dx, box.top - dy, box.right + dx, box.bottom + dy).clipped(width, height)
    region = pixels[crop.top : crop.bottom, crop.left : crop.right]
    if region.size == 0:
        region = pixels
    small, _ = downscale(np.ascontiguousarray(region), max_side)
    return encode_image(small, quality=85)


SHARPNESS_SIDE = 112  # the face is measured at the size the sface model sees it


def sharpness(pixels: RGBImage, box: Box) -> float:
    """How sharp the face in ``box`` is: the variance of the Laplacian of its grey pixels,
    measured at a fixed size so that large and small faces compare. Blurred faces score low."""
    height, width = pixels.shape[:2]
    inside = box.clipped(width, height)
    region = pixels[inside.top : inside.bottom, inside.left : inside.right]
    if region.size == 0:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    return round(float(cv2.Laplacian(grey, cv2.CV_64F).var()), 2)
