"""Events are stored before they are delivered: one SQLite file in the data directory
(``events.sqlite3``, WAL), with an outbox per delivery target (a webhook, an MQTT broker).

A target is told each event at least once, in order; a failing target keeps its events
pending (retried with back-off) without holding recognition up. Old events go after the
retention period.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from facelens.gallery.db import connect
from facelens.video.tracks import Event

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    time TEXT NOT NULL,
    stream TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE TABLE IF NOT EXISTS deliveries (
    target TEXT NOT NULL,
    seq INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (target, seq)
);
"""


def _utc_text(moment: datetime) -> str:
    """A time as stored (ISO 8601 in UTC), so that text order is time order."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


class EventLog:
    """The event store of one data directory; safe to share across threads."""

    def __init__(self, path: Path, *, targets: Iterable[str] = ()) -> None:
        self.path = path
        self.targets = tuple(targets)
        self._lock = threading.Lock()
        self._db = connect(path)  # WAL, foreign keys, waits for other writers (the gallery's)
        self._db.executescript(_SCHEMA)
        self.added = threading.Condition()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def add(self, events: Iterable[Event]) -> None:
        """Store events, each pending for every target, in one transaction."""
        events = list(events)
        if not events:
            return
        with self._transaction() as db:
            for event in events:
                seq = db.execute(
                    "INSERT INTO events (id, time, stream, kind, name, body) VALUES "
                    "(?, ?, ?, ?, ?, ?) RETURNING seq",
                    (
                        event.id,
                        event.time.isoformat(),
                        event.stream,
                        event.kind,
                        event.name,
                        json.dumps(event.as_dict()),
                    ),
                ).fetchone()[0]
                db.executemany(
                    "INSERT INTO deliveries (target, seq) VALUES (?, ?)",
                    [(target, seq) for target in self.targets],
                )
        with self.added:
            self.added.notify_all()

    def pending(self, target: str, limit: int = 100) -> list[tuple[int, dict[str, Any]]]:
        """Undelivered events for ``target``, oldest first: (seq, event)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT e.seq, e.body FROM deliveries d JOIN events e ON e.seq = d.seq "
                "WHERE d.target = ? ORDER BY e.seq LIMIT ?",
                (target, limit),
            ).fetchall()
        return [(int(seq), json.loads(body)) for seq, body in rows]

    def delivered(self, target: str, seq: int) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM deliveries WHERE target = ? AND seq = ?", (target, seq))

    def events(
        self,
        *,
        stream: str | None = None,
        name: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int = 0,
        limit: int = 100,
        newest: bool = False,
    ) -> list[tuple[int, dict[str, Any]]]:
        """Stored events after sequence number ``after``, oldest first, filtered (``since``
        inclusive, ``until`` exclusive); with ``newest``, the last ``limit`` of them."""
        where: list[str] = ["seq > ?"]
        args: list[object] = [after]
        for column, value in (("stream", stream), ("name", name), ("kind", kind)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        for clause, moment in (("time >= ?", since), ("time < ?", until)):
            if moment is not None:
                where.append(clause)
                args.append(_utc_text(moment))
        order = "DESC" if newest else "ASC"
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, body FROM events WHERE "
                + " AND ".join(where)
                + f" ORDER BY seq {order} LIMIT ?",
                (*args, limit),
            ).fetchall()
        found = [(int(seq), json.loads(body)) for seq, body in rows]
        return found[::-1] if newest else found

    def last_seq(self) -> int:
        """The newest event's sequence number (0 if none): where "from now on" starts."""
        with self._lock:
            row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        return int(row[0])

    def forget_before(self, days: float) -> int:
        """Delete events older than ``days`` (delivered or not); how many went."""
        cutoff = (datetime.now(UTC) - timedelta(days=days)).isoformat()
        with self._transaction() as db:
            return db.execute("DELETE FROM events WHERE time < ?", (cutoff,)).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
