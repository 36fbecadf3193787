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

A name is shown on a face only when an embedding of *that* face agrees with it (within the
threshold of the person; for ``unknown``, of nobody). When the face in a track's box may have
changed (a cut, a jump of the box, a gap in seeing it: ``continuity.py``), or an embedding
disagrees, the track is in doubt: it shows no name ("…") until an embedding of the face now
in its box confirms it, and it is split when that embedding is someone else's (right after a
cut or jump) or when ``MAX_MISSES`` embeddings in a row disagree. Events carry the box and
crop of the frame whose embedding confirmed their name, so a face that took another's place
never lends its picture to the other's events.

Events: ``arrived`` once a track has been seen on a few frames and its name confirmed,
``renamed`` when its confirmed name changes, ``left`` when it is lost or the stream ends (with
the name last told). With ``crops``, each event carries a small JPEG of the track's face (off
by default: it is biometric data).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from facelens.core.imaging import face_thumbnail, sharpness
from facelens.core.matching import UNKNOWN, GalleryIndex, assign, pair_distance
from facelens.core.pipeline import Engine
from facelens.events.event import Event, Kind
from facelens.models.base import AlignedFace, Box, Detection, Embeddings
from facelens.video.continuity import GAP_S, CutDetector, jumped, look, looks_changed
from facelens.video.source import Frame
from facelens.video.track import (
    Asked,
    People,
    Seen,
    StreamCounts,
    Track,
    closer_half,
    doubt,
    frontal,
)

CONFIRM_FRAMES = 3  # processed frames a track must be seen on before it "arrives"
FIRST_EMBEDDINGS = 3  # a new track is embedded this many times, at least ...
FIRST_EVERY_S = 0.3  # ... this far apart, so that its name rests on more than one frame
REEMBED_EVERY_S = 3.0  # then again at most this often without a better face,
VERIFY_EVERY_S = 1.0  # but this often when it carries a person's name: a swap of faces that
# no cheap signal saw (continuity.py) is caught within a second
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
MAX_MISSES = 3  # embeddings in a row not agreeing with a track's name: it is someone else


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
        self._embedding = engine.embedding_lock
        self._asked: Asked | None = None
        self._next_id = 0
        self._cuts = CutDetector()
        self._newest: float | None = None  # when the newest processed frame was taken
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
        """An event of ``track`` under the name it is told by (``told``), with the box and
        crop of the frame that confirmed that name."""
        scoring = self.engine.scoring
        name = track.told or UNKNOWN
        named = name != UNKNOWN and track.distance is not None
        if kind != "left":
            self.names_seen.add(name)
        return Event(
            uuid.uuid4().hex,
            kind,
            self.stream,
            track.id,
            name,
            None if track.distance is None else round(track.distance, 4),
            round(scoring.confidence(track.distance), 4)
            if named and track.distance is not None
            else None,
            track.sure_box or track.box,
            datetime.now(UTC),
            None if duration is None else round(duration, 2),
            previous,
            track.crop,
            basis,
        )

    def _associate(
        self, frame: Frame, detections: list[Detection], cut: bool
    ) -> list[tuple[Track, Detection]]:
        now = frame.taken_at
        if cut:  # another shot: no face in any box may be the one it was
            for track in self.tracks.values():
                doubt(track, now, hard=True)
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
            known = self.tracks.get(int(track_id))
            track = known or self._new_track(int(track_id), now, detection.box)
            seen_as = look(frame.pixels, detection.box)
            if known is not None and (
                now - track.last_seen > GAP_S  # lost a while
                or jumped(track.box, detection.box)  # moved as no face moves
                or looks_changed(track.look, seen_as)  # another face in the same place
            ):
                doubt(track, now, hard=True)
            track.last_seen, track.box, track.look = now, detection.box, seen_as
            if track.doubt_since is None:
                track.sure_seen = now
            track.frames += 1
            if track.frames == CONFIRM_FRAMES:
                track.confirmed_at = now
            seen.append((track, detection))
        return seen

    def _new_track(self, key: int, now: float, box: Box) -> Track:
        track = Track(self._next_id, key, now, now, box, sure_seen=now)
        self._next_id += 1
        self.tracks[key] = track
        self.counts.tracks += 1
        return track

    def _someone_else(self, track: Track, vector: Embeddings, people: People) -> bool:
        """Whether ``vector`` is clearly not the face ``track`` followed so far: far from
        every earlier embedding of it, or another enrolled person's and not its person's."""
        if not track.embeddings:
            return False
        metric, threshold = self.engine.profile.metric, self.engine.scoring.threshold
        if min(pair_distance(vector, e, metric) for e in track.embeddings) > SPLIT_AT * threshold:
            return True
        if track.name in (None, UNKNOWN) or track.name not in people.names:
            return False
        return not people.agrees(track.name, threshold) and people.nearest(threshold) is not None

    def _split(self, track: Track, taken_at: float) -> tuple[Track, list[Event]]:
        """End ``track`` where another face took its place; the track that face starts."""
        left = self._leave(track, min(taken_at, track.sure_seen))
        after = self._new_track(track.key, taken_at, track.box)
        after.last_seen, after.frames = track.last_seen, 1
        after.best_area, after.best_frontal = track.best_area, track.best_frontal
        after.best_sharpness, after.embedded_at = track.best_sharpness, taken_at
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
        self._asked = Asked(
            [s.track for s in due],
            [s.detection.box for s in due],
            [face_thumbnail(frame.pixels, s.detection.box) if self.crops else None for s in due],
            frame.taken_at,
            self._embedder.submit(self._embed, aligned),
        )

    def _collect(self, wait: bool) -> list[Event]:
        """Take the embeddings asked for, if ready (or once ready, with ``wait``), into their
        tracks; split the tracks whose face became someone else's; name the tracks again;
        confirm or doubt each embedded track's name on its new face. The renames (of names
        confirmed) and the splits' departures are the events."""
        asked = self._asked
        if asked is None or not (wait or asked.vectors.done()):
            return []
        self._asked = None
        vectors = asked.vectors.result()
        self.counts.embeddings += len(asked.tracks)
        index = self.index()
        threshold = self.engine.scoring.threshold
        events: list[Event] = []
        fresh: list[tuple[Track, People, Box, bytes | None]] = []
        for track, vector, box, crop in zip(
            asked.tracks, vectors, asked.boxes, asked.crops, strict=True
        ):
            if self.tracks.get(track.key) is not track:
                continue  # it left (or was split) while its face was being embedded
            people = People.of(index, vector)
            deciding = track.doubt_since is not None and asked.taken_at >= track.doubt_since
            disagrees = track.name is not None and not people.agrees(track.name, threshold)
            if self._someone_else(track, vector, people) or (
                deciding and disagrees and (track.doubt_hard or track.misses + 1 >= MAX_MISSES)
            ):
                track, left = self._split(track, asked.taken_at)
                events += left
            track.embeddings = [*track.embeddings, vector][-MAX_EMBEDDINGS:]
            track.embedded += 1
            track.named_at = asked.taken_at
            fresh.append((track, people, box, crop))
        self._name()
        for track, people, box, crop in fresh:
            if track.name is None:
                continue
            if people.agrees(track.name, threshold):
                if track.doubt_since is None or asked.taken_at >= track.doubt_since:
                    track.doubt_since, track.doubt_hard, track.misses = None, False, 0
                    track.sure_box, track.crop = box, crop
                    track.sure_seen = max(track.sure_seen, asked.taken_at)
            else:
                doubt(track, asked.taken_at, hard=False)
                track.misses += 1
        return events + self._renames()

    def _renames(self) -> list[Event]:
        """``renamed`` for each arrived track whose confirmed name differs from the one told."""
        events = []
        for track in self.tracks.values():
            if track.arrived and track.shown is not None and track.shown != track.told:
                previous, track.told = track.told, track.shown
                events.append(self._event("renamed", track, track.named_at, previous=previous))
        return events

    def _name(self) -> None:
        """Name every embedded track in view jointly (the vote of its embeddings). A track out
        of sight for GAP_S keeps its name and leaves the others free to take it: the tracker
        often follows a face found again under a new track, and if it is found again under
        the old one, the gap puts that in doubt."""
        newest = max((t.last_seen for t in self.tracks.values()), default=0.0)
        live = [t for t in self.tracks.values() if t.embeddings and newest - t.last_seen <= GAP_S]
        if not live:
            return
        index = self.index()
        threshold = self.engine.scoring.threshold
        if len(index.names):
            dist = np.stack(
                [closer_half(index.person_distances(np.stack(t.embeddings))) for t in live]
            )
            chosen = assign(dist, threshold)
        else:
            dist, chosen = np.zeros((len(live), 0)), {}
        for row, track in enumerate(live):
            column = chosen.get(row, len(index.names))
            if column < len(index.names):
                track.name, track.distance = index.names[column], float(dist[row, column])
            else:
                nearest = dist[row].min() if dist.shape[1] else None
                track.name, track.distance = UNKNOWN, None if nearest is None else float(nearest)

    @staticmethod
    def _due(seen: Seen, now: float) -> bool:
        """Whether to embed this face now (embeddings are the costly part): a new track's
        first few, a track in doubt (at once after a cut, jump or gap), then a clearly
        better view (larger, more frontal, sharper), or a while on (sooner for a name)."""
        track = seen.track
        since = now - track.embedded_at
        doubted = track.doubt_since is not None
        return (
            (doubted and track.embedded_at < (track.doubt_since or 0.0))
            or ((track.embedded < FIRST_EMBEDDINGS or doubted) and since >= FIRST_EVERY_S)
            or seen.detection.box.area >= BETTER_AREA * track.best_area
            or (seen.frontal is not None and seen.frontal >= track.best_frontal + BETTER_FRONTAL)
            or seen.sharpness > BETTER_SHARPNESS * track.best_sharpness
            or since >= REEMBED_EVERY_S
            or (track.name not in (None, UNKNOWN) and since >= VERIFY_EVERY_S)
        )

    def process(self, frame: Frame, *, wait: bool = False) -> list[Event]:
        """Detect, track, embed where due, name, and say what changed. Embeddings asked for
        on an earlier frame are taken when ready; with ``wait``, at once (a video file)."""
        now = self._newest = frame.taken_at
        self.counts.frames += 1
        cut = self._cuts.cut(frame.pixels)
        seen = self._associate(frame, self.engine.detect(frame.pixels), cut)
        events = self._collect(wait=False)
        if self._asked is None:  # one batch at a time: the due faces wait for the next frame
            views = [Seen(t, d, frontal(d), sharpness(frame.pixels, d.box)) for t, d in seen]
            due = [view for view in views if self._due(view, now)]
            if due:
                self._ask(frame, due)
                if wait or not self.engine.profile.embeds_beside:
                    events += self._collect(wait=True)
        for track, _ in seen:
            if not track.arrived and track.shown is not None and track.frames >= CONFIRM_FRAMES:
                track.arrived, track.told = True, track.shown
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
        """``track`` is gone: it leaves under the name it was told by, when it was last seen
        out of doubt (a face that took its place in doubt was never it)."""
        del self.tracks[track.key]
        self.counts.track_ended(track.embedded)
        if not track.arrived:
            return []
        last = track.last_seen if track.doubt_since is None else track.sure_seen
        return [self._event("left", track, now, last - track.first_seen)]

    def in_view(self) -> list[Track]:
        """The tracks seen on the newest processed frame."""
        return [t for t in self.tracks.values() if t.last_seen == self._newest]

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
