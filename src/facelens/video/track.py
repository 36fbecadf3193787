"""One face followed across the frames of a stream, as the tracker knows it: its boxes, the
embeddings that name it, its doubt, the views of it worth embedding; one embedding's distances
to each person; and the counts a stream reports (``tracks.py`` decides what to do with them)."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from facelens.core.matching import UNKNOWN, GalleryIndex
from facelens.models.base import Box, Detection, Embeddings

# Histogram buckets of embeddings per track (the metric that shows the saving over per-frame).
EMBEDDINGS_PER_TRACK_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


@dataclass(slots=True)
class Track:
    id: int  # ours, in events: a track split in two (see tracks.SPLIT_AT) has two
    key: int  # ByteTrack's id for the boxes it follows
    first_seen: float
    last_seen: float
    box: Box
    frames: int = 0
    embeddings: list[Embeddings] = field(default_factory=list)
    best_area: int = 0  # of the faces embedded so far: the largest,
    best_frontal: float = 0.0  # the most frontal,
    best_sharpness: float = 0.0  # and the sharpest
    embedded_at: float = -1e9  # when its last embedding was asked for
    embedded: int = 0  # embeddings made for it in all
    named_at: float = 0.0  # when the frame of its newest embedding was taken
    confirmed_at: float = 0.0  # when the frame that confirmed it (CONFIRM_FRAMES) was taken
    name: str | None = None  # None until named (by its embeddings' vote)
    distance: float | None = None
    arrived: bool = False
    told: str | None = None  # the name last told in an event
    # Doubt: since when the face in the box may not be the one named (None: no doubt); hard
    # after a cut, jump or gap (the next embedding decides), soft after an embedding that
    # disagreed (tracks.MAX_MISSES decide). A track in doubt shows no name.
    doubt_since: float | None = None
    doubt_hard: bool = False
    misses: int = 0
    # The frame whose embedding last confirmed the name: the box and crop events show.
    sure_box: Box | None = None
    crop: bytes | None = None  # (with crops on)
    sure_seen: float = 0.0  # the last time it was seen out of doubt
    look: npt.NDArray[Any] | None = None  # its face's colours on the frame it was last seen

    @property
    def shown(self) -> str | None:
        """The name to show on its face now: None while in doubt or not named yet."""
        return None if self.doubt_since is not None else self.name


@dataclass(slots=True)
class StreamCounts:
    frames: int = 0
    embeddings: int = 0
    tracks: int = 0
    # Tracks ended, by embeddings made for them: one count per bucket of
    # EMBEDDINGS_PER_TRACK_BUCKETS and a last one for more; and their sum.
    per_track: list[int] = field(
        default_factory=lambda: [0] * (len(EMBEDDINGS_PER_TRACK_BUCKETS) + 1)
    )
    per_track_sum: int = 0

    def track_ended(self, embedded: int) -> None:
        bucket = next(
            (i for i, bound in enumerate(EMBEDDINGS_PER_TRACK_BUCKETS) if embedded <= bound),
            len(EMBEDDINGS_PER_TRACK_BUCKETS),
        )
        self.per_track[bucket] += 1
        self.per_track_sum += embedded

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames_processed": self.frames,
            "embeddings": self.embeddings,
            "tracks": self.tracks,
            "embeddings_per_track": {
                "buckets": list(EMBEDDINGS_PER_TRACK_BUCKETS),
                "counts": list(self.per_track),
                "sum": self.per_track_sum,
            },
        }


@dataclass(frozen=True, slots=True)
class Asked:
    """Faces handed to the embedding thread: their tracks, their boxes and crops on the
    frame, and when the frame was taken."""

    tracks: list[Track]
    boxes: list[Box]
    crops: list[bytes | None]
    taken_at: float
    vectors: Future[Embeddings]


@dataclass(frozen=True, slots=True)
class Seen:
    """A track's face on this frame, and how good a view of it this is."""

    track: Track
    detection: Detection
    frontal: float | None  # None: the detector gives no landmarks
    sharpness: float


def frontal(detection: Detection) -> float | None:
    """How squarely the face looks at the camera, from its landmarks: 1 when the nose tip is
    midway between the eyes, 0 when it is level with an eye or beyond (a profile)."""
    if detection.landmarks is None or len(detection.landmarks) < 3:
        return None
    right_eye, left_eye, nose = detection.landmarks[:3]
    half = abs(float(left_eye[0]) - float(right_eye[0])) / 2
    if half < 1:
        return 0.0
    off = abs(float(nose[0]) - (float(left_eye[0]) + float(right_eye[0])) / 2)
    return max(0.0, 1.0 - off / half)


def doubt(track: Track, now: float, *, hard: bool) -> None:
    """The face in ``track``'s box may not be the one named, from ``now`` on."""
    if track.doubt_since is None:
        track.doubt_since, track.misses = now, 0
    elif hard:
        track.doubt_since = max(track.doubt_since, now)
    track.doubt_hard = track.doubt_hard or hard


@dataclass(frozen=True, slots=True)
class People:
    """One embedding's distance to each enrolled person."""

    names: tuple[str, ...]
    distances: npt.NDArray[np.float64]

    @classmethod
    def of(cls, index: GalleryIndex, vector: Embeddings) -> People:
        if not len(index.names):
            return cls((), np.zeros(0))
        return cls(tuple(index.names), index.person_distances(vector[None, :])[0])

    def nearest(self, threshold: float) -> str | None:
        """The closest person within ``threshold``, if any."""
        if not len(self.names):
            return None
        best = int(np.argmin(self.distances))
        return self.names[best] if self.distances[best] <= threshold else None

    def agrees(self, name: str, threshold: float) -> bool:
        """Whether this face may carry ``name``: within the threshold of that person; for
        ``unknown``, of nobody."""
        if name == UNKNOWN:
            return self.nearest(threshold) is None
        if name not in self.names:
            return False  # renamed or removed meanwhile: not confirmed by this face
        return bool(self.distances[self.names.index(name)] <= threshold)


def closer_half(distances: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``(embeddings, people)`` → per person, the mean of the closer half (rounded up)."""
    keep = (len(distances) + 1) // 2
    closer: npt.NDArray[np.float64] = np.sort(distances, axis=0)[:keep].mean(axis=0)
    return closer
