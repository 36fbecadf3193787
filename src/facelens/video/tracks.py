"""Faces followed across frames: detect every processed frame, associate boxes with tracks
(ByteTrack, from the ``trackers`` package), embed a track only when it appears, when its face
is clearly better, or every few seconds, and name the tracks of a stream jointly.

A track's name comes from its embeddings voting together: its distance to a person is the mean
of the closer half of its embeddings' distances to them, so one bad frame (blurred, turned
away) neither names nor renames anyone, and one lucky frame needs another to agree. The live
tracks of a stream are named together (the same optimal assignment as the faces of one photo),
so one person is never the name of two live tracks at once.

Embedding runs on a thread of its own (one face at a time, ~30 ms for SFace on this 2-core
machine: longer than a 25 fps frame): detection and tracking go on with the next frames
meanwhile, and the result names its track when it is ready. OpenCV releases the GIL, so the
two run on both cores; dlib's embedder holds it, so with dlib a frame waits for its embeddings
(the profile's ``embeds_beside``). For a video file, each frame waits for its embeddings
(``wait``): the same events every run, whatever the machine's speed.

Events: ``arrived`` once a track has been seen on a few frames and named, ``renamed`` when its
name changes, ``left`` when it is lost or the stream ends. With ``crops``, each event carries a
small JPEG of the track's face (off by default: it is biometric data).
"""

from __future__ import annotations

import base64
import threading
import uuid
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import supervision as sv
from trackers import ByteTrackTracker

from facelens.imaging import face_thumbnail, sharpness
from facelens.matching import UNKNOWN, GalleryIndex, assign, pair_distance
from facelens.models.base import AlignedFace, Box, Detection, Embeddings
from facelens.pipeline import Engine
from facelens.video.source import Frame

Kind = Literal["arrived", "renamed", "left"]

CONFIRM_FRAMES = 3  # processed frames a track must be seen on before it "arrives"
FIRST_EMBEDDINGS = 3  # a new track is embedded this many times, at least ...
FIRST_EVERY_S = 0.3  # ... this far apart, so that its name rests on more than one frame
REEMBED_EVERY_S = 3.0  # then again at most this often without a better face
BETTER_AREA = 1.5  # ... or when its face is this many times larger than its best so far,
BETTER_FRONTAL = 0.3  # ... or faces the camera this much more squarely (0 profile, 1 frontal),
BETTER_SHARPNESS = 2.0  # ... or is this many times sharper
MAX_EMBEDDINGS = 8  # per track: the latest ones vote
LOST_AFTER_S = 1.0  # a track not seen for this long has left
# A new embedding farther than this many thresholds from every earlier one of its track is
# someone else's face: the tracker followed the box from one person to another (a panning
# camera, people crossing). The track is split: the first person leaves, the other arrives.
# (On the shared clip with the default model, one person's embeddings are at most 0.75
# thresholds apart; the one switch seen is 1.6 thresholds away.)
SPLIT_AT = 1.25
# Histogram buckets of embeddings per track (the metric that shows the saving over per-frame).
EMBEDDINGS_PER_TRACK_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


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
    crop: bytes | None = None  # a JPEG of the face, when crops are switched on
    # When the newest frame the event rests on was taken (monotonic s): where its latency
    # starts. Not part of the event as told.
    basis: float = field(default=0.0, compare=False)

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
            "crop": None if self.crop is None else base64.b64encode(self.crop).decode("ascii"),
        }


@dataclass(slots=True)
class Track:
    id: int  # ours, in events: a track split in two (see SPLIT_AT) has two
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
    crop: bytes | None = None  # its face when last embedded (with crops on)
    name: str | None = None  # None until named
    distance: float | None = None
    arrived: bool = False


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


# One lock per embedder: OpenCV's networks are not thread-safe, and the trackers of several
# streams on one engine (``facelens watch a b``) each have an embedding thread.
_EMBEDDER_LOCKS: weakref.WeakKeyDictionary[object, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def _embedder_lock(embedder: object) -> threading.Lock:
    with _LOCKS_LOCK:
        return _EMBEDDER_LOCKS.setdefault(embedder, threading.Lock())


@dataclass(frozen=True, slots=True)
class _Asked:
    """Faces handed to the embedding thread: their tracks, and when the frame was taken."""

    tracks: list[Track]
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


def _closer_half(distances: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``(embeddings, people)`` → per person, the mean of the closer half (rounded up)."""
    keep = (len(distances) + 1) // 2
    closer: npt.NDArray[np.float64] = np.sort(distances, axis=0)[:keep].mean(axis=0)
    return closer


class StreamTracker:
    """One stream's tracks: feed it frames, get events back. ``close`` (or ``finish``) ends
    its embedding thread."""

    def __init__(
        self,
        stream: str,
        engine: Engine,
        index: Callable[[], GalleryIndex],
        *,
        fps: float = 10.0,
        crops: bool = False,
    ) -> None:
        self.stream = stream
        self.engine = engine
        self.index = index
        self.crops = crops
        self.counts = StreamCounts()
        self.tracks: dict[int, Track] = {}  # by ByteTrack's id (Track.key)
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
        self._embedder = ThreadPoolExecutor(1, thread_name_prefix=f"embed {stream}")
        self._embedding = _embedder_lock(engine.embedder)
        self._asked: _Asked | None = None
        self._next_id = 0
        # The first inference of a model sets it up (~0.1 s): done now, not on a live frame.
        self._embedder.submit(self._warm_up).result()

    def _warm_up(self) -> None:
        grey = np.full((160, 160, 3), 127, dtype=np.uint8)
        eyes_nose_mouth = np.array([[60, 70], [100, 70], [80, 90], [64, 112], [96, 112]], float)
        face = Detection(Box(30, 30, 130, 130), 1.0, eyes_nose_mouth)
        self._embed(self.engine.aligner.align(grey, [face]))

    def _embed(self, faces: list[AlignedFace]) -> Embeddings:
        with self._embedding:
            return self.engine.embedder.embed(faces)

    def _event(
        self,
        kind: Kind,
        track: Track,
        basis: float,
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
            track.crop,
            basis,
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
                track = self._new_track(int(track_id), now, detection.box)
            track.last_seen, track.box = now, detection.box
            track.frames += 1
            if track.frames == CONFIRM_FRAMES:
                track.confirmed_at = now
            seen.append((track, detection))
        return seen

    def _new_track(self, key: int, now: float, box: Box) -> Track:
        track = Track(self._next_id, key, now, now, box)
        self._next_id += 1
        self.tracks[key] = track
        self.counts.tracks += 1
        return track

    def _someone_else(self, track: Track, vector: Embeddings) -> bool:
        """Whether ``vector`` is clearly not the face ``track`` followed so far."""
        if not track.embeddings:
            return False
        metric, limit = self.engine.profile.metric, SPLIT_AT * self.engine.scoring.threshold
        return min(pair_distance(vector, e, metric) for e in track.embeddings) > limit

    def _split(self, track: Track, taken_at: float) -> tuple[Track, list[Event]]:
        """End ``track`` where another face took its place; the track that face starts."""
        left = self._leave(track, taken_at)
        after = self._new_track(track.key, taken_at, track.box)
        after.last_seen, after.frames = track.last_seen, 1
        after.best_area, after.best_frontal = track.best_area, track.best_frontal
        after.best_sharpness, after.embedded_at = track.best_sharpness, taken_at
        after.crop = track.crop
        return after, left

    def _ask(self, frame: Frame, due: list[Seen]) -> None:
        """Hand the due faces to the embedding thread (aligned here: a crop each, so the
        frame itself is not held)."""
        aligned = self.engine.aligner.align(frame.pixels, [s.detection for s in due])
        for seen in due:
            track = seen.track
            track.best_area = max(track.best_area, seen.detection.box.area)
            track.best_frontal = max(track.best_frontal, seen.frontal or 0.0)
            track.best_sharpness = max(track.best_sharpness, seen.sharpness)
            track.embedded_at = frame.taken_at
            if self.crops:
                track.crop = face_thumbnail(frame.pixels, seen.detection.box)
        self._asked = _Asked(
            [s.track for s in due],
            frame.taken_at,
            self._embedder.submit(self._embed, aligned),
        )

    def _collect(self, wait: bool) -> list[Event]:
        """Take the embeddings asked for, if ready (or once ready, with ``wait``), into their
        tracks, and name the tracks again: the renames."""
        asked = self._asked
        if asked is None or not (wait or asked.vectors.done()):
            return []
        self._asked = None
        vectors = asked.vectors.result()
        self.counts.embeddings += len(asked.tracks)
        events: list[Event] = []
        for track, vector in zip(asked.tracks, vectors, strict=True):
            if self.tracks.get(track.key) is not track:
                continue  # it left (or was split) while its face was being embedded
            if self._someone_else(track, vector):
                track, left = self._split(track, asked.taken_at)
                events += left
            track.embeddings = [*track.embeddings, vector][-MAX_EMBEDDINGS:]
            track.embedded += 1
            track.named_at = asked.taken_at
        return events + [
            self._event("renamed", track, track.named_at, previous=before)
            for track, before in self._name()
            if track.arrived and before is not None
        ]

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
    def _due(seen: Seen, now: float) -> bool:
        """Whether to embed this face now (embeddings are the costly part): a new track's
        first few, then a clearly better view (larger, more frontal, sharper), or a while on."""
        track = seen.track
        since = now - track.embedded_at
        return (
            (track.embedded < FIRST_EMBEDDINGS and since >= FIRST_EVERY_S)
            or seen.detection.box.area >= BETTER_AREA * track.best_area
            or (seen.frontal is not None and seen.frontal >= track.best_frontal + BETTER_FRONTAL)
            or seen.sharpness > BETTER_SHARPNESS * track.best_sharpness
            or since >= REEMBED_EVERY_S
        )

    def process(self, frame: Frame, *, wait: bool = False) -> list[Event]:
        """Detect, track, embed where due, name, and say what changed. Embeddings asked for
        on an earlier frame are taken when ready; with ``wait``, at once (a video file)."""
        now = frame.taken_at
        self.counts.frames += 1
        seen = self._associate(self.engine.detect(frame.pixels), now)
        events = self._collect(wait=False)
        if self._asked is None:  # one batch at a time: the due faces wait for the next frame
            views = [Seen(t, d, frontal(d), sharpness(frame.pixels, d.box)) for t, d in seen]
            due = [view for view in views if self._due(view, now)]
            if due:
                self._ask(frame, due)
                if wait or not self.engine.profile.embeds_beside:
                    events += self._collect(wait=True)
        for track, _ in seen:
            if not track.arrived and track.name is not None and track.frames >= CONFIRM_FRAMES:
                track.arrived = True
                events.append(
                    self._event("arrived", track, max(track.named_at, track.confirmed_at))
                )
        return events + self.expire(now)

    def expire(self, now: float) -> list[Event]:
        """Tracks not seen for LOST_AFTER_S by ``now`` leave (also called when a live source
        gives no frames: a camera that went dark has nobody in view)."""
        events = self._collect(wait=False)
        lost = [t for t in self.tracks.values() if now - t.last_seen > LOST_AFTER_S]
        return events + [event for track in lost for event in self._leave(track, now)]

    def _leave(self, track: Track, now: float) -> list[Event]:
        del self.tracks[track.key]
        self.counts.track_ended(track.embedded)
        if not track.arrived:
            return []
        return [self._event("left", track, now, track.last_seen - track.first_seen)]

    def finish(self) -> list[Event]:
        """The stream ended: the embeddings under way are taken, every track still there
        leaves, and the embedding thread ends."""
        events = self._collect(wait=True)
        now = max((t.last_seen for t in self.tracks.values()), default=0.0)
        events += [e for track in list(self.tracks.values()) for e in self._leave(track, now)]
        self.close()
        return events

    def close(self) -> None:
        self._embedder.shutdown(wait=True, cancel_futures=True)
