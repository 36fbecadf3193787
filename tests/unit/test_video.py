"""The parts of 'facelens watch' that need no model: masking, back-off, stream names, the
tracks' vote, the event log's outbox, the rates and the metrics made of a stream's status."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from facelens.core.matching import GalleryIndex
from facelens.core.pipeline import Engine
from facelens.events.event import Event
from facelens.events.log import EventLog
from facelens.models.base import AlignedFace, Box, Detection
from facelens.models.profiles import profile_for
from facelens.settings import Settings
from facelens.system.backoff import backoff_s
from facelens.video.continuity import CutDetector, jumped, look, looks_changed
from facelens.video.loop import (
    RATE_WINDOW_S,
    HeldEvents,
    RateMeter,
    VideoOut,
    Watched,
    stream_name,
)
from facelens.video.metrics import StreamMetrics
from facelens.video.source import RECONNECT_CAP_S, RECONNECT_FIRST_S, Frame, is_live, mask
from facelens.video.track import StreamCounts, frontal
from facelens.video.track import closer_half as _closer_half
from facelens.video.tracks import StreamTracker


def test_credentials_in_urls_are_masked() -> None:
    assert mask("rtsp://admin:hunter2@10.0.0.5:554/live") == "rtsp://***@10.0.0.5:554/live"
    assert mask("http://cam.local/mjpeg") == "http://cam.local/mjpeg"
    assert mask("/videos/door.mp4") == "/videos/door.mp4"


def test_reconnect_waits_grow_capped_and_jittered() -> None:
    waits = [
        [backoff_s(n, RECONNECT_FIRST_S, RECONNECT_CAP_S) for _ in range(200)] for n in (1, 3, 12)
    ]
    assert max(waits[0]) <= 1.0 and max(waits[1]) <= 4.0
    assert max(waits[2]) <= RECONNECT_CAP_S and max(waits[2]) > RECONNECT_CAP_S / 2
    assert len({round(w, 3) for w in waits[2]}) > 100  # jitter: cameras do not retry in step


def test_sources_live_or_files_and_their_names() -> None:
    assert is_live("0") and is_live("/dev/video0") and is_live("rtsp://h/x")
    assert not is_live("clip.mp4")
    taken: set[str] = set()
    names = [
        stream_name(s, taken)
        for s in ("/v/door.mp4", "/w/door.mp4", "0", "rtsp://u:p@cam.lan:554/live/main")
    ]
    assert names == ["door", "door-2", "camera0", "cam.lan-main"]


def test_a_tracks_distance_is_the_mean_of_its_closer_half() -> None:
    # Three embeddings of one face against two people: one bad frame (0.9) does not count,
    # one lucky frame (0.2 for the other person) needs another to agree.
    distances = np.array([[0.40, 0.90], [0.45, 0.20], [0.90, 0.95]])
    np.testing.assert_allclose(_closer_half(distances), [0.425, 0.55])


def event(n: int, kind: str = "arrived") -> Event:
    return Event(
        f"id{n}",
        kind,
        "door",
        n,
        "ann",
        0.3,
        0.9,
        Box(0, 0, 10, 10),
        datetime.now(UTC),  # type: ignore[arg-type]
    )


def test_events_are_pending_per_target_until_delivered_and_filterable(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.sqlite3", targets=("hook", "mqtt"))
    log.add([event(1), event(2, "left")])
    assert [e["id"] for _, e in log.pending("hook")] == ["id1", "id2"]
    first_seq = log.pending("hook")[0][0]
    log.delivered("hook", first_seq)
    assert [e["id"] for _, e in log.pending("hook")] == ["id2"]
    assert len(log.pending("mqtt")) == 2  # each target on its own
    assert [e["kind"] for _, e in log.events(kind="left")] == ["left"]
    assert [e["id"] for _, e in log.events(after=first_seq)] == ["id2"]
    log.close()
    again = EventLog(tmp_path / "events.sqlite3", targets=("hook",))
    assert [e["id"] for _, e in again.pending("hook")] == ["id2"]  # survives a restart
    assert again.forget_before(days=0) == 2 and again.pending("hook") == []


def test_rates_are_over_the_last_seconds_and_fall_to_zero_when_frames_stop() -> None:
    meter = RateMeter()
    for second in range(5):  # 10 frames and 2 embeddings a second
        meter.add(100.0 + second, frames=10 * second, embeddings=2 * second)
    assert meter.rates(104.0) == (10.0, 2.0)
    meter.add(105.0, frames=40, embeddings=8)  # no frame for a second: the rate drops
    assert meter.rates(105.0)[0] < 10.0
    assert meter.rates(105.0 + RATE_WINDOW_S + 1) == (0.0, 0.0)  # a dead camera: 0, not stale


def scraped(
    statuses: dict[str, dict[str, object]],
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(StreamMetrics(lambda: statuses))
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_stream_metrics_count_embeddings_per_track_in_cumulative_buckets() -> None:
    counts = StreamCounts(frames=300, embeddings=47, tracks=4)
    for embedded in (1, 3, 3, 40):
        counts.track_ended(embedded)
    status = {
        "state": "running",
        "fps": 24.5,
        "embeddings_per_s": 1.5,
        "frames_read": 310,
        "frames_dropped": 10,
        "reconnects": 2,
        "in_view": ["ann", "unknown"],
        **counts.as_dict(),
    }
    down = {**status, "state": "retrying", "fps": 0.0}
    got = scraped({"door": status, "yard": down})
    door = (("stream", "door"),)

    def bucket(le: str) -> float:
        return got[
            ("facelens_stream_embeddings_per_track_bucket", (("le", le), ("stream", "door")))
        ]

    assert (bucket("1.0"), bucket("2.0"), bucket("3.0"), bucket("32.0"), bucket("+Inf")) == (
        1,
        1,
        3,
        3,
        4,
    )
    assert got[("facelens_stream_embeddings_per_track_count", door)] == 4
    assert got[("facelens_stream_embeddings_per_track_sum", door)] == 47
    assert got[("facelens_stream_embeddings_total", door)] == 47
    assert got[("facelens_stream_frames_processed_total", door)] == 300
    assert got[("facelens_stream_frames_dropped_total", door)] == 10
    assert got[("facelens_stream_reconnects_total", door)] == 2
    assert got[("facelens_stream_embeddings_per_second", door)] == 1.5
    assert got[("facelens_stream_fps", door)] == 24.5
    assert got[("facelens_stream_faces_in_view", door)] == 2
    assert got[("facelens_stream_up", door)] == 1
    assert got[("facelens_stream_up", (("stream", "yard"),))] == 0


class OneFaceInView:
    """Stand-ins for the models: one face in the middle of every frame, whose embedding is
    decided by the frame's pixels (value 1: ann's face, 2: bob's; anything else: a stranger)."""

    faces: ClassVar[dict[int, np.ndarray]] = {
        1: np.array([1.0, 0.0, 0.0]),
        2: np.array([0.0, 1.0, 0.0]),
    }

    def detect(self, image: np.ndarray) -> list[Detection]:
        landmarks = np.array([[40, 45], [60, 45], [50, 55], [42, 65], [58, 65]], dtype=float)
        return [Detection(Box(30, 30, 70, 80), 0.99, landmarks)]

    def align(self, image: np.ndarray, detections: list[Detection]) -> list[AlignedFace]:
        return [AlignedFace(image[:4, :4].copy(), d.landmarks) for d in detections]  # type: ignore[arg-type]

    def embed(self, faces: list[AlignedFace]) -> np.ndarray:
        vectors = [self.faces.get(int(f.chip[0, 0, 0]), np.array([0.0, 0.0, 1.0])) for f in faces]
        return np.array(vectors, dtype=np.float32).reshape(len(faces), 3)


def test_a_track_whose_face_becomes_someone_elses_is_split_not_renamed() -> None:
    # The tracker follows one box from ann to bob (a panning camera, people crossing): the
    # closer-half vote would keep calling bob "ann". The new face's embedding is far from every
    # earlier one of the track, so ann leaves and bob arrives as a track of his own.
    models = OneFaceInView()
    engine = Engine(Settings(model="sface"), profile_for("sface"), models, models, models)  # type: ignore[arg-type]
    index = GalleryIndex.build(
        [("ann", models.faces[1][None, :]), ("bob", models.faces[2][None, :])], 3, "cosine"
    )
    tracker = StreamTracker("door", engine, lambda: index, fps=10)
    events = []
    for n in range(80):  # 8 s at 10 fps: ann for 4 s, then bob in her place
        value = 1 if n < 40 else 2
        frame = Frame(np.full((100, 100, 3), value, dtype=np.uint8), n + 1, n / 10)
        events += tracker.process(frame, wait=True)
    events += tracker.finish()
    told = [(e.kind, e.track, e.name) for e in events]
    assert told == [
        ("arrived", 0, "ann"),
        ("left", 0, "ann"),
        ("arrived", 1, "bob"),
        ("left", 1, "bob"),
    ]
    assert tracker.counts.tracks == 2
    assert sum(tracker.counts.per_track) == 2  # both ended, each counted once


def test_a_face_turning_to_the_camera_is_embedded_again_at_once() -> None:
    # A track first seen in profile is embedded (three times), then not again for 3 s unless
    # its view gets clearly better: turning to face the camera is such a view.
    class TurningFace(OneFaceInView):
        turned_at = 1.5  # seconds

        def __init__(self) -> None:
            self.now = 0.0

        def detect(self, image: np.ndarray) -> list[Detection]:
            (found,) = super().detect(image)
            assert found.landmarks is not None
            if self.now < self.turned_at:  # the nose level with the left eye: a profile
                found = Detection(found.box, found.score, found.landmarks.copy())
                assert found.landmarks is not None
                found.landmarks[2, 0] = found.landmarks[1, 0]
            return [found]

    models = TurningFace()
    engine = Engine(Settings(model="sface"), profile_for("sface"), models, models, models)  # type: ignore[arg-type]
    index = GalleryIndex.build([("ann", models.faces[1][None, :])], 3, "cosine")
    tracker = StreamTracker("door", engine, lambda: index, fps=10)
    embedded_at = []
    for n in range(25):
        models.now = n / 10
        before = tracker.counts.embeddings
        frame = Frame(np.full((100, 100, 3), 1, dtype=np.uint8), n + 1, models.now)
        tracker.process(frame, wait=True)
        if tracker.counts.embeddings > before:
            embedded_at.append(models.now)
    tracker.finish()
    assert frontal(Detection(Box(0, 0, 1, 1), 1.0, np.array([[40, 0], [60, 0], [50, 9]]))) == 1
    # The first three in profile (0.3 s apart), then at once when it turned, not 3 s later.
    assert len(embedded_at) == 4 and embedded_at[2] < TurningFace.turned_at
    assert embedded_at[3] == TurningFace.turned_at


def coloured(value: int, colour: tuple[int, int, int], n: int, fps: float = 10) -> Frame:
    """A frame of one colour (another shot: another colour) whose face is decided by
    ``value`` (see OneFaceInView)."""
    pixels = np.empty((100, 100, 3), dtype=np.uint8)
    pixels[:] = colour
    pixels[:4, :4, 0] = value
    return Frame(pixels, n + 1, n / fps)


def cut_tracker(crops: bool = False) -> tuple[StreamTracker, OneFaceInView]:
    models = OneFaceInView()
    engine = Engine(Settings(model="sface"), profile_for("sface"), models, models, models)  # type: ignore[arg-type]
    index = GalleryIndex.build([("ann", models.faces[1][None, :])], 3, "cosine")
    return StreamTracker("door", engine, lambda: index, fps=10, crops=crops), models


RED, BLUE = (200, 40, 40), (40, 40, 200)


def test_a_cut_puts_the_face_in_doubt_and_its_next_embedding_confirms_it() -> None:
    tracker, _ = cut_tracker()
    events = []
    for n in range(20):
        events += tracker.process(coloured(1, RED, n), wait=True)
    embeddings = tracker.counts.embeddings
    events += tracker.process(coloured(1, BLUE, 20), wait=True)  # another shot, ann again
    assert tracker.counts.embeddings == embeddings + 1  # checked at once, not when due
    (track,) = tracker.tracks.values()
    assert track.shown == "ann" and track.doubt_since is None
    events += tracker.finish()
    assert [(e.kind, e.name) for e in events] == [("arrived", "ann"), ("left", "ann")]


def test_after_a_cut_to_a_stranger_ann_leaves_with_her_own_face_and_box() -> None:
    """The box stays where it was; only an embedding can tell. Before, the stranger kept
    ann's name, and ann's 'left' event carried the stranger's face."""
    tracker, _ = cut_tracker(crops=True)
    events = []
    for n in range(20):
        events += tracker.process(coloured(1, RED, n), wait=True)
    for n in range(20, 40):
        events += tracker.process(coloured(3, BLUE, n), wait=True)
    events += tracker.finish()
    assert [(e.kind, e.track, e.name) for e in events] == [
        ("arrived", 0, "ann"),
        ("left", 0, "ann"),
        ("arrived", 1, "unknown"),
        ("left", 1, "unknown"),
    ]
    left = events[1]
    assert left.crop is not None
    face = cv2.imdecode(np.frombuffer(left.crop, np.uint8), cv2.IMREAD_COLOR)  # BGR
    assert face[..., 2].mean() > face[..., 0].mean()  # red: ann's shot, not the blue one
    assert left.duration_s is not None and left.duration_s < 2.0  # she left at the cut


def test_what_tells_a_face_may_have_changed() -> None:
    rng = np.random.default_rng(3)
    scene = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
    detector = CutDetector()
    assert not detector.cut(scene)
    moved = np.roll(scene, 8, axis=1)  # the camera pans a little: the same shot
    assert not detector.cut(moved)
    other = np.full_like(scene, 0)
    other[..., 2] = 220  # another shot
    assert detector.cut(other)
    face = Box(100, 100, 180, 190)
    assert not jumped(face, Box(112, 104, 192, 194))  # a face moving
    assert jumped(face, Box(300, 100, 380, 190))  # a box that jumped
    assert jumped(face, Box(100, 100, 240, 260))  # or tripled in size
    red, blue = scene.copy(), scene.copy()
    red[80:210, 80:200] = RED
    blue[80:210, 80:200] = BLUE
    assert not looks_changed(look(red, face), look(red, face))
    assert looks_changed(look(red, face), look(blue, face))  # another face, the same place


def test_in_view_are_the_faces_of_the_newest_frame_not_those_kept_out_of_sight() -> None:
    tracker, models = cut_tracker()
    for n in range(10):
        tracker.process(coloured(1, RED, n), wait=True)
    assert [t.shown for t in tracker.in_view()] == ["ann"]
    models.detect = lambda image: []  # type: ignore[method-assign]  # she steps out of sight
    tracker.process(coloured(1, RED, 10), wait=True)
    assert tracker.tracks and tracker.in_view() == []  # kept a while, but not in view
    tracker.finish()


def video_written(path: Path) -> tuple[float, list[float]]:
    """An .mp4's frame rate and the mean grey of each of its frames."""
    capture = cv2.VideoCapture(str(path))
    fps, greys = capture.get(cv2.CAP_PROP_FPS), []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        greys.append(float(image.mean()))
    capture.release()
    return fps, greys


def grey(value: int, number: int, taken_at: float) -> Frame:
    return Frame(np.full((64, 96, 3), value, dtype=np.uint8), number, taken_at)


def test_an_annotated_file_gets_each_of_its_frames_once_at_its_own_rate(tmp_path: Path) -> None:
    tracker, _ = cut_tracker()
    video = VideoOut(tmp_path / "out.mp4")
    for n in range(30):  # a 25 fps file, every frame processed: its frames carry its times
        video(Watched(None, tracker), grey(8 * n, n + 1, (n + 1) / 25))  # type: ignore[arg-type]
    video.close()
    fps, greys = video_written(tmp_path / "out.mp4")
    assert fps == 25  # it wrote 10 fps whatever the file's rate
    assert len(greys) == 30
    assert all(abs(g - 8 * n) < 4 for n, g in enumerate(greys))  # in order, none repeated


def test_an_annotated_camera_plays_at_real_speed_whatever_was_dropped(tmp_path: Path) -> None:
    tracker, _ = cut_tracker()
    video = VideoOut(tmp_path / "out.mp4")
    jitter = np.random.default_rng(1).uniform(-0.01, 0.01, 100)
    # A 20 fps camera whose every fourth frame is processed (the rest dropped), for 3 s; a
    # live source's times are those the frames were read at.
    times = [1000 + number / 20 + jitter[number] for number in range(1, 61, 4)]
    for k, (number, taken_at) in enumerate(zip(range(1, 61, 4), times, strict=True)):
        video(Watched(None, tracker), grey(16 * k, number, taken_at))  # type: ignore[arg-type]
    video.close()
    fps, greys = video_written(tmp_path / "out.mp4")
    assert abs(fps - 20) < 1  # the camera's rate, as read
    assert abs(len(greys) / fps - (times[-1] - times[0] + 1 / fps)) < 0.15  # real speed
    shown = [round(g / 16) for g in greys]
    assert shown == sorted(shown) and set(shown) == set(range(len(times)))  # each, in order
    # A camera away for a minute is not held for a minute.
    video = VideoOut(tmp_path / "gap.mp4")
    for number, taken_at in ((1, 0.0), (2, 0.1), (3, 60.0), (4, 60.1)):
        video(Watched(None, tracker), grey(100, number, taken_at))  # type: ignore[arg-type]
    video.close()
    fps, greys = video_written(tmp_path / "gap.mp4")
    assert fps == 10 and len(greys) == 3 + round(VideoOut.MAX_HOLD_S * 10)


def test_a_stream_goes_on_through_a_full_disk_and_its_events_are_stored_once_there_is_room(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = EventLog(tmp_path / "events.sqlite3", targets=("hook",))
    told: list[str] = []
    emit = HeldEvents(log, lambda found: told.extend(e.id for e in found))
    emit([event(1)])
    pages = log._db.execute("PRAGMA page_count")[0][0]
    log._db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
    crop = np.random.default_rng(0).bytes(300_000)  # more than the free pages hold
    for n in (2, 3):
        emit([dataclasses.replace(event(n), crop=crop)])  # no error reaches the frame loop
    assert told == ["id1"] and [e.id for e in emit.held] == ["id2", "id3"]
    assert "events not stored" in caplog.text and "disk is full" in caplog.text
    log._db.execute(f"PRAGMA max_page_count = {pages + 10_000}")  # room again
    emit([])  # a frame without events: held ones are tried again every RETRY_S, not now
    assert len(emit.held) == 2
    emit.last_try()  # stored, in order, then told
    assert told == ["id1", "id2", "id3"] and not emit.held
    assert [e["id"] for _, e in log.pending("hook")] == ["id1", "id2", "id3"]
    assert "3 events were never stored" not in caplog.text


def test_held_events_are_bounded_and_the_dropped_ones_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = EventLog(tmp_path / "events.sqlite3")
    emit = HeldEvents(log, lambda found: None)
    log._db.execute("PRAGMA query_only = ON")  # every write fails, as on a read-only disk
    emit.MAX_HELD = 3
    for n in range(5):
        emit([event(n)])
    assert [e.id for e in emit.held] == ["id2", "id3", "id4"] and emit.dropped == 2
    emit.last_try()
    assert "5 events were never stored" in caplog.text


def test_the_streams_of_one_engine_take_turns_on_its_embedder_and_other_engines_do_not_wait() -> (
    None
):
    # OpenCV's networks are not thread-safe: the embedding threads of two streams watched with
    # one engine ('facelens watch a b') hold the engine's lock; another engine has its own.
    models = OneFaceInView()
    engine = Engine(Settings(model="sface"), profile_for("sface"), models, models, models)  # type: ignore[arg-type]
    other = Engine(Settings(model="sface"), profile_for("sface"), models, models, models)  # type: ignore[arg-type]
    index = GalleryIndex.build([("ann", models.faces[1][None, :])], 3, "cosine")
    first, second, third = (
        StreamTracker(name, e, lambda: index, fps=10)
        for name, e in (("a", engine), ("b", engine), ("c", other))
    )
    assert first._embedding is second._embedding is engine.embedding_lock
    assert third._embedding is other.embedding_lock is not engine.embedding_lock
