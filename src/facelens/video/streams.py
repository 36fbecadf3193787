"""Streams the server runs: each in a process of its own (spawned, apart from the request
workers, so a busy camera does not starve ``/v1/recognize``), with its configuration kept in the
data directory's ``events.sqlite3`` so streams come back after a restart.

A stream process reads its source, tracks and names faces, stores events, and writes its status
(JSON) and newest annotated frame (JPEG) into ``<data>/streams/<id>/``, each replaced atomically,
for the server to answer ``GET /v1/streams/{id}``, ``snapshot.jpg`` and ``mjpeg`` from.
A process that dies is started again. A stream process dies with the server, and holds
``<data>/streams/<id>/lock`` while it runs, so one stream never runs twice.

Sources are checked against the settings (:mod:`facelens.video.policy`) when a stream is
added or changed and when the server starts; at most ``FACELENS_MAX_STREAMS`` are kept.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from facelens.errors import Conflict, InvalidValue, NotFound, TooManyStreams
from facelens.events.delivery import Deliveries, target_names
from facelens.events.log import EventLog
from facelens.gallery import shared_url
from facelens.settings import Settings
from facelens.storage.sqlite import Table
from facelens.system.lifetime import Child, die_with_parent, stop_children
from facelens.system.redact import guard_stderr
from facelens.video.policy import SourcePolicy
from facelens.video.source import Frame, FrameSource, is_live, mask

log = logging.getLogger(__name__)

STATUS_EVERY_S = 1.0
SNAPSHOT_EVERY_S = 0.2  # at most 5 annotated frames a second are written
DRAIN_S = 5.0  # at the server's stop, how long pending events may still take to go
STOP_GRACE_S = 15.0  # a stream's process asked to stop stores its last events meanwhile
_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
RUNNING_ELSEWHERE = 3  # the exit code of a stream process whose stream runs already
# What one stream process holds in memory: VmRSS measured with the sface model on a 640x360
# MJPEG camera at 15 fps (312 MB; the server itself ~150 MB), as the README says.
STREAM_RSS_MB = 310

_TABLE = """
CREATE TABLE IF NOT EXISTS streams (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    fps REAL,
    created_at TEXT NOT NULL
)
"""


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
    gallery = open_gallery(settings)
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


class StreamManager(Table):
    """The server's streams: their configuration (persisted) and their processes."""

    def __init__(self, settings: Settings, target: Any = run_stream) -> None:
        super().__init__(settings.events_path, _TABLE, "Event log")
        self.settings = settings
        self.policy = SourcePolicy.of(settings)
        self._target = target
        self._processes: dict[str, Child] = {}
        # One change at a time (create, update, delete, start, stop, supervise): two requests
        # changing one stream at once would each start a process, and one would be lost track
        # of, running on after its stream's deletion and past FACELENS_MAX_STREAMS.
        self._changing = threading.RLock()
        # Stream processes are started from this one thread, alive as long as the manager: a
        # process's death signal (PR_SET_PDEATHSIG) comes when the *thread* that started it
        # ends, and a request's thread may end whenever its pool finds it idle.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-spawner")
        # The streams' events go to the server's targets from here, by couriers reading the
        # outbox the stream processes fill (one courier per target, however many streams).
        opened: list[Callable[[], object]] = [super().close]  # closed again if a step fails
        try:
            self.deliveries = Deliveries(
                *_target_urls(settings),
                attempts=settings.events_delivery_attempts,
                timeout_s=settings.events_delivery_timeout_s,
            )
            if self.deliveries.publisher is not None:
                opened.append(self.deliveries.publisher.close)
            self.outbox = EventLog(
                self.path, targets=self.deliveries.names, url=shared_url(settings)
            )
            opened.append(self.outbox.close)
            self.outbox.prune_every(days=settings.events_retention_days)  # hourly, for months
            self.deliveries.start(self.outbox)
        except BaseException:
            for close in reversed(opened):
                with contextlib.suppress(Exception):  # the first error is the one to tell
                    close()
            raise

    # -- configuration ------------------------------------------------------------------

    def _rows(self, where: str = "", args: tuple[object, ...] = ()) -> list[StreamConfig]:
        rows = self._read(
            "SELECT id, source, fps, created_at FROM streams" + where + " ORDER BY id", args
        )
        return [
            StreamConfig(str(i), str(s), None if f is None else float(str(f)), str(c))
            for i, s, f, c in rows
        ]

    def list(self) -> list[StreamConfig]:
        return self._rows()

    def get(self, stream_id: str) -> StreamConfig:
        found = self._rows(" WHERE id = ?", (stream_id,))
        if not found:
            raise NotFound(f"No stream {stream_id!r}; GET /v1/streams lists them.")
        return found[0]

    def create(self, stream_id: str, source: str, fps: float | None) -> StreamConfig:
        if not _ID.fullmatch(stream_id):
            raise InvalidValue(
                f"{stream_id!r} cannot be a stream id: use 1-64 lower-case letters, digits, "
                "'-' or '_', starting with a letter or digit."
            )
        _check_source(source, self.policy, resolve=True)
        config = StreamConfig(stream_id, source, fps, datetime.now(UTC).isoformat())
        with self._changing:
            if self.get_or_none(stream_id) is None:
                self._check_room(len(self.list()))
            added = self._run(
                "INSERT INTO streams VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id",
                (config.id, config.source, config.fps, config.created_at),
            )
            if not added:
                raise Conflict(f"A stream {stream_id!r} exists already.")
            self._start(config)
        return config

    def _check_room(self, kept: int) -> None:
        limit = self.settings.max_streams
        if kept >= limit:
            raise TooManyStreams(
                f"This server keeps at most {limit} streams (FACELENS_MAX_STREAMS), each a "
                f"process of about {STREAM_RSS_MB} MB: delete one first, or raise the limit."
            )

    def get_or_none(self, stream_id: str) -> StreamConfig | None:
        found = self._rows(" WHERE id = ?", (stream_id,))
        return found[0] if found else None

    def update(self, stream_id: str, source: str | None, fps: float | None) -> StreamConfig:
        if source is not None:  # a new source's host is looked up before waiting for others
            _check_source(source, self.policy, resolve=True)
        with self._changing:
            old = self.get(stream_id)
            new = StreamConfig(
                old.id, source or old.source, fps if fps is not None else old.fps, old.created_at
            )
            # An old source the settings refuse now is refused too.
            _check_source(new.source, self.policy, resolve=False)
            self._run(
                "UPDATE streams SET source = ?, fps = ? WHERE id = ?", (new.source, new.fps, new.id)
            )
            self._stop(stream_id)
            self._start(new)
        return new

    def delete(self, stream_id: str) -> None:
        with self._changing:
            self.get(stream_id)
            self._run("DELETE FROM streams WHERE id = ?", (stream_id,))
            self._stop(stream_id)

    # -- processes ----------------------------------------------------------------------

    def folder(self, stream_id: str) -> Path:
        return self.settings.data_dir / "streams" / stream_id

    def status(self, stream_id: str) -> dict[str, Any]:
        """What the stream's process last said, and whether it runs."""
        self.supervise()
        process = self._processes.get(stream_id)
        said = self._said(stream_id)
        if process is None:
            if said.get("state") not in ("ended", "refused"):
                said["state"] = "stopped"
        elif not process.alive:
            said["state"] = "ended" if process.exitcode == 0 else "restarting"
            if process.exitcode == RUNNING_ELSEWHERE:
                said["detail"] = "another process runs this stream still; retrying"
        return said

    def _said(self, stream_id: str) -> dict[str, Any]:
        """What the stream's process last wrote of itself."""
        try:
            said: dict[str, Any] = json.loads((self.folder(stream_id) / "status.json").read_bytes())
        except (OSError, ValueError):
            said = {"state": "starting", "detail": ""}
        return said

    def _start(self, config: StreamConfig) -> None:
        """Start the stream's process (with ``_changing`` held)."""
        folder = self.folder(config.id)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in ("status.json", "snapshot.jpg"):
            (folder / stale).unlink(missing_ok=True)
        process = Child.spawn(
            self._target,
            (config, self.settings),
            f"stream {config.id}",
            starter=lambda start: self._spawner.submit(start).result(),
        )
        self._processes[config.id] = process
        log.info("stream %s: started for %s (pid %s)", config.id, config.shown, process.pid)

    def _stop(self, stream_id: str) -> None:
        """Stop the stream's process (with ``_changing`` held)."""
        process = self._processes.pop(stream_id, None)
        if process is not None:
            stop_children([process], STOP_GRACE_S)  # SIGTERM: tracks leave, events are stored

    def start_all(self) -> None:
        """Start the configured streams, but for video files watched to their end already
        (a restart would tell their events again), and those the settings refuse now (a
        source not allowed, or more streams than allowed): their status says why."""
        with self._changing:
            self._start_all()

    def _start_all(self) -> None:
        started = 0
        for config in self.list():
            if not is_live(config.source) and self._said(config.id).get("state") == "ended":
                log.info("stream %s: its video was watched to the end already", config.id)
                continue
            try:
                _check_source(config.source, self.policy, resolve=False)  # DNS may be down
                self._check_room(started)
            except (InvalidValue, TooManyStreams) as exc:
                self._refuse(config, f"not started: {exc.message}")
                continue
            self._start(config)
            started += 1

    def _refuse(self, config: StreamConfig, why: str) -> None:
        log.warning("stream %s: %s", config.id, why)
        folder = self.folder(config.id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "snapshot.jpg").unlink(missing_ok=True)
        report = {"state": "refused", "detail": why, "updated_at": datetime.now(UTC).isoformat()}
        _write_atomically(folder / "status.json", json.dumps(report).encode())

    def supervise(self) -> None:
        """Start again the stream processes that died (a crash, or killed by the kernel). Not
        while a change is under way (it starts and stops processes itself): a status asked for
        meanwhile does not wait for it."""
        if not self._changing.acquire(blocking=False):
            return
        try:
            for config in self.list():
                process = self._processes.get(config.id)
                if process is None or process.alive or process.exitcode in (0, None):
                    continue
                log.warning(
                    "stream %s: its process died (exit %s); starting it again",
                    config.id,
                    process.exitcode,
                )
                self._start(config)
        finally:
            self._changing.release()

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Every stream's status, by id (what the metrics are made of)."""
        return {config.id: self.status(config.id) for config in self.list()}

    def close(self) -> None:
        with self._changing:  # every stream at once: each has STOP_GRACE_S in all
            stop_children(self._processes.values(), STOP_GRACE_S)
            self._processes.clear()
            self._spawner.shutdown()
        for shown in self.deliveries.close(drain_s=DRAIN_S):
            log.warning("%s: events not delivered yet go when the server is back", shown)
        self.outbox.close()
        super().close()


def _check_source(source: str, policy: SourcePolicy, *, resolve: bool) -> None:
    """Refuse a source the settings do not allow (:class:`SourceNotAllowed`), or a file that
    is not there (said only of a path the settings allow); ``resolve``: look a URL's host up
    too, when networks are set."""
    if not source.strip():
        raise InvalidValue("The source is empty: give a stream URL, a camera or a video file.")
    try:
        FrameSource(source, policy)  # not started: only checked
    except FileNotFoundError:
        raise InvalidValue(
            f"{mask(source)}: no such file on the server (give a URL, a camera or a file)."
        ) from None
    if resolve:
        policy.check(source, mask(source))
