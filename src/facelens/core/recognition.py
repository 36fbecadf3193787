"""One way to recognise an image: decode → analyse → match → (draw).

The server's workers, ``facelens recognize`` and ``facelens eval`` all call these functions;
they differ only in how they fan work out (the CLI forks a batch pool, the server spawns
workers) and in what they print or answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from facelens.core.imaging import decode_image, encode_image, read_image_file
from facelens.core.matching import GalleryIndex
from facelens.core.pipeline import Analysis, Engine, RecognizedFace, choose_faces, match_faces

AnnotateAs = Literal["jpeg", "like-source"]
"""``jpeg``; or ``like-source``: PNG, WebP and BMP photos stay in their format, others JPEG."""

_LOSSLESS = ("PNG", "WEBP", "BMP")


@dataclass(frozen=True, slots=True)
class Recognition:
    """Every face of one image with its name, the annotated image if asked, stage timings."""

    analysis: Analysis
    faces: tuple[RecognizedFace, ...]
    annotated: bytes | None
    annotated_format: str | None
    timings_ms: dict[str, float] = field(default_factory=dict)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def analyze_bytes(engine: Engine, data: bytes, source: str, *, enrolment: bool = False) -> Analysis:
    """Decode and analyse one image; ``timings_ms`` includes ``decode``."""
    start = time.perf_counter()
    reduce_to = None if enrolment else engine.decode_side  # enrolment keeps full thumbnails
    image = decode_image(
        data, source=source, max_pixels=engine.settings.max_pixels, reduce_to=reduce_to
    )
    decode_ms = _ms(start)
    analysis = engine.analyze(image, enrolment=enrolment)
    analysis.timings_ms["decode"] = decode_ms
    return analysis


def analyze_file(engine: Engine, path: Path) -> Analysis:
    """Read and analyse one file, its errors naming the file (single-image commands)."""
    limit = engine.settings.max_pixels
    return engine.analyze(read_image_file(path, max_pixels=limit, reduce_to=engine.decode_side))


@dataclass(frozen=True, slots=True)
class Naming:
    """How the faces of a photo are named: up to ``candidates`` people each (none by default:
    only the foreign APIs answer them); only the faces at
    least ``min_detection`` likely, the ``largest`` of them (0: all) take part; ``threshold``
    instead of the gallery's (a per-request one)."""

    candidates: int = 0
    min_detection: float | None = None
    largest: int = 0
    threshold: float | None = None


DEFAULT_NAMING = Naming()  # no candidates, every face, the gallery's threshold


def recognize_bytes(
    engine: Engine,
    data: bytes,
    source: str,
    index: GalleryIndex,
    *,
    annotate: AnnotateAs | None = None,
    naming: Naming = DEFAULT_NAMING,
) -> Recognition:
    """Decode, analyse, name the faces against ``index`` (as ``naming`` says), and draw them
    if asked."""
    start = time.perf_counter()
    reduce_to = engine.decode_side if annotate is None else None  # drawing needs every pixel
    image = decode_image(
        data, source=source, max_pixels=engine.settings.max_pixels, reduce_to=reduce_to
    )
    timings = {"decode": _ms(start)}
    analysis = engine.analyze(image)
    scoring = engine.scoring
    if naming.threshold is not None:
        scoring = replace(scoring, threshold=naming.threshold)
    chosen = choose_faces(analysis.faces, naming.min_detection, naming.largest)
    faces = tuple(
        match_faces(chosen, index, scoring, top=naming.candidates, timings=analysis.timings_ms)
    )
    timings.update(analysis.timings_ms)
    annotated = fmt = None
    if annotate is not None:
        from facelens.core.annotate import draw_recognition  # loads fonts: only when drawing

        start = time.perf_counter()
        fmt = image.format if annotate == "like-source" and image.format in _LOSSLESS else "JPEG"
        annotated = encode_image(draw_recognition(image.pixels, faces), format=fmt)
        timings["annotate"] = _ms(start)
    return Recognition(analysis, faces, annotated, fmt, timings)
