"""Events are stored before they are delivered: one SQLite file in the data directory
(``events.sqlite3``, WAL, ``secure_delete``), with an outbox per delivery target (a webhook, an
MQTT broker).

A target is told each event at least once, in order; a failing target keeps its events
pending (retried with back-off) without holding recognition up. An event a target was reached
with but did not take after the set number of attempts is given up on: it stays in the outbox,
``dead``, the events after it go on, and :meth:`EventLog.retry` puts it back. Old events go
after the retention period (checked hourly). Live listeners are fed by one tail per process
(``tail.py``), which reads each new row once, by its sequence number, for all of them.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facelens.errors import StorageError
from facelens.storage.sqlite import Database, now_text

if TYPE_CHECKING:
    from facelens.events.event import Event
    from facelens.events.tail import Tail

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0  # retention is applied this often by a long-running watch or server

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
CREATE INDEX IF NOT EXISTS events_stream ON events(stream, seq);
CREATE INDEX IF NOT EXISTS events_name ON events(name, seq);
CREATE INDEX IF NOT EXISTS events_kind ON events(kind, seq);
CREATE TABLE IF NOT EXISTS deliveries (
    target TEXT NOT NULL,
    seq INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (target, seq)
);
CREATE INDEX IF NOT EXISTS deliveries_seq ON deliveries(seq);
"""
# Columns the outbox gained after its first release (added to older files when opened).
_DELIVERY_COLUMNS = {
    "state": "TEXT NOT NULL DEFAULT 'pending'",  # pending, or dead: given up on
    "last_error": "TEXT",  # why the last attempt failed (URLs masked)
    "tried_at": "TEXT",  # when
}
_DELIVERY_INDEX = "CREATE INDEX IF NOT EXISTS deliveries_state ON deliveries(target, state, seq)"


def _aware(moment: datetime) -> datetime:
    """A time with its zone: UTC when it has none."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _utc_text(moment: datetime) -> str:
    """A time as stored (ISO 8601 in UTC), so that text order is time order."""
    return _aware(moment).astimezone(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class Filter:
    """Which events: by stream, person (``name``), kind and time (``since`` inclusive,
    ``until`` exclusive); None matches any. The same test in SQL and on a live event."""

    stream: str | None = None
    name: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> tuple[list[str], list[object]]:
        clauses: list[str] = []
        args: list[object] = []
        for column, value in (("stream", self.stream), ("name", self.name), ("kind", self.kind)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        for clause, moment in (("time >= ?", self.since), ("time < ?", self.until)):
            if moment is not None:
                clauses.append(clause)
                args.append(_utc_text(moment))
        return clauses, args

    def matches(self, event: dict[str, Any]) -> bool:
        for key, value in (("stream", self.stream), ("name", self.name), ("kind", self.kind)):
            if value is not None and event.get(key) != value:
                return False
        if self.since is None and self.until is None:
            return True
        when = _aware(datetime.fromisoformat(str(event["time"])))
        if self.since is not None and when < _aware(self.since):
            return False
        return self.until is None or when < _aware(self.until)


@dataclass(frozen=True, slots=True)
class Outbox:
    """One target's outbox: events still to go, events given up on, and why the one it is
    trying now failed last (None: it has not failed)."""

    target: str
    pending: int
    dead: int
    attempts: int  # failed attempts of the event it is trying now
    last_error: str | None


class EventLog:
    """The event store of one data directory; safe to share across threads."""

    def __init__(self, path: Path, *, targets: Iterable[str] = ()) -> None:
        self.path = path
        self.targets = tuple(targets)
        self._lock = threading.Lock()  # the tail, made once
        # Deleted events and crops are overwritten (secure_delete), not left in free pages.
        self._db = Database.open(path, "Event log")
        try:
            self._db.script(_SCHEMA)
            with self._db.transaction() as db:
                have = {str(row[1]) for row in db.execute("PRAGMA table_info(deliveries)")}
                for column, declared in _DELIVERY_COLUMNS.items():
                    if column not in have:
                        db.execute(f"ALTER TABLE deliveries ADD COLUMN {column} {declared}")
                db.execute(_DELIVERY_INDEX)
        except BaseException:
            self._db.close()
            raise
        self.added = threading.Condition()
        self._tail: Tail | None = None
        self._pruning = threading.Event()  # set: stop pruning
        self._pruner: threading.Thread | None = None

    def add(self, events: Iterable[Event]) -> None:
        """Store events, each pending for every target, in one transaction."""
        events = list(events)
        if not events:
            return
        with self._db.transaction() as db:
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

    # -- the outbox ---------------------------------------------------------------------------

    def pending(self, target: str, limit: int = 100) -> list[tuple[int, dict[str, Any]]]:
        """Undelivered events for ``target`` (not those given up on), oldest first."""
        rows = self._db.read(
            "SELECT d.seq, e.body FROM deliveries d JOIN events e ON e.seq = d.seq "
            "WHERE d.target = ? AND d.state = 'pending' ORDER BY d.seq LIMIT ?",
            (target, limit),
        )
        return [(int(str(seq)), json.loads(str(body))) for seq, body in rows]

    def delivered(self, target: str, seq: int) -> None:
        with self._db.transaction() as db:
            db.execute("DELETE FROM deliveries WHERE target = ? AND seq = ?", (target, seq))

    def failed(self, target: str, seq: int, error: str, *, counted: bool = True) -> int:
        """Record a failed attempt (``counted``: one the target was reached with); the
        event's counted attempts so far."""
        with self._db.transaction() as db:
            row = db.execute(
                "UPDATE deliveries SET attempts = attempts + ?, last_error = ?, tried_at = ? "
                "WHERE target = ? AND seq = ? RETURNING attempts",
                (int(counted), error, now_text(), target, seq),
            ).fetchone()
        return 0 if row is None else int(row[0])

    def give_up(self, target: str, seq: int) -> None:
        """Mark the event dead for ``target``: kept, not tried again until :meth:`retry`."""
        with self._db.transaction() as db:
            db.execute(
                "UPDATE deliveries SET state = 'dead' WHERE target = ? AND seq = ?", (target, seq)
            )

    def retry(self, target: str | None = None) -> int:
        """Put the events given up on (of ``target``, or of every target) back in line, with
        their attempts forgotten; how many. They go first: the outbox goes oldest first."""
        sql = "UPDATE deliveries SET state = 'pending', attempts = 0 WHERE state = 'dead'"
        with self._db.transaction() as db:
            if target is None:
                count = db.execute(sql).rowcount
            else:
                count = db.execute(sql + " AND target = ?", (target,)).rowcount
        with self.added:
            self.added.notify_all()
        return int(count)

    def outboxes(self) -> list[Outbox]:
        """Every target's outbox that holds events, by target."""
        with self._db.reading() as db:
            counts = db.execute(
                "SELECT target, SUM(state = 'pending'), SUM(state = 'dead') FROM deliveries "
                "GROUP BY target ORDER BY target"
            ).fetchall()
            found = []
            for target, pending, dead in counts:
                head = db.execute(
                    "SELECT attempts, last_error FROM deliveries "
                    "WHERE target = ? AND state = 'pending' ORDER BY seq LIMIT 1",
                    (target,),
                ).fetchone()
                attempts, error = head if head is not None else (0, None)
                found.append(
                    Outbox(
                        str(target), int(pending), int(dead), int(attempts), error and str(error)
                    )
                )
        return found

    # -- reading ------------------------------------------------------------------------------

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
        chosen = Filter(stream, name, kind, since, until)
        sql, args = self.select(chosen, after=after, limit=limit, newest=newest)
        rows = self._db.read(sql, args)
        found = [(int(str(seq)), json.loads(str(body))) for seq, body in rows]
        return found[::-1] if newest else found

    @staticmethod
    def select(
        chosen: Filter, *, after: int = 0, limit: int = 100, newest: bool = False
    ) -> tuple[str, list[object]]:
        """The query of :meth:`events` (for its plan): each column filtered has an index that
        leads with it and ends with ``seq``, so a page is a range of one index, in order."""
        clauses, args = chosen.where()
        order = "DESC" if newest else "ASC"
        sql = (
            "SELECT seq, body FROM events WHERE "
            + " AND ".join(["seq > ?", *clauses])
            + f" ORDER BY seq {order} LIMIT ?"
        )
        return sql, [after, *args, limit]

    def last_seq(self) -> int:
        """The newest event's sequence number (0 if none): where "from now on" starts."""
        return int(str(self._db.read("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0]))

    @property
    def tail(self) -> Tail:
        """The one reader of new events that feeds every live listener of this process."""
        from facelens.events.tail import Tail

        with self._lock:
            if self._tail is None:
                self._tail = Tail(self.path)
            return self._tail

    # -- forgetting ---------------------------------------------------------------------------

    def forget_before(self, days: float) -> int:
        """Delete events older than ``days`` (delivered or not); how many went."""
        cutoff = (datetime.now(UTC) - timedelta(days=days)).isoformat()
        with self._db.transaction() as db:
            return int(db.execute("DELETE FROM events WHERE time < ?", (cutoff,)).rowcount)

    def prune_every(self, days: float, every_s: float = PRUNE_EVERY_S) -> None:
        """Apply the retention of ``days`` now and then every ``every_s`` s until closed (a
        watch or a server runs for months)."""
        self.forget_before(days)

        def prune() -> None:
            while not self._pruning.wait(every_s):
                try:
                    gone = self.forget_before(days)
                except (sqlite3.Error, StorageError, OSError) as exc:  # busy or full: next round
                    log.warning("events older than %s days not deleted yet: %s", days, exc)
                    continue
                if gone:
                    log.info("deleted %d events older than %s days", gone, days)

        self._pruner = threading.Thread(target=prune, name="events retention", daemon=True)
        self._pruner.start()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction on the log's file (see ``storage.sqlite.Database``)."""
        return self._db.transaction()

    def checkpoint(self) -> str | None:
        """Empty the write-ahead log into the file: None when done, else why not."""
        return self._db.checkpoint()

    def close(self) -> None:
        self._pruning.set()
        if self._pruner is not None:
            self._pruner.join(timeout=10)
        if self._tail is not None:
            self._tail.close()
        self._db.close()
