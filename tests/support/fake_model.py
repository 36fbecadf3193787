"""A stand-in model for contract tests: no weights, answers in microseconds, fully predictable.

A "face" is a solid square of one colour on a white photo; its embedding is a unit vector
drawn from a generator seeded by that colour. Two squares of one colour are the same person
(distance 0), two colours are different people (cosine distance near 1). It replaces the
default profile's models while installed (``installed()`` in this process; ``serve`` for the
server's spawned workers), so the HTTP and CLI contracts run in-process in seconds; real
recognition stays with the real-model tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection

import numpy as np
from PIL import Image

from facelens.models import profiles
from facelens.models.base import AlignedFace, Box, Detection, Embeddings, RGBImage
from facelens.settings import Settings
from facelens.workers.worker import serve as real_serve

WHITE = (255, 255, 255)


class ColourDetector:
    name = "colour-squares"
    gives_landmarks = True

    def detect(self, image: RGBImage) -> list[Detection]:
        found = []
        flat = image.reshape(-1, 3)
        for colour in np.unique(flat, axis=0):
            if tuple(int(c) for c in colour) == WHITE:
                continue
            ys, xs = np.nonzero(np.all(image == colour, axis=2))
            box = Box(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            cx, cy, w = (box.left + box.right) / 2, (box.top + box.bottom) / 2, box.width
            points = np.array(
                [
                    [cx - w / 4, cy - w / 8],
                    [cx + w / 4, cy - w / 8],
                    [cx, cy],
                    [cx - w / 5, cy + w / 4],
                    [cx + w / 5, cy + w / 4],
                ]
            )
            found.append(Detection(box, 0.99, points))
        return found


class CropAligner:
    name = "crop"
    needs_landmarks = True
    chip_size = 1  # any square is cut as it is

    def align(self, image: RGBImage, detections: Sequence[Detection]) -> list[AlignedFace]:
        return [
            AlignedFace(
                image[d.box.top : d.box.bottom, d.box.left : d.box.right].copy(), d.landmarks
            )  # type: ignore[arg-type]
            for d in detections
        ]


class ColourEmbedder:
    name = "colour-seeded"
    dim = 128

    def embed(self, faces: Sequence[AlignedFace]) -> Embeddings:
        vectors = np.zeros((len(faces), self.dim), dtype=np.float32)
        for i, face in enumerate(faces):
            r, g, b = (int(v) for v in face.chip[face.chip.shape[0] // 2, face.chip.shape[1] // 2])
            vector = np.random.default_rng(r * 65536 + g * 256 + b).standard_normal(self.dim)
            vectors[i] = vector / np.linalg.norm(vector)
        return vectors


def _load(settings: Settings) -> object:
    return ColourDetector()


FAKE = dataclasses.replace(
    profiles.PROFILES[profiles.DEFAULT_MODEL],
    id="test-colour-squares",
    summary="colour squares (tests only)",
    detectors=(profiles.PROFILES[profiles.DEFAULT_MODEL].detectors[0],),
    detect_max_side=4096,
    load_embedding=lambda: (CropAligner(), ColourEmbedder()),
)


def install() -> None:
    """Make the default profile the fake one, in this process (and processes it forks)."""
    profiles.PROFILES[profiles.DEFAULT_MODEL] = FAKE
    profiles.DETECTORS[FAKE.detectors[0]] = _load  # type: ignore[assignment]


@contextmanager
def installed() -> Iterator[None]:
    saved_profile = profiles.PROFILES[profiles.DEFAULT_MODEL]
    saved_detector = profiles.DETECTORS[FAKE.detectors[0]]
    install()
    try:
        yield
    finally:
        profiles.PROFILES[profiles.DEFAULT_MODEL] = saved_profile
        profiles.DETECTORS[FAKE.detectors[0]] = saved_detector


def serve(conn: Connection, settings: Settings) -> None:
    """A server worker process running the fake model (the pool's ``target`` in tests)."""
    install()
    real_serve(conn, settings)


def photo(*squares: tuple[tuple[int, int, int], Box], size: tuple[int, int] = (320, 240)) -> bytes:
    """A PNG: white, with a solid square per (colour, box)."""
    import io

    pixels = np.full((size[1], size[0], 3), 255, dtype=np.uint8)
    for colour, box in squares:
        pixels[box.top : box.bottom, box.left : box.right] = colour
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()
