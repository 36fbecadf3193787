"""Drawing boxes and names on images, legibly at any size and in any script.

Names are set in Noto fonts installed as Python packages (all under the SIL Open Font Licence):
Noto Sans for Latin, Greek and Cyrillic, Noto Sans CJK for Chinese, Japanese and Korean, and
Noto Sans Arabic, Devanagari and Thai. Each run of characters is drawn with the first font that
has its glyphs, so a name such as "张伟 (Zhang Wei)" never comes out as boxes or "???".
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fontTools.ttLib import TTCollection, TTFont
from PIL import Image, ImageDraw, ImageFont

from facelens.core.matching import UNKNOWN
from facelens.core.pipeline import RecognizedFace
from facelens.errors import ModelError
from facelens.models.base import Box, RGBImage

# (module, file inside it), in order of preference; the first also draws what no font has.
_FONT_PACKAGES: tuple[tuple[str, str], ...] = (
    ("fontpkg_noto_sans", "files/NotoSans[wdth,wght].ttf"),
    ("noto_cjk_sans_otc", "NotoSansCJK-Regular.ttc"),
    ("fontpkg_noto_sans_arabic", "files/NotoSansArabic[wdth,wght].ttf"),
    ("fontpkg_noto_sans_devanagari", "files/NotoSansDevanagari[wdth,wght].ttf"),
    ("fontpkg_noto_sans_thai", "files/NotoSansThai[wdth,wght].ttf"),
)
KNOWN_COLOUR = (46, 204, 64)
UNKNOWN_COLOUR = (255, 65, 54)
AMBIGUOUS_COLOUR = (255, 193, 7)


@dataclass(frozen=True, slots=True)
class Label:
    """What to draw for one face: its box (original pixels), the text, and a colour."""

    box: Box
    text: str
    colour: tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class _Font:
    path: Path
    codepoints: frozenset[int]


@functools.cache
def _fonts() -> tuple[_Font, ...]:
    fonts = []
    for module_name, relative in _FONT_PACKAGES:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ModelError(
                f"The font package '{module_name}' is not installed; reinstall facelens with its "
                "locked dependencies (see the README's set-up command)."
            ) from exc
        path = Path(str(module.__file__)).parent / relative
        if not path.is_file():
            raise ModelError(f"Font file {path} is missing; reinstall '{module_name}'.")
        if path.suffix.lower() == ".ttc":
            tables = TTCollection(str(path), lazy=True).fonts[0]
        else:
            tables = TTFont(str(path), lazy=True)
        fonts.append(_Font(path, frozenset(tables.getBestCmap())))
    return tuple(fonts)


@functools.lru_cache(maxsize=64)
def _truetype(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size=size, index=0)


def font_for(char: str) -> Path:
    """The first font that has a glyph for ``char`` (the first font if none has)."""
    fonts = _fonts()
    if char.isspace():
        return fonts[0].path
    code = ord(char)
    return next((f.path for f in fonts if code in f.codepoints), fonts[0].path)


def missing_glyphs(text: str) -> str:
    """The characters of ``text`` that no installed font can draw (for checks and tests)."""
    fonts = _fonts()
    return "".join(
        c for c in text if not c.isspace() and all(ord(c) not in f.codepoints for f in fonts)
    )


def _runs(text: str) -> list[tuple[str, Path]]:
    """Split ``text`` into runs drawn with one font each; spaces join the run before them."""
    runs: list[tuple[str, Path]] = []
    for char in text:
        path = runs[-1][1] if runs and char.isspace() else font_for(char)
        if runs and runs[-1][1] == path:
            runs[-1] = (runs[-1][0] + char, path)
        else:
            runs.append((char, path))
    return runs


def draw_labels(pixels: RGBImage, labels: Sequence[Label]) -> RGBImage:
    """A copy of ``pixels`` with each label's box outlined and its text on a filled band."""
    image = Image.fromarray(pixels, mode="RGB")
    draw = ImageDraw.Draw(image)
    width, height = image.size
    short_side = min(width, height)
    line = max(2, round(short_side / 250))
    for label in labels:
        box = label.box
        draw.rectangle(
            (box.left, box.top, box.right - 1, box.bottom - 1), outline=label.colour, width=line
        )
        # Text height follows the image and the face: readable on a thumbnail and on 12 MP.
        size = int(np.clip(max(short_side / 32, box.width / 7), 12, 160))
        _draw_text_band(draw, label, size, width, height)
    return np.asarray(image, dtype=np.uint8)


def _draw_text_band(
    draw: ImageDraw.ImageDraw, label: Label, size: int, width: int, height: int
) -> None:
    runs = [(text, _truetype(path, size)) for text, path in _runs(label.text)]
    pad = max(2, size // 6)
    text_width = sum(int(font.getlength(text)) for text, font in runs)
    ascent = max(font.getmetrics()[0] for _, font in runs)
    descent = max(font.getmetrics()[1] for _, font in runs)
    band_height = ascent + descent + 2 * pad
    box = label.box
    # Below the box if it fits, else above it, else inside its bottom edge.
    top = box.bottom if box.bottom + band_height <= height else box.top - band_height
    if top < 0:
        top = max(0, box.bottom - band_height)
    left = min(max(box.left, 0), max(0, width - text_width - 2 * pad))
    draw.rectangle((left, top, left + text_width + 2 * pad, top + band_height), fill=label.colour)
    x = left + pad
    text_colour = (0, 0, 0) if sum(label.colour) > 450 else (255, 255, 255)
    for text, font in runs:
        draw.text((x, top + pad + ascent), text, font=font, fill=text_colour, anchor="ls")
        x += int(font.getlength(text))


def draw_recognition(pixels: RGBImage, faces: Sequence[RecognizedFace]) -> RGBImage:
    """The image with each face boxed and named (green known, red unknown, amber ambiguous)."""
    labels = []
    for face in faces:
        if face.match.name == UNKNOWN:
            colour = UNKNOWN_COLOUR
        elif face.match.ambiguous:
            colour = AMBIGUOUS_COLOUR
        else:
            colour = KNOWN_COLOUR
        labels.append(Label(face.box, face.match.name, colour))
    return draw_labels(pixels, labels)
