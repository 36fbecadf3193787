"""Decoding: every mode becomes upright 8-bit RGB; bad input fails naming the file."""

from __future__ import annotations

import io
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from facelens.core.imaging import (
    THUMBNAIL_MAX_SIDE,
    decode_image,
    downscale,
    encode_image,
    face_thumbnail,
    read_image_file,
    sharpness,
)
from facelens.errors import ImageError, ImageTooComplex, ImageTooLarge, InputPathError
from facelens.jobs.review import MIN_SHARPNESS
from facelens.models.base import Box
from tests.support.helpers import png_header_only, progressive_jpeg_with_repeated_scan

LIMIT = 50_000_000


def encoded(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_common_formats_decode_to_rgb(fmt: str) -> None:
    source = Image.new("RGB", (40, 30), (200, 100, 50))
    image = decode_image(encoded(source, fmt), source="x", max_pixels=LIMIT)
    assert image.pixels.shape == (30, 40, 3) and image.pixels.dtype == np.uint8
    assert image.format == fmt
    assert abs(int(image.pixels[15, 20, 0]) - 200) < 8


def test_transparent_pixels_become_white_not_black() -> None:
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    image = decode_image(encoded(rgba, "PNG"), source="x", max_pixels=LIMIT)
    assert image.pixels.min() == 255


def test_palette_with_transparency_and_greyscale_decode() -> None:
    palette = Image.new("P", (8, 8), 3)
    palette.putpalette([0, 0, 0, 10, 20, 30, 40, 50, 60, 70, 80, 90] + [0] * 756)
    data = encoded(palette, "PNG", transparency=0)
    assert decode_image(data, source="x", max_pixels=LIMIT).pixels[0, 0].tolist() == [70, 80, 90]
    grey = decode_image(encoded(Image.new("L", (5, 5), 77), "PNG"), source="x", max_pixels=LIMIT)
    assert grey.pixels[0, 0].tolist() == [77, 77, 77]


def test_16_bit_greyscale_keeps_its_range() -> None:
    array = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    image = decode_image(encoded(Image.fromarray(array), "PNG"), source="x", max_pixels=LIMIT)
    assert image.pixels[0, 1, 0] == 255 and image.pixels[1, 0, 0] == 127
    assert image.pixels[0, 0, 0] == 0


def test_exif_orientation_is_applied() -> None:
    source = Image.new("RGB", (60, 20), (10, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    image = decode_image(encoded(source, "JPEG", exif=exif), source="x", max_pixels=LIMIT)
    assert (image.width, image.height) == (20, 60)


def _oriented(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


@pytest.mark.parametrize("orientation", range(1, 9))
def test_pixels_are_pillows_upright_rgb_in_every_orientation(orientation: int) -> None:
    noise = np.random.default_rng(orientation).integers(0, 256, (90, 130, 3), dtype=np.uint8)
    data = encoded(Image.fromarray(noise), "JPEG", exif=_oriented(orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    pixels = decode_image(data, source="x", max_pixels=LIMIT).pixels
    assert pixels.shape == expected.shape and np.array_equal(pixels, expected)
    assert decode_image(data, source="x", max_pixels=LIMIT).reduction is None


def test_a_large_jpeg_to_analyse_is_decoded_reduced_and_keeps_its_full_size() -> None:
    data = encoded(Image.new("RGB", (2600, 1400), (90, 120, 150)), "JPEG")
    image = decode_image(data, source="x", max_pixels=LIMIT, reduce_to=640)
    assert image.reduction is not None and image.reduction.scale == 4  # 650 px >= 640
    assert image.pixels.shape == (350, 650, 3)
    assert (image.width, image.height) == (2600, 1400)
    full = image.reduction.full()
    assert full.reduction is None and full.pixels.shape == (1400, 2600, 3)
    halved = decode_image(data, source="x", max_pixels=LIMIT, reduce_to=1000)
    assert halved.reduction is not None and halved.pixels.shape == (700, 1300, 3)


@pytest.mark.parametrize(
    ("fmt", "size", "reduce_to"),
    [("PNG", (2600, 1400), 640), ("WEBP", (2600, 1400), 640), ("JPEG", (1279, 700), 640)],
)
def test_other_formats_and_smaller_jpegs_are_decoded_whole(
    fmt: str, size: tuple[int, int], reduce_to: int
) -> None:
    data = encoded(Image.new("RGB", size, (90, 120, 150)), fmt)
    image = decode_image(data, source="x", max_pixels=LIMIT, reduce_to=reduce_to)
    assert image.reduction is None and image.pixels.shape == (size[1], size[0], 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_reduced_pixels_map_back_exactly_in_every_orientation(orientation: int) -> None:
    # 1041 x 723 reduced 8 times is 131 x 91: the last reduced column and row reach 7 and 5
    # pixels past the stored edges, which moves everything when an orientation mirrors them.
    stored = Image.new("L", (1041, 723), 255)
    stored.paste(0, (160, 80, 240, 200))  # black, on whole 8 x 8 blocks
    data = encoded(stored, "JPEG", quality=100, exif=_oriented(orientation))
    full = decode_image(data, source="x", max_pixels=LIMIT)
    reduced = decode_image(data, source="x", max_pixels=LIMIT, reduce_to=100)
    assert reduced.reduction is not None and reduced.reduction.scale == 8
    assert (reduced.width, reduced.height) == (full.width, full.height)

    def dark(pixels: np.ndarray) -> Box:
        ys, xs = np.nonzero(pixels[:, :, 0] < 128)
        return Box(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)

    assert reduced.reduction.box(dark(reduced.pixels)) == dark(full.pixels)
    corners = np.array([[0.0, 0.0], [1.0, 1.0]])
    assert np.array_equal(
        reduced.reduction.points(corners), corners * 8 + np.array(reduced.reduction.offset)
    )


def _jpeg_header_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header says ``width`` x ``height``."""
    data = bytearray(encoded(Image.new("RGB", (16, 16)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_bombs_are_refused_before_decoding_even_when_decoding_reduced() -> None:
    with pytest.raises(ImageTooLarge, match="60000x60000"):
        decode_image(
            _jpeg_header_claiming(60_000, 60_000), source="b.jpg", max_pixels=LIMIT, reduce_to=640
        )
    with pytest.raises(ImageTooComplex, match="scans"):
        decode_image(
            progressive_jpeg_with_repeated_scan(30_000),
            source="b.jpg",
            max_pixels=LIMIT,
            reduce_to=640,
        )


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"hello, I am text pretending to be a JPEG\n", "not an image"),
        (encoded(Image.new("RGB", (300, 300), (1, 2, 3)), "JPEG")[:400], "truncated"),
    ],
)
def test_bad_bytes_raise_image_error_naming_the_file(data: bytes, words: str) -> None:
    with pytest.raises(ImageError, match=words) as info:
        decode_image(data, source="holiday/photo.jpg", max_pixels=LIMIT)
    assert "holiday/photo.jpg" in str(info.value)


def test_huge_dimensions_are_refused_before_decoding() -> None:
    start = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="10,000,000,000 pixels") as info:
        decode_image(png_header_only(100_000, 100_000), source="bomb.png", max_pixels=LIMIT)
    assert time.perf_counter() - start < 1.0  # decoding 10 Gpx would take minutes and 30 GB
    assert "FACELENS_MAX_PIXELS" in str(info.value)


def test_pixel_limit_is_a_setting() -> None:
    data = encoded(Image.new("RGB", (100, 100)), "PNG")
    decode_image(data, source="x", max_pixels=10_000)
    with pytest.raises(ImageTooLarge):
        decode_image(data, source="x", max_pixels=9_999)


def test_missing_file_and_folder_are_path_errors(tmp_path: Path) -> None:
    with pytest.raises(InputPathError, match="no such file"):
        read_image_file(tmp_path / "nope.jpg", max_pixels=LIMIT)
    with pytest.raises(InputPathError, match="is a folder"):
        read_image_file(tmp_path, max_pixels=LIMIT)


def test_downscale_bounds_the_longest_side_and_reports_the_factor() -> None:
    pixels = np.zeros((1000, 3000, 3), dtype=np.uint8)
    small, factor = downscale(pixels, 800)
    assert small.shape == (267, 800, 3) and factor == pytest.approx(3.75)
    same, one = downscale(pixels[:100, :200], 800)
    assert same.shape == (100, 200, 3) and one == 1.0


def test_encode_round_trips() -> None:
    pixels = np.full((20, 30, 3), 128, dtype=np.uint8)
    for fmt in ("JPEG", "PNG"):
        back = decode_image(encode_image(pixels, format=fmt), source="x", max_pixels=LIMIT)
        assert back.pixels.shape == pixels.shape


def test_a_jpeg_with_thousands_of_repeated_scans_is_refused_before_decoding() -> None:
    bomb = progressive_jpeg_with_repeated_scan(30_000)
    assert len(bomb) < 2_000_000  # small, and within the pixel limit
    with pytest.raises(ImageTooComplex, match=r"30,0\d\d scans"):
        decode_image(bomb, source="bomb.jpg", max_pixels=50_000_000)
    # The same file with its scans as the encoder wrote them decodes.
    plain = progressive_jpeg_with_repeated_scan(0, size=(400, 300))
    assert decode_image(plain, source="ok.jpg", max_pixels=50_000_000).width == 400


def test_a_strip_too_long_for_a_photo_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooComplex, match=r"1x40000000 is not a photo's shape"):
        decode_image(png_header_only(1, 40_000_000), source="strip.png", max_pixels=50_000_000)
    panorama = io.BytesIO()
    Image.new("RGB", (2000, 200)).save(panorama, "PNG")  # 10:1 is a photo
    assert decode_image(panorama.getvalue(), source="p.png", max_pixels=10**8).width == 2000


def test_a_face_thumbnail_is_a_small_jpeg_of_the_face_with_a_margin() -> None:
    pixels = np.full((1000, 1500, 3), 255, dtype=np.uint8)
    pixels[400:700, 600:900] = (200, 30, 30)  # the "face"
    jpeg = face_thumbnail(pixels, Box(600, 400, 900, 700))
    thumb = Image.open(io.BytesIO(jpeg))
    assert thumb.format == "JPEG" and max(thumb.size) == THUMBNAIL_MAX_SIDE
    rgb = np.asarray(thumb.convert("RGB"), dtype=int)
    assert np.abs(rgb[80, 80] - (200, 30, 30)).max() < 30  # the face in the middle
    assert rgb[2, 2].min() > 230  # the margin around it
    corner = Image.open(io.BytesIO(face_thumbnail(pixels, Box(-20, -20, 60, 60))))
    assert max(corner.size) <= THUMBNAIL_MAX_SIDE  # a box over the edge is clipped


def test_sharpness_drops_when_the_face_is_blurred(faces_dir: Path) -> None:
    image = read_image_file(faces_dir / "probes" / "obama1.jpg", max_pixels=50_000_000)
    box = Box(541, 118, 904, 631)  # where both models find the face
    sharp = sharpness(image.pixels, box)
    blurred = cv2.GaussianBlur(image.pixels, (0, 0), 0.04 * box.width)  # visibly blurred
    assert sharp >= MIN_SHARPNESS > sharpness(blurred, box)
