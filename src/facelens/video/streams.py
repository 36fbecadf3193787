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
import json
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from facelens.errors import Conflict, InvalidValue, NotFound, TooManyStreams
from facelens.events.delivery import Deliveries
from facelens.events.log import EventLog
from facelens.gallery import shared_url
from facelens.settings import Settings
from facelens.storage.sqlite import Table
from facelens.system.lifetime import Child, stop_children
from facelens.video.leases import TABLES, Leases
from facelens.video.policy import SourcePolicy
from facelens.video.source import FrameSource, is_live, mask
from facelens.video.stream_process import (
    RUNNING_ELSEWHERE,
    StreamConfig,
    _target_urls,
    _write_atomically,
    run_stream,
)

log = logging.getLogger(__name__)

DRAIN_S = 5.0  # at the server's stop, how long pending events may still take to go
STOP_GRACE_S = 15.0  # a stream's process asked to stop stores its last events meanwhile
_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
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


class StreamManager(Table):
    """The server's streams: their configuration (persisted) and their processes."""

    def __init__(self, settings: Settings, target: Any = run_stream) -> None:
        url = shared_url(settings)  # shared by several servers: each stream held by a lease
        super().__init__(settings.events_path, _TABLE if url is None else TABLES, "Event log", url)
        self.settings = settings
        self.policy = SourcePolicy.of(settings)
        self._target = target
        self._processes: dict[str, Child] = {}
        self._started_with: dict[str, StreamConfig] = {}  # what each process runs
        self.leases: Leases | None = None
        if self.db.dialect == "postgresql":
            self.leases = Leases(self.db, self._run_only, settings.max_streams)  # type: ignore[arg-type]
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
                servers = 1 if self.leases is None else self.leases.servers()
                self._check_room(len(self.list()), servers)
            added = self._run(
                "INSERT INTO streams VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id",
                (config.id, config.source, config.fps, config.created_at),
            )
            if not added:
                raise Conflict(f"A stream {stream_id!r} exists already.")
            if self.leases is None:
                self._start(config)
            else:  # whichever server has room takes it (this one, if so, at once)
                self.leases.wake()
        return config

    def _check_room(self, kept: int, servers: int = 1) -> None:
        limit = self.settings.max_streams * servers
        if kept >= limit:
            raise TooManyStreams(
                f"This server keeps at most {self.settings.max_streams} streams "
                f"(FACELENS_MAX_STREAMS; {servers} servers share them), each a "
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
            if self.leases is None or stream_id in self._processes:
                self._stop(stream_id)
                self._start(new)
            else:  # its server sees the change at its next look
                self.leases.wake()
        return new

    def delete(self, stream_id: str) -> None:
        with self._changing:
            self.get(stream_id)
            self._run("DELETE FROM streams WHERE id = ?", (stream_id,))
            self._stop(stream_id)
            if self.leases is not None:
                self.leases.wake()

    # -- processes ----------------------------------------------------------------------

    def folder(self, stream_id: str) -> Path:
        return self.settings.data_dir / "streams" / stream_id

    def status(self, stream_id: str) -> dict[str, Any]:
        """What the stream's process last said, and whether it runs."""
        self.supervise()
        process = self._processes.get(stream_id)
        said = self._said(stream_id)
        if self.leases is not None:
            owner = self.leases.owner(stream_id)
            if process is None and owner is not None and owner != self.leases.me:
                return {"state": "elsewhere", "detail": "run by another server", "owner": owner}
            said["owner"] = owner
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
        self._started_with[config.id] = config
        log.info("stream %s: started for %s (pid %s)", config.id, config.shown, process.pid)

    def _stop(self, stream_id: str) -> None:
        """Stop the stream's process (with ``_changing`` held)."""
        process = self._processes.pop(stream_id, None)
        self._started_with.pop(stream_id, None)
        if process is not None:
            stop_children([process], STOP_GRACE_S)  # SIGTERM: tracks leave, events are stored

    def start_all(self) -> None:
        """Start the configured streams, but for video files watched to their end already
        (a restart would tell their events again), and those the settings refuse now (a
        source not allowed, or more streams than allowed): their status says why."""
        with self._changing:
            if self.leases is not None:  # started as this server's leases say
                self.leases.start()
                return
            self._start_all()

    def _run_only(self, held: set[str]) -> None:
        """Run the streams this server holds the leases of, and no other: start those not
        running (or dead), restart those whose configuration changed, stop the rest."""
        with self._changing:
            configs = {config.id: config for config in self.list()}
            for stream_id in list(self._processes):
                config = configs.get(stream_id)
                if stream_id not in held or self._started_with.get(stream_id) != config:
                    self._stop(stream_id)
            for stream_id in sorted(held & configs.keys()):
                process = self._processes.get(stream_id)
                if process is not None and (process.alive or process.exitcode in (0, None)):
                    continue
                config = configs[stream_id]
                if not is_live(config.source) and self._said(stream_id).get("state") == "ended":
                    continue
                try:
                    _check_source(config.source, self.policy, resolve=False)
                except InvalidValue as exc:
                    self._refuse(config, f"not started: {exc.message}")
                    continue
                self._start(config)

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
        meanwhile does not wait for it. Shared streams: the leases' round does it."""
        if self.leases is not None or not self._changing.acquire(blocking=False):
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
        if self.leases is not None:
            self.leases.stop()  # takes and starts nothing more
        with self._changing:  # every stream at once: each has STOP_GRACE_S in all
            stop_children(self._processes.values(), STOP_GRACE_S)
            self._processes.clear()
            self._spawner.shutdown()
        for shown in self.deliveries.close(drain_s=DRAIN_S):
            log.warning("%s: events not delivered yet go when the server is back", shown)
        if self.leases is not None:
            self.leases.release()  # another server takes them at once
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


__all__ = ["RUNNING_ELSEWHERE", "STREAM_RSS_MB", "StreamConfig", "StreamManager", "run_stream"]
