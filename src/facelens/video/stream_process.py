"""One stream's process (spawned by :class:`~facelens.video.streams.StreamManager`): it reads
its source, tracks and names faces, stores events, and writes its status (JSON) and newest
annotated frame (JPEG) into ``<data>/streams/<id>/``, each replaced atomically. It holds
``<data>/streams/<id>/lock`` while it runs, so one stream never runs twice on one data
directory."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from facelens.events.delivery import target_names
from facelens.events.log import EventLog
from facelens.gallery import shared_url
from facelens.settings import Settings
from facelens.system.lifetime import die_with_parent
from facelens.system.redact import guard_stderr
from facelens.video.policy import SourcePolicy
from facelens.video.source import Frame, FrameSource, mask

log = logging.getLogger(__name__)

STATUS_EVERY_S = 1.0
SNAPSHOT_EVERY_S = 0.2  # at most 5 annotated frames a second are written
RUNNING_ELSEWHERE = 3  # the exit code of a stream process whose stream runs already


@dataclass(frozen=True, slots=True)
class StreamConfig:
    id: str
    source: str  # as given, credentials included: never shown (see ``shown``)
    fps: float | None
    created_at: str

    @property
    def shown(self) -> str:
        return mask(self.source)


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".tmp")
    partial.write_bytes(data)
    os.replace(partial, path)


def hold_lock(folder: Path) -> IO[str] | None:
    """``folder/lock`` locked for this process while it lives (the kernel lets go when it
    ends, however it ends), with its pid in it; None if another process holds it."""
    handle = (folder / "lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def run_stream(config: StreamConfig, settings: Settings) -> None:
    """A stream process's whole life (the spawned target): until the server stops it."""
    die_with_parent()  # first: a server killed while this process starts takes it along
    guard_stderr()  # FFmpeg prints the URLs it fails on, secrets and all
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the server decides
    folder = settings.data_dir / "streams" / config.id
    folder.mkdir(parents=True, exist_ok=True)
    lock = hold_lock(folder)
    if lock is None:
        holder = (folder / "lock").read_text().strip() or "?"
        log.error(
            "stream %s: another process (pid %s) runs it already; this one ends", config.id, holder
        )
        raise SystemExit(RUNNING_ELSEWHERE)

    import cv2

    from facelens.gallery import open_gallery
    from facelens.jobs.enrol import engine_for
    from facelens.video.loop import Watched, annotated
    from facelens.video.session import Session

    source = FrameSource(config.source, SourcePolicy.of(settings))  # checked again here
    gallery = open_gallery(settings, follow=True)  # runs for months: follows other servers
    engine = engine_for(gallery, settings)
    # Stored here with a pending delivery per target; the server's couriers deliver them.
    events = EventLog(
        settings.events_path, targets=server_targets(settings), url=shared_url(settings)
    )
    events.forget_before(days=settings.events_retention_days)
    session = Session(engine, gallery.index, events, fps=config.fps, crops=settings.event_crops)
    watched = session.watch(config.id, source)
    last = {"status": 0.0, "snapshot": 0.0}

    def snapshot(watched: Watched, frame: Frame) -> None:
        now = time.monotonic()
        if now - last["snapshot"] >= SNAPSHOT_EVERY_S:
            last["snapshot"] = now
            drawn = cv2.cvtColor(annotated(frame, watched.tracker), cv2.COLOR_RGB2BGR)
            ok, jpeg = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 80])
            if ok:
                _write_atomically(folder / "snapshot.jpg", jpeg.tobytes())

    def status(force: bool = False) -> None:
        now = time.monotonic()
        if force or now - last["status"] >= STATUS_EVERY_S:
            last["status"] = now
            report = {
                **watched.status(),
                "updated_at": datetime.now(UTC).isoformat(),
                "pid": os.getpid(),
            }
            _write_atomically(folder / "status.json", json.dumps(report).encode())

    try:
        session.run(lambda _: None, stop=stop, on_frame=snapshot, on_tick=status)
        status(force=True)  # the last word: ended, with the final counts
    finally:
        events.close()
        gallery.close()
        lock.close()


def server_targets(settings: Settings) -> tuple[str, ...]:
    """The outbox names of the server's delivery targets (``FACELENS_EVENTS_*``)."""
    return target_names(*_target_urls(settings))


def _target_urls(settings: Settings) -> tuple[str | None, str | None]:
    webhook, mqtt = settings.events_webhook, settings.events_mqtt
    return (
        None if webhook is None else webhook.get_secret_value(),
        None if mqtt is None else mqtt.get_secret_value(),
    )
