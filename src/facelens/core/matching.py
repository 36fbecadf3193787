"""Faces → names: nearest neighbour over the gallery, assigned jointly per photo.

Distances are those of the model profile: Euclidean, or cosine distance (1 - cosine similarity)
between L2-normalised vectors. Both come from the squared Euclidean distance, computed for all
faces against all stored embeddings with one matrix product (for unit vectors, cosine distance
is half of it). A person's distance is that of their closest stored face. Names are then
assigned to all faces of a photo together (Hungarian algorithm): one photo cannot hold the same
person twice, so when two faces are both nearest to one person, the better match gets the name
and the other face is offered its runner-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from facelens.models.base import Embeddings
from facelens.models.scoring import Metric, Scoring

UNKNOWN = "unknown"


def from_squared(squared: npt.NDArray[np.floating], metric: Metric) -> npt.NDArray[np.float64]:
    """Squared Euclidean distances → the metric's distances (unit vectors for cosine)."""
    clipped = np.maximum(np.asarray(squared, dtype=np.float64), 0.0)
    if metric == "cosine":
        halved: npt.NDArray[np.float64] = clipped / 2.0  # |a-b|² = 2 - 2·cos for unit a, b
        return halved
    return np.sqrt(clipped)


def pair_distance(first: Embeddings, second: Embeddings, metric: Metric) -> float:
    """The distance between two embeddings."""
    diff = np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64)
    return float(from_squared(np.array(diff @ diff), metric))


@dataclass(frozen=True, slots=True)
class GalleryIndex:
    """All stored embeddings as one matrix, rows grouped by person (``starts`` marks each group)."""

    names: tuple[str, ...]
    vectors: Embeddings
    starts: npt.NDArray[np.intp]
    metric: Metric
    squared_norms: npt.NDArray[np.float32] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Kept so a search is one float32 matrix product: no float64 copy of the gallery per
        # query (1e6 embeddings would be 1 GB).
        vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "squared_norms", np.einsum("ij,ij->i", vectors, vectors))

    @classmethod
    def build(cls, rows: list[tuple[str, Embeddings]], dim: int, metric: Metric) -> GalleryIndex:
        """From ``(person name, that person's embeddings)`` pairs; people with none are left out."""
        rows = [(name, vecs) for name, vecs in rows if len(vecs)]
        if not rows:
            return cls((), np.zeros((0, dim), dtype=np.float32), np.zeros(0, dtype=np.intp), metric)
        sizes = np.array([len(v) for _, v in rows], dtype=np.intp)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        vectors = np.ascontiguousarray(np.concatenate([v for _, v in rows]), dtype=np.float32)
        return cls(tuple(n for n, _ in rows), vectors, starts, metric)

    @classmethod
    def grouped(cls, people: tuple[str, ...], vectors: Embeddings, metric: Metric) -> GalleryIndex:
        """From one matrix whose rows are already grouped by person (``people[i]`` is row
        ``i``'s): no copy of the matrix, where :meth:`build` concatenates one per person."""
        starts = [i for i in range(len(people)) if i == 0 or people[i] != people[i - 1]]
        names = tuple(people[i] for i in starts)
        return cls(names, vectors, np.array(starts, dtype=np.intp), metric)

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def person_distances(self, queries: Embeddings) -> npt.NDArray[np.float64]:
        """``(n_queries, n_people)``: each query's distance to each person's closest face."""
        if not self.names or not len(queries):
            return np.zeros((len(queries), len(self.names)))
        q = np.ascontiguousarray(queries, dtype=np.float32)
        squared = (q * q).sum(1)[:, None] + self.squared_norms[None, :] - 2.0 * (q @ self.vectors.T)
        nearest = np.minimum.reduceat(squared, self.starts, axis=1)
        return from_squared(nearest, self.metric)


@dataclass(frozen=True, slots=True)
class Match:
    """The name given to one face, and how close the call was."""

    name: str
    distance: float | None
    confidence: float
    runner_up: str | None
    runner_up_distance: float | None
    ambiguous: bool

    @property
    def margin(self) -> float | None:
        """How much farther the runner-up is than the named person (None for unknown faces)."""
        if self.name == UNKNOWN or self.distance is None or self.runner_up_distance is None:
            return None
        return self.runner_up_distance - self.distance


def assign(dist: npt.NDArray[np.float64], threshold: float) -> dict[int, int]:
    """Face → column: a person index, or ``n_people`` or more for "unknown".

    Minimises the total distance where each face either takes a distinct person within the
    threshold or stays unknown at a cost of exactly the threshold.
    """
    n_faces, n_people = dist.shape
    best = dist.argmin(axis=1)
    within = dist[np.arange(n_faces), best] <= threshold
    claimed = best[within]
    if len(set(claimed.tolist())) == len(claimed):  # (np.unique would import numpy.ma)
        # No two faces want the same person: each face's own best is the optimum.
        return {f: int(best[f]) if within[f] else n_people + f for f in range(n_faces)}
    from scipy.optimize import linear_sum_assignment  # ~1 s to import: only when needed

    big = 1e6
    cost = np.full((n_faces, n_people + n_faces), big)
    cost[:, :n_people] = np.where(dist <= threshold, dist, big)
    cost[np.arange(n_faces), n_people + np.arange(n_faces)] = threshold
    rows, cols = linear_sum_assignment(cost)
    return dict(zip(rows.tolist(), cols.tolist(), strict=True))


def identify(queries: Embeddings, index: GalleryIndex, scoring: Scoring) -> list[Match]:
    """A :class:`Match` per query face, names assigned jointly (no person twice per photo)."""
    n_faces, n_people = len(queries), len(index.names)
    if n_faces == 0:
        return []
    if n_people == 0:
        return [Match(UNKNOWN, None, 1.0, None, None, False) for _ in range(n_faces)]
    return _names(index.person_distances(queries), index, scoring)


def _names(dist: npt.NDArray[np.float64], index: GalleryIndex, scoring: Scoring) -> list[Match]:
    """:func:`identify` from the faces' distances to each person (at least one person)."""
    threshold = scoring.threshold
    n_faces, n_people = dist.shape
    assigned = assign(dist, threshold)
    # Only the two nearest people of each face matter (the runner-up is whichever of them was
    # not assigned): a partial sort, not a sort of every person in a large gallery.
    k = min(2, n_people)
    nearest = np.argpartition(dist, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(
        nearest, np.argsort(np.take_along_axis(dist, nearest, axis=1), axis=1), axis=1
    )

    matches = []
    for face in range(n_faces):
        col = assigned[face]
        ranked = order[face]
        if col < n_people:
            others = [int(p) for p in ranked if p != col]
            runner = others[0] if others else None
            d = float(dist[face, col])
            runner_d = float(dist[face, runner]) if runner is not None else None
            close = runner_d is not None and runner_d - d < scoring.ambiguity_margin
            # A face that lost its nearest person to another face is a close call too.
            displaced = int(ranked[0]) != col
            matches.append(
                Match(
                    index.names[col],
                    d,
                    scoring.confidence(d),
                    index.names[runner] if runner is not None else None,
                    runner_d,
                    close or displaced,
                )
            )
        else:
            # Unknown: report the closest enrolled person as the runner-up, so near misses show.
            best = int(ranked[0])
            d = float(dist[face, best])
            matches.append(
                Match(
                    UNKNOWN,
                    d,
                    1.0 - scoring.confidence(d),
                    index.names[best],
                    d,
                    ambiguous=d <= threshold,
                )  # within the threshold, but taken by another face
            )
    return matches


# -- candidates: the people offered for a face, with a 0..1 similarity -------------------------
#
# Clients of the APIs facelens also speaks (DeepStack / CodeProject.AI, CompreFace) decide with
# a fixed threshold on a 0..1 score: Double Take names a face at 0.40 and calls it a match at
# 0.60, DeepStack's ``min_confidence`` defaults to 0.67, the Home Assistant component's to 0.45.
# Their servers' scores never said "unknown" reliably: DeepStack's is ``(cos + 1) / 2``
# (strangers score two thirds) and CompreFace always answers the nearest subject.
#
# facelens decides first (the profile's threshold, names assigned jointly per photo), then
# reports a *similarity* that carries the decision into every one of those thresholds: a face
# facelens names scores in [0.70, 1] (1 at distance 0, falling linearly to 0.70 at the
# threshold); any other pairing (a stranger's nearest person, a runner-up) in [0, 0.35] (0.35
# at the threshold, then ``0.35 * threshold / distance``). Nothing scores between 0.35 and 0.70,
# so a client threshold anywhere in that band agrees with facelens; one above 0.70 is stricter
# (0.85 keeps faces within half the threshold).

NAMED_FLOOR = 0.70
UNNAMED_CEILING = 0.35


def similarity(distance: float, threshold: float, *, named: bool) -> float:
    """The 0..1 score of a face against a person (see above); ``named`` is facelens's
    decision that this face is this person."""
    distance = max(0.0, distance)
    if threshold <= 0:  # no distance is within it (callers refuse such a threshold)
        return NAMED_FLOOR if named else 0.0
    if named:
        return 1.0 - (1.0 - NAMED_FLOOR) * min(distance / threshold, 1.0)
    return UNNAMED_CEILING * min(1.0, threshold / distance) if distance > 0 else UNNAMED_CEILING


@dataclass(frozen=True, slots=True)
class Candidate:
    """A person offered for a face, with the face's distance to them and its similarity."""

    name: str
    distance: float
    similarity: float


def identify_ranked(
    queries: Embeddings, index: GalleryIndex, scoring: Scoring, top: int
) -> list[tuple[Match, tuple[Candidate, ...]]]:
    """:func:`identify`, and up to ``top`` people offered for each face: the person facelens
    named first, then the others by distance, each with its :func:`similarity`. One search of
    the index serves both."""
    if not len(queries) or not index.names or top < 1:
        return [(m, ()) for m in identify(queries, index, scoring)]
    distances = index.person_distances(queries)
    matches = _names(distances, index, scoring)
    k = min(top + 1, len(index.names))
    ranked_all = []
    for row, match in zip(distances, matches, strict=True):
        nearest = np.argpartition(row, k - 1)[:k]  # the k nearest, then in order
        order = [int(i) for i in nearest[np.argsort(row[nearest], kind="stable")]]
        named = [] if match.name == UNKNOWN else [index.names.index(match.name)]
        ranked = named + [i for i in order if i not in named]
        offered = tuple(
            Candidate(
                index.names[i],
                float(row[i]),
                similarity(float(row[i]), scoring.threshold, named=i in named),
            )
            for i in ranked[:top]
        )
        ranked_all.append((match, offered))
    return ranked_all
