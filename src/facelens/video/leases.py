"""Streams shared by several servers (``FACELENS_DATABASE_URL``): each stream is run by one
server at a time, the one holding its lease in the database (owner, expiry on the database's
clock, renewed every RENEW_S seconds). A server that dies or is cut off stops renewing; its
leases run out after LEASE_S and another server takes its streams. Each server takes streams
until it holds its share (the streams over the live servers, each seen within LEASE_S), and
hands back what it holds beyond, so streams spread evenly as servers come and go.

A server that cannot reach the database keeps its streams running (their events wait in the
stream processes until the database is back: none is lost when the database itself is down,
and then no other server can take them either). If it was cut off alone and another server
took its streams meanwhile, it stops them at its first round once it reaches the database
again: until then, both run them."""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from facelens.errors import StorageError

if TYPE_CHECKING:
    from facelens.storage.postgres import PostgresDatabase

log = logging.getLogger(__name__)

LEASE_S = 10.0  # a lease not renewed for this long is anyone's (another takes it in <= 13 s)
RENEW_S = 3.0  # how often a server renews its leases and looks for streams to take
GONE_S = 60.0  # a server not seen for this long is forgotten
NOW = "EXTRACT(EPOCH FROM clock_timestamp())"  # the database's clock: no skew between servers

TABLES = """
CREATE TABLE IF NOT EXISTS streams (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    fps REAL,
    created_at TEXT NOT NULL,
    owner TEXT,
    lease_until DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS stream_servers (
    id TEXT PRIMARY KEY,
    seen_until DOUBLE PRECISION NOT NULL
)
"""


class Leases:
    """This server's leases on the shared stream table. ``run_only(ids)`` is told, after each
    round, the streams this server holds (it starts those not running and stops the others);
    ``limit``: the most streams this server runs."""

    def __init__(
        self, db: PostgresDatabase, run_only: Callable[[set[str]], None], limit: int
    ) -> None:
        self.db, self.run_only, self.limit = db, run_only, limit
        self.me = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.held: set[str] = set()
        self._renewed = time.monotonic()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream leases", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Look at once (a stream was added, changed or deleted)."""
        self._wake.set()

    def owner(self, stream_id: str) -> str | None:
        """The server holding ``stream_id``'s lease now (None: nobody, or it ran out)."""
        rows = self.db.read(
            f"SELECT owner FROM streams WHERE id = ? AND lease_until > {NOW}", (stream_id,)
        )
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._round()
                self._renewed = time.monotonic()
            except StorageError as exc:  # its streams go on; checked again when it is back
                lapsed = time.monotonic() - self._renewed
                log.warning("stream leases not renewed for %.0f s: %s", lapsed, exc.message)
            except Exception:  # never let the thread die: the streams would stop moving
                log.exception("stream leases: a round failed")
            self._wake.wait(RENEW_S)
            self._wake.clear()

    def _round(self) -> None:
        with self.db.transaction(lock=None) as db:
            db.execute(
                f"INSERT INTO stream_servers VALUES (?, {NOW} + ?) "
                "ON CONFLICT (id) DO UPDATE SET seen_until = excluded.seen_until",
                (self.me, LEASE_S),
            )
            db.execute(f"DELETE FROM stream_servers WHERE seen_until < {NOW} - ?", (GONE_S,))
            held = {
                str(row[0])
                for row in db.execute(
                    f"UPDATE streams SET lease_until = {NOW} + ? WHERE owner = ? RETURNING id",
                    (LEASE_S, self.me),
                )
            }
            live = int(
                db.execute(
                    f"SELECT COUNT(*) FROM stream_servers WHERE seen_until > {NOW}"
                ).fetchone()[0]
            )
            total = int(db.execute("SELECT COUNT(*) FROM streams").fetchone()[0])
        share = min(self.limit, math.ceil(total / max(live, 1)))
        while len(held) < share:
            taken = self.db.execute(
                f"UPDATE streams SET owner = ?, lease_until = {NOW} + ? WHERE id = ("
                f"SELECT id FROM streams WHERE owner IS NULL OR lease_until < {NOW} "
                "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id",
                (self.me, LEASE_S),
            )
            if not taken:
                break
            held.add(str(taken[0][0]))
        for extra in sorted(held)[share:]:  # beyond this server's share: another takes it
            self._hand_back(extra)
            held.discard(extra)
        self.held = held
        self.run_only(held)

    def _hand_back(self, stream_id: str) -> None:
        self.db.execute(
            "UPDATE streams SET owner = NULL, lease_until = 0 WHERE id = ? AND owner = ?",
            (stream_id, self.me),
        )

    def servers(self) -> int:
        """How many servers share the streams now (this one counted)."""
        rows = self.db.read(f"SELECT COUNT(*) FROM stream_servers WHERE seen_until > {NOW}")
        return max(1, int(rows[0][0]))

    def stop(self) -> None:
        """Stop renewing and taking (the streams held are stopped by the caller)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=RENEW_S + 10)

    def release(self) -> None:
        """Hand every lease back (another server takes them at once) and leave."""
        try:
            with self.db.transaction(lock=None) as db:
                db.execute(
                    "UPDATE streams SET owner = NULL, lease_until = 0 WHERE owner = ?", (self.me,)
                )
                db.execute("DELETE FROM stream_servers WHERE id = ?", (self.me,))
        except StorageError as exc:  # they run out on their own
            log.warning("stream leases not handed back: %s", exc.message)
