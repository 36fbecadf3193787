"""The tail of the event log: new events as they are stored, by any process, read once for
every live listener of this process (``GET /v1/events/stream``)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facelens.errors import StorageError
from facelens.storage.sqlite import Database

if TYPE_CHECKING:
    from facelens.storage.postgres import PostgresDatabase

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often the tail looks for new events
TAIL_BATCH = 500  # rows the tail reads at most per look


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored event as the tail hands it out: its sequence number, the event, and its JSON
    text as stored (sent as it is, not serialised again for each listener)."""

    seq: int
    event: dict[str, Any]
    text: str


Listener = Callable[[list[Stored]], None]


class Tail:
    """New events as they are stored, by any process: one thread reads the rows after the
    newest it has seen (a range of the primary key, never a scan), once per look however many
    listen, and hands each batch to every listener. It looks only while someone listens."""

    def __init__(self, path: Path, poll_s: float = POLL_S, url: str | None = None) -> None:
        self.path, self.poll_s = path, poll_s
        if url is None:
            self._db: Database | PostgresDatabase = Database.open(path, "Event log")
        else:  # the events of every server sharing the database
            from facelens.storage.postgres import PostgresDatabase

            self._db = PostgresDatabase.open(url, "Event log")
        self._lock = threading.Condition()  # the listeners and the head
        self._listeners: list[Listener] = []
        self._head = 0
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def listen(self, listener: Listener) -> int:
        """Hand ``listener`` every batch read from now on (on the tail's thread: it must only
        pass them on); the sequence number they start after."""
        with self._lock:
            if not self._listeners:  # not looking until now: start from the newest
                self._head = max(self._head, self._newest())
            self._listeners.append(listener)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="events tail", daemon=True)
                self._thread.start()
            self._lock.notify_all()
            return self._head

    def forget(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    @property
    def listeners(self) -> int:
        with self._lock:
            return len(self._listeners)

    def _newest(self) -> int:
        return int(str(self._db.read("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0]))

    def _read(self, after: int) -> list[Stored]:
        rows = self._db.read(
            "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, TAIL_BATCH),
        )
        return [Stored(int(str(seq)), json.loads(str(body)), str(body)) for seq, body in rows]

    def _run(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                self._lock.wait_for(lambda: bool(self._listeners) or self._closed.is_set())
                head = self._head
            if self._closed.is_set():
                return
            try:
                rows = self._read(head)  # outside the lock: listeners come and go meanwhile
            except StorageError as exc:  # busy, or the disk failed: looked at again next time
                log.warning("reading new events: %s", exc)
                rows = []
            if rows:
                with self._lock:
                    self._head = max(self._head, rows[-1].seq)
                    listeners = list(self._listeners)
                for listener in listeners:
                    listener(rows)
            if len(rows) < TAIL_BATCH:
                self._closed.wait(self.poll_s)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._db.close()
