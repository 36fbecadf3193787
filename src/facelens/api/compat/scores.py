"""Scores for the APIs other tools speak (DeepStack / CodeProject.AI, CompreFace).

Those clients decide with a fixed threshold on a 0..1 score: Double Take names a face at 0.40
and calls it a match at 0.60, DeepStack's ``min_confidence`` defaults to 0.67, the Home Assistant
component's to 0.45; Viseron compares with its configured threshold. Their servers' scores
never said "unknown" reliably: DeepStack's is ``(cos + 1) / 2`` (strangers score two thirds) and
CompreFace always answers the nearest subject.

facelens decides first (the profile's threshold, names assigned jointly per photo) and then
reports a *similarity* that carries the decision into every one of those thresholds:

- a face facelens names scores in [0.70, 1]: 1 at distance 0, falling linearly to 0.70 at
  the threshold;
- any other pairing (a stranger's nearest person, a runner-up) scores in [0, 0.35]: 0.35 at
  the threshold, then ``0.35 * threshold / distance``.

Nothing scores between 0.35 and 0.70, so a client threshold anywhere in that band agrees with
facelens; a client threshold above 0.70 is stricter than facelens (0.85 keeps faces within half
the threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facelens.core.matching import UNKNOWN, GalleryIndex, Match, identify
from facelens.core.pipeline import Face
from facelens.models.base import Embeddings
from facelens.models.scoring import Scoring

NAMED_FLOOR = 0.70
UNNAMED_CEILING = 0.35


def similarity(distance: float, threshold: float, *, named: bool) -> float:
    """The 0..1 score of a face against a person (see the module's text); ``named`` is
    facelens's decision that this face is this person."""
    distance = max(0.0, distance)
    if named:
        return 1.0 - (1.0 - NAMED_FLOOR) * min(distance / threshold, 1.0)
    return UNNAMED_CEILING * min(1.0, threshold / distance) if distance > 0 else UNNAMED_CEILING


def detection_probability(score: float) -> float:
    """A detector's score as a 0..1 probability (YuNet's is one; dlib's HOG margin is clipped)."""
    return min(1.0, max(0.0, score))


@dataclass(frozen=True, slots=True)
class Candidate:
    """A person offered for a face, with the face's distance to them and its similarity."""

    name: str
    distance: float
    similarity: float


@dataclass(frozen=True, slots=True)
class ScoredFace:
    """A face, facelens's decision for it, and up to ``top`` people, best first."""

    face: Face
    match: Match
    candidates: tuple[Candidate, ...]


def score_faces(
    faces: Sequence[Face], index: GalleryIndex, scoring: Scoring, top: int = 1
) -> list[ScoredFace]:
    """Name ``faces`` (one photo's, jointly) and rank people for each: the person facelens
    named first, then the others by distance, each with its :func:`similarity`."""
    if not faces:
        return []
    scored = score_vectors(np.stack([f.embedding for f in faces]), index, scoring, top)
    return [ScoredFace(face, m, c) for face, (m, c) in zip(faces, scored, strict=True)]


def score_vectors(
    vectors: Embeddings, index: GalleryIndex, scoring: Scoring, top: int = 1
) -> list[tuple[Match, tuple[Candidate, ...]]]:
    """:func:`score_faces` for bare embeddings (rows of one photo, named jointly): each row's
    match and up to ``top`` candidates."""
    if not len(vectors):
        return []
    matches = identify(vectors, index, scoring)
    distances = index.person_distances(vectors)
    scored = []
    for row, match in zip(distances, matches, strict=True):
        order = [int(i) for i in np.argsort(row, kind="stable")[: top + 1]]
        named = [] if match.name == UNKNOWN else [index.names.index(match.name)]
        ranked = named + [i for i in order if i not in named]
        candidates = tuple(
            Candidate(
                index.names[i],
                float(row[i]),
                similarity(float(row[i]), scoring.threshold, named=i in named),
            )
            for i in ranked[:top]
        )
        scored.append((match, candidates))
    return scored
