"""Watching streams: each source's newest frame goes through its tracker, in turn, on one
engine; events are stored in the event log first, then handed to the caller (printed) and to
the delivery threads. Used by ``facelens watch``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import cv2
import numpy as np

from facelens.annotate import KNOWN_COLOUR, UNKNOWN_COLOUR, Label, draw_labels
from facelens.matching import UNKNOWN
from facelens.video.eventlog import EventLog
from facelens.video.source import Frame, FrameSource, mask
from facelens.video.tracks import Event, StreamTracker


def stream_name(source: str, taken: set[str]) -> str:
    """A short name for a source (file stem, camera index, host and path), unique in ``taken``."""
    if source.isdigit():
        base = f"camera{source}"
    elif "://" in source:
        parts = urlsplit(mask(source))
        base = (parts.hostname or "stream") + (
            f"-{PurePosixPath(parts.path).stem}" if PurePosixPath(parts.path).stem else ""
        )
    else:
        base = Path(source).stem or "stream"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


@dataclass(slots=True)
class StreamReport:
    name: str
    source: str
    frames_read: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    reconnects: int = 0
    embeddings: int = 0
    tracks: int = 0
    people: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Watched:
    source: FrameSource
    tracker: StreamTracker
    last_processed: float = -1e9
    finished: bool = False


def annotated(frame: Frame, tracker: StreamTracker) -> np.ndarray:
    """The frame with the tracks seen on it boxed and named."""
    labels = [
        Label(t.box, t.name or "…", UNKNOWN_COLOUR if t.name in (None, UNKNOWN) else KNOWN_COLOUR)
        for t in tracker.tracks.values()
        if t.last_seen == frame.taken_at
    ]
    return draw_labels(frame.pixels.copy(), labels)


def watch(
    streams: Sequence[Watched],
    events: EventLog,
    on_events: Callable[[list[Event]], None],
    *,
    fps: float | None,
    stop: threading.Event,
    annotate: Path | None = None,
) -> list[StreamReport]:
    """Process frames until every source has ended or ``stop`` is set; then every track
    still there leaves. Returns what each stream did."""
    writer: cv2.VideoWriter | None = None

    def emit(found: list[Event]) -> None:
        if found:
            events.add(found)  # durable first
            on_events(found)

    try:
        while not stop.is_set():
            live = [w for w in streams if not w.finished]
            if not live:
                break
            wait = 0.5 / len(live)
            for watched in live:
                frame = watched.source.latest(timeout=wait)
                if frame is None:
                    if watched.source.ended:
                        watched.finished = True
                        emit(watched.tracker.finish())
                    elif watched.source.live:
                        emit(watched.tracker.expire(time.monotonic()))
                    continue
                if fps and frame.taken_at - watched.last_processed < 1.0 / fps:
                    continue  # over the asked rate: this frame is skipped
                watched.last_processed = frame.taken_at
                emit(watched.tracker.process(frame))
                if annotate is not None and watched is streams[0]:
                    drawn = cv2.cvtColor(annotated(frame, watched.tracker), cv2.COLOR_RGB2BGR)
                    if writer is None:
                        height, width = drawn.shape[:2]
                        rate = fps or 10.0
                        writer = cv2.VideoWriter(
                            str(annotate), cv2.VideoWriter.fourcc(*"mp4v"), rate, (width, height)
                        )
                    writer.write(drawn)
    finally:
        for watched in streams:
            if not watched.finished:
                watched.finished = True
                emit(watched.tracker.finish())
            watched.source.stop()
        if writer is not None:
            writer.release()
    return [_report(w) for w in streams]


def _report(watched: Watched) -> StreamReport:
    status = watched.source.status()
    counts = watched.tracker.counts
    return StreamReport(
        watched.tracker.stream,
        watched.source.shown,
        status.frames_read,
        counts.frames,
        status.frames_dropped,
        status.reconnects,
        counts.embeddings,
        counts.tracks,
        set(watched.tracker.names_seen),
    )
