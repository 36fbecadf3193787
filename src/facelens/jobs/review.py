"""The gallery review: stored faces that make recognition worse, each with the fix to offer.

- ``mismatch``: a face beyond the threshold of its own person's other faces (their mean
  distance), closer to another person and within the threshold of them (for a person with one
  face: within the threshold of someone with more): probably enrolled under the wrong name.
  Fix: move it to that person, or remove it. A face within the threshold of its own person is
  never offered a move, however close someone else is.
- ``same_person``: every face of a person is within the threshold of one other person, and of
  their own: one person under two names. Fix: merge the one with fewer faces into the other.
- ``duplicate``: two faces of one person so close they are the same photo (recompressed,
  resized): the later one adds nothing. Fix: remove it.
- ``small``: a face too small to carry detail; ``blurry``: a face too blurred. Fix: remove it.
- ``empty``: a person with no face, whom recognition never names. Fix: add photos, or remove
  the person.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from facelens.core.matching import from_squared
from facelens.gallery.base import FaceRecord, FaceVectors, PersonSummary
from facelens.models.scoring import Metric, Scoring

Kind = Literal["mismatch", "same_person", "duplicate", "small", "blurry", "empty"]
Fix = Literal["move", "merge", "remove", "remove_person"]

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
    face_id: int | None  # None: a finding about the person (empty)
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


@dataclass(frozen=True, slots=True)
class _Nearest:
    """One face against the other people: the closest of them as a whole (mean distance to
    their faces), its nearest face there, and the face's mean distance to its own person."""

    index: int  # in the sorted order
    person: str
    face_id: int
    other: str
    other_face_id: int
    mean: float  # to ``other``'s faces
    own_mean: float  # to the rest of its own person's faces; inf for a person of one face


def _compare(stored: FaceVectors, scoring: Scoring) -> Iterator[Finding | _Nearest]:
    """A face is compared with each person as a whole (its mean distance to their faces), so
    one wrong face does not make its new neighbours look wrong too; the nearest single face
    finds duplicates and is shown beside a mismatch. Yields duplicates, and each face's
    nearest other person when it is within the threshold of them."""
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
            if mean > scoring.threshold:
                continue
            lo, hi = starts[closest], starts[closest] + counts[closest]
            nearest = int(lo + np.argmin(distances[lo:hi]))
            yield _Nearest(
                i, people[i], ids[i], people[nearest], ids[nearest], mean, float(means[own])
            )


def _mismatch(near: _Nearest) -> Finding:
    why = (
        f"closer to {near.other!r} (mean distance {near.mean:.3f}) than to the other faces of "
        f"{near.person!r} ({near.own_mean:.3f}, beyond the threshold)"
        if np.isfinite(near.own_mean)
        else f"the only face of {near.person!r}, and within the threshold of {near.other!r} "
        f"(mean distance {near.mean:.3f})"
    )
    return Finding(
        "mismatch",
        near.person,
        near.face_id,
        f"This face is {why}: is it {near.other}?",
        "move",
        near.other,
        near.other_face_id,
        round(near.mean, 4),
    )


def _by_distance(
    stored: FaceVectors, scoring: Scoring, sizes: Mapping[str, int]
) -> Iterator[Finding]:
    """Only the moves the evidence supports. A face within the threshold of its own person
    (their other faces, on average) is where it belongs, even if another person is closer:
    two people of one face set are one person under two names, and moving their faces one
    way or the other only splits them differently (the old review offered both ways). Such
    a pair is offered a merge instead, the smaller into the larger. A face that is not within
    the threshold of its own person, and is of another, is offered a move; so is a person's
    only face (nothing says it is theirs) within the threshold of someone with more faces,
    or, between two people of one face each, the later of the two."""
    near: list[_Nearest] = []
    for found in _compare(stored, scoring):
        if isinstance(found, Finding):
            yield found
        else:
            near.append(found)
    threshold = scoring.threshold
    # A face beyond its own person's threshold: where it is is doubtful (a person of one face
    # has nothing to doubt it by: own_mean is inf, not a stray).
    strays = [n for n in near if np.isfinite(n.own_mean) and n.own_mean > threshold]
    pulled = {(n.person, n.other) for n in strays}
    first_face: dict[str, int] = {}
    for face_id, person in zip(stored.ids, stored.people, strict=True):
        first_face[person] = min(face_id, first_face.get(person, face_id))

    def gives(small: str, large: str) -> bool:
        """Whether ``small`` is the one of the two to move into ``large``."""
        return (sizes[small], -first_face[small]) < (sizes[large], -first_face[large])

    yield from map(_mismatch, strays)  # it disagrees with its own person, agrees with another
    by_person: dict[str, list[_Nearest]] = {}
    for n in near:
        by_person.setdefault(n.person, []).append(n)
        # A lone face, unless a stray of the other is pulled this way (stronger evidence).
        lone = not np.isfinite(n.own_mean)
        if lone and (n.other, n.person) not in pulled and gives(n.person, n.other):
            yield _mismatch(n)
    for person, faces in by_person.items():
        others = {n.other for n in faces}
        if len(faces) < sizes[person] or len(others) != 1 or sizes[person] < 2:
            continue  # one-face people are offered the move of that face
        (other,) = others
        agree = all(n.own_mean <= threshold for n in faces)
        if not agree or not gives(person, other):
            continue
        mean = float(np.mean([n.mean for n in faces]))
        closest = min(faces, key=lambda n: n.mean)
        yield Finding(
            "same_person",
            person,
            closest.face_id,
            f"Every face of {person!r} is within the threshold of {other!r} (mean distance "
            f"{mean:.3f}), as of {person!r} themselves: one person under two names? If so, "
            f"merge {person!r} into {other!r}.",
            "merge",
            other,
            closest.other_face_id,
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


def _empty(people: Sequence[PersonSummary]) -> Iterator[Finding]:
    for person in people:
        if person.faces == 0:
            yield Finding(
                "empty",
                person.name,
                None,
                f"{person.name!r} has no face: recognition never names them. Add photos of "
                "them, or remove them.",
                "remove_person",
            )


def review(
    stored: FaceVectors,
    faces: Sequence[FaceRecord],
    scoring: Scoring,
    people: Sequence[PersonSummary] = (),
) -> list[Finding]:
    """Every finding, by person, then face id (people's own first), then kind. ``people``:
    everyone, to flag those with no face."""
    sizes = Counter(stored.people)
    found = [*_by_distance(stored, scoring, sizes), *_by_quality(faces), *_empty(people)]
    return sorted(found, key=lambda f: (f.person, f.face_id or 0, f.kind))
