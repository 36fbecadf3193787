"""The gallery review: stored faces that make recognition worse, each with the fix to offer.

- ``mismatch``: a face closer to another person (its mean distance to their faces) than to the
  other faces of its own person, and within the threshold of them (for a person with one face:
  within the threshold of someone else): probably enrolled under the wrong name. Fix: move it
  to that person, or remove it.
- ``duplicate``: two faces of one person so close they are the same photo (recompressed,
  resized): the later one adds nothing. Fix: remove it.
- ``small``: a face too small to carry detail; ``blurry``: a face too blurred. Fix: remove it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from facelens.gallery.base import FaceRecord, FaceVectors
from facelens.matching import Metric, Scoring, from_squared

Kind = Literal["mismatch", "duplicate", "small", "blurry"]
Fix = Literal["move", "remove"]

MIN_FACE_SIDE = 48  # pixels in the original photo; both models embed from 112-150 px crops
# Variance of the Laplacian at 112 px (imaging.sharpness). Measured on the shared photos:
# sharp faces have a median of 91 and a 5th percentile of 41; the same faces blurred by a
# Gaussian of 2% of their width have a median of 14.
MIN_SHARPNESS = 20.0
# Two faces of one person closer than this share of the threshold are one photo twice
# (different photos of one person are rarely under a third of it).
DUPLICATE_SHARE = 0.1
_BLOCK = 512  # rows of the distance matrix computed at once: memory stays O(block x faces)
_BLOCK_CELLS = 4_000_000  # and at most this many distances (32 MB) however large the gallery


@dataclass(frozen=True, slots=True)
class Finding:
    kind: Kind
    person: str
    face_id: int
    message: str
    fix: Fix
    other_person: str | None = None
    other_face_id: int | None = None
    distance: float | None = None


def _rows(vectors: npt.NDArray[np.float32], metric: Metric) -> Iterator[tuple[int, np.ndarray]]:
    """Each block's first row and its distances to every face."""
    v = np.asarray(vectors, dtype=np.float32)
    if metric == "cosine":
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    norms = np.einsum("ij,ij->i", v, v)
    rows = max(1, min(_BLOCK, _BLOCK_CELLS // max(len(v), 1)))
    for start in range(0, len(v), rows):
        block = v[start : start + rows]
        squared = norms[start : start + rows, None] + norms[None, :] - 2.0 * block @ v.T
        yield start, from_squared(squared, metric)


def _by_distance(stored: FaceVectors, scoring: Scoring) -> Iterator[Finding]:
    """A face is compared with each person as a whole (its mean distance to their faces), so
    one wrong face does not make its new neighbours look wrong too; the nearest single face
    finds duplicates and is shown beside a mismatch."""
    if not stored.ids:
        return
    order = np.argsort(np.array(stored.people, dtype=object), kind="stable")
    ids = [stored.ids[k] for k in order]
    people = [stored.people[k] for k in order]
    starts = np.array(
        [k for k in range(len(people)) if k == 0 or people[k] != people[k - 1]], dtype=np.intp
    )
    counts = np.diff(np.append(starts, len(people)))
    group = np.repeat(np.arange(len(starts)), counts)  # each face's person, as a number
    duplicate_below = DUPLICATE_SHARE * scoring.threshold
    for start, block in _rows(stored.vectors[order], scoring.metric):
        sums = np.add.reduceat(block, starts, axis=1)
        for offset, distances in enumerate(block):
            i = start + offset
            own = group[i]
            means = sums[offset] / counts
            # Its own person without itself (its distance to itself is 0).
            means[own] = sums[offset][own] / (counts[own] - 1) if counts[own] > 1 else np.inf
            lo, hi = starts[own], starts[own] + counts[own]
            same = np.delete(np.arange(lo, hi), i - lo)
            if same.size:
                twin = int(same[np.argmin(distances[same])])
                if distances[twin] <= duplicate_below and ids[twin] < ids[i]:
                    yield Finding(
                        "duplicate",
                        people[i],
                        ids[i],
                        f"The same photo as face {ids[twin]} of {people[i]!r} "
                        f"(distance {distances[twin]:.3f}): it adds nothing.",
                        "remove",
                        people[i],
                        ids[twin],
                        round(float(distances[twin]), 4),
                    )
            others = means.copy()
            others[own] = np.inf
            if not np.isfinite(others).any():
                continue
            closest = int(np.argmin(others))
            mean = float(others[closest])
            if mean > scoring.threshold or mean >= means[own]:
                continue
            lo, hi = starts[closest], starts[closest] + counts[closest]
            nearest = int(lo + np.argmin(distances[lo:hi]))
            whose = people[nearest]
            why = (
                f"closer to {whose!r} (mean distance {mean:.3f}) than to the other faces of "
                f"{people[i]!r} ({means[own]:.3f})"
                if np.isfinite(means[own])
                else f"the only face of {people[i]!r}, and within the threshold of {whose!r} "
                f"(mean distance {mean:.3f})"
            )
            yield Finding(
                "mismatch",
                people[i],
                ids[i],
                f"This face is {why}: is it {whose}?",
                "move",
                whose,
                ids[nearest],
                round(mean, 4),
            )


def _by_quality(faces: Sequence[FaceRecord]) -> Iterator[Finding]:
    for face in faces:
        side = min(face.box.width, face.box.height)
        if side < MIN_FACE_SIDE:
            yield Finding(
                "small",
                face.person,
                face.id,
                f"The face is {side} px across, under {MIN_FACE_SIDE}: too small to trust.",
                "remove",
            )
        if face.sharpness is not None and face.sharpness < MIN_SHARPNESS:
            yield Finding(
                "blurry",
                face.person,
                face.id,
                f"The face is blurred (sharpness {face.sharpness:.0f}, under {MIN_SHARPNESS:.0f}).",
                "remove",
            )


def review(stored: FaceVectors, faces: Sequence[FaceRecord], scoring: Scoring) -> list[Finding]:
    """Every finding, by person, then face id, then kind."""
    found = [*_by_distance(stored, scoring), *_by_quality(faces)]
    return sorted(found, key=lambda f: (f.person, f.face_id, f.kind))
