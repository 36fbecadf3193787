"""Faces followed across frames: detect every processed frame, associate boxes with tracks
(ByteTrack, from the ``trackers`` package), embed a track only when it appears, when its face
is clearly better, or every few seconds, and name the tracks of a stream jointly.

A track's name comes from its embeddings voting together: its distance to a person is the mean
of the closer half of its embeddings' distances to them, so one bad frame (blurred, turned
away) neither names nor renames anyone, and one lucky frame needs another to agree. The live
tracks of a stream are named together (the same optimal assignment as the faces of one photo),
so one person is never the name of two live tracks at once.

Events: ``arrived`` once a track has been seen on a few frames and named, ``renamed`` when its
name changes, ``left`` when it is lost or the stream ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import supervision as sv
from trackers import ByteTrackTracker

from facelens.matching import UNKNOWN, GalleryIndex, assign
from facelens.models.base import Box, Detection, Embeddings
from facelens.pipeline import Engine
from facelens.video.source import Frame

Kind = Literal["arrived", "renamed", "left"]

CONFIRM_FRAMES = 3  # processed frames a track must be seen on before it "arrives"
FIRST_EMBEDDINGS = 3  # a new track is embedded this many times, at least ...
FIRST_EVERY_S = 0.3  # ... this far apart, so that its name rests on more than one frame
REEMBED_EVERY_S = 3.0  # then again at most this often without a better face
BETTER_AREA = 1.5  # ... or when its face is this many times larger than its best so far
MAX_EMBEDDINGS = 8  # per track: the latest ones vote
LOST_AFTER_S = 1.0  # a track not seen for this long has left


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    kind: Kind
    stream: str
    track: int
    name: str
    distance: float | None
    confidence: float | None
    box: Box
    time: datetime
    duration_s: float | None = None  # for "left": how long the track was there
    previous: str | None = None  # for "renamed": the name it had

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "stream": self.stream,
            "track": self.track,
            "name": self.name,
            "distance": self.distance,
            "confidence": self.confidence,
            "box": self.box.as_dict(),
            "time": self.time.isoformat(),
            "duration_s": self.duration_s,
            "previous": self.previous,
        }


@dataclass(slots=True)
class Track:
    id: int
    first_seen: float
    last_seen: float
    box: Box
    frames: int = 0
    embeddings: list[Embeddings] = field(default_factory=list)
    best_area: int = 0
    embedded_at: float = -1e9
    name: str | None = None  # None until named
    distance: float | None = None
    arrived: bool = False


@dataclass(slots=True)
class StreamCounts:
    frames: int = 0
    embeddings: int = 0
    tracks: int = 0


def _closer_half(distances: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``(embeddings, people)`` → per person, the mean of the closer half (rounded up)."""
    keep = (len(distances) + 1) // 2
    closer: npt.NDArray[np.float64] = np.sort(distances, axis=0)[:keep].mean(axis=0)
    return closer


class StreamTracker:
    """One stream's tracks: feed it frames, get events back."""

    def __init__(
        self,
        stream: str,
        engine: Engine,
        index: Callable[[], GalleryIndex],
        *,
        fps: float = 10.0,
    ) -> None:
        self.stream = stream
        self.engine = engine
        self.index = index
        self.counts = StreamCounts()
        self.tracks: dict[int, Track] = {}
        self.names_seen: set[str] = set()
        # ByteTrack keeps a lost face's id for lost_track_buffer frames at 30 fps, scaled by
        # frame_rate: a face hidden for up to LOST_AFTER_S keeps its track (and its name).
        self._tracker = ByteTrackTracker(
            frame_rate=fps,
            lost_track_buffer=max(1, round(LOST_AFTER_S * 30)),
            track_activation_threshold=0.5,
            high_conf_det_threshold=0.5,
            minimum_iou_threshold=0.3,  # lower, and a panning camera swaps faces between tracks
        )

    def _event(
        self,
        kind: Kind,
        track: Track,
        duration: float | None = None,
        previous: str | None = None,
    ) -> Event:
        scoring = self.engine.scoring
        named = track.name not in (None, UNKNOWN) and track.distance is not None
        if kind != "left":
            self.names_seen.add(track.name or UNKNOWN)
        return Event(
            uuid.uuid4().hex,
            kind,
            self.stream,
            track.id,
            track.name or UNKNOWN,
            None if track.distance is None else round(track.distance, 4),
            round(scoring.confidence(track.distance), 4)
            if named and track.distance is not None
            else None,
            track.box,
            datetime.now(UTC),
            None if duration is None else round(duration, 2),
            previous,
        )

    def _associate(self, detections: list[Detection], now: float) -> list[tuple[Track, Detection]]:
        if not detections:
            self._tracker.update(sv.Detections.empty())
            return []
        boxes = np.array([[d.box.left, d.box.top, d.box.right, d.box.bottom] for d in detections])
        scored = sv.Detections(
            xyxy=boxes.astype(float),
            confidence=np.array([d.score for d in detections], dtype=float),
            class_id=np.zeros(len(detections), dtype=int),
            data={"detection": np.arange(len(detections))},
        )
        tracked = self._tracker.update(scored)
        seen = []
        ids: Sequence[int] = [] if tracked.tracker_id is None else tracked.tracker_id.tolist()
        for track_id, i in zip(ids, tracked.data["detection"], strict=True):
            if track_id < 0:  # not confirmed by the tracker yet
                continue
            detection = detections[int(i)]
            track = self.tracks.get(int(track_id))
            if track is None:
                track = Track(int(track_id), now, now, detection.box)
                self.tracks[track.id] = track
                self.counts.tracks += 1
            track.last_seen, track.box = now, detection.box
            track.frames += 1
            seen.append((track, detection))
        return seen

    def _embed(self, frame: Frame, due: list[tuple[Track, Detection]]) -> None:
        aligned = self.engine.aligner.align(frame.pixels, [d for _, d in due])
        vectors = self.engine.embedder.embed(aligned)
        self.counts.embeddings += len(due)
        for (track, detection), vector in zip(due, vectors, strict=True):
            track.embeddings = [*track.embeddings, vector][-MAX_EMBEDDINGS:]
            track.best_area = max(track.best_area, detection.box.area)
            track.embedded_at = frame.taken_at

    def _name(self) -> list[tuple[Track, str | None]]:
        """Name every live embedded track jointly; (track, its name before) for changes."""
        live = [t for t in self.tracks.values() if t.embeddings]
        if not live:
            return []
        index = self.index()
        threshold = self.engine.scoring.threshold
        if len(index.names):
            dist = np.stack(
                [_closer_half(index.person_distances(np.stack(t.embeddings))) for t in live]
            )
            chosen = assign(dist, threshold)
        else:
            dist, chosen = np.zeros((len(live), 0)), {}
        changed = []
        for row, track in enumerate(live):
            column = chosen.get(row, len(index.names))
            before = track.name
            if column < len(index.names):
                track.name, track.distance = index.names[column], float(dist[row, column])
            else:
                nearest = dist[row].min() if dist.shape[1] else None
                track.name, track.distance = UNKNOWN, None if nearest is None else float(nearest)
            if track.name != before:
                changed.append((track, before))
        return changed

    @staticmethod
    def _due(track: Track, detection: Detection, now: float) -> bool:
        """Whether to embed this track's face now (embeddings are the costly part)."""
        since = now - track.embedded_at
        return (
            (len(track.embeddings) < FIRST_EMBEDDINGS and since >= FIRST_EVERY_S)
            or detection.box.area >= BETTER_AREA * track.best_area
            or since >= REEMBED_EVERY_S
        )

    def process(self, frame: Frame) -> list[Event]:
        """Detect, track, embed where due, name, and say what changed."""
        now = frame.taken_at
        self.counts.frames += 1
        seen = self._associate(self.engine.detect(frame.pixels), now)
        due = [(track, detection) for track, detection in seen if self._due(track, detection, now)]
        events = []
        if due:
            self._embed(frame, due)
            for track, before in self._name():
                if track.arrived and before is not None:
                    events.append(self._event("renamed", track, previous=before))
        for track, _ in seen:
            if not track.arrived and track.name is not None and track.frames >= CONFIRM_FRAMES:
                track.arrived = True
                events.append(self._event("arrived", track))
        return events + self.expire(now)

    def expire(self, now: float) -> list[Event]:
        """Tracks not seen for LOST_AFTER_S by ``now`` leave (also called when a live source
        gives no frames: a camera that went dark has nobody in view)."""
        lost = [t for t in self.tracks.values() if now - t.last_seen > LOST_AFTER_S]
        return [event for track in lost for event in self._leave(track)]

    def _leave(self, track: Track) -> list[Event]:
        del self.tracks[track.id]
        if not track.arrived:
            return []
        return [self._event("left", track, track.last_seen - track.first_seen)]

    def finish(self) -> list[Event]:
        """The stream ended: every track still there leaves."""
        return [e for track in list(self.tracks.values()) for e in self._leave(track)]
