"""Connections of their own to the shared database (``FACELENS_DATABASE_URL``), apart from a
process's pool: :class:`Follower` keeps a process in step with changes made elsewhere
(LISTEN/NOTIFY and a change counter read every second, so a missed notification costs at most
a second); :class:`SessionLocks` holds advisory locks for as long as its connection lives (work
one server of several does at a time)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import psycopg.conninfo

from facelens.errors import StorageError
from facelens.storage.connection import Connection
from facelens.storage.postgres import (
    BACKOFF_CAP_S,
    CONNECT_TIMEOUT_S,
    LINK,
    _Connection,
    _mark,
    _said,
    shown,
)

log = logging.getLogger(__name__)


class Follower:
    """A thread that keeps ``on_change`` told of a change counter: read at once, again on each
    NOTIFY on ``channel``, and at least every ``every_s`` seconds (a notification missed while
    the connection was down, or never sent, costs at most that). While the database cannot be
    reached it tries again with capped, jittered back-off; :attr:`problem` says why meanwhile."""

    def __init__(
        self,
        url: str,
        channel: str,
        read: Callable[[Connection], int],
        on_change: Callable[[int], None],
        every_s: float = 1.0,
    ) -> None:
        self.url, self.channel, self.every_s = url, channel, every_s
        self.shown = shown(url)
        self._read, self._on_change = read, on_change
        self.problem: str | None = None
        self._said: str | None = None  # the last reason the counter could not be read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"follow-{channel}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        pause = 0.25
        while not self._stop.is_set():
            # Only a connection that cannot be made tells the database is out of reach: one
            # lost once made (killed, a proxy restarting) was taken for an outage, and every
            # write refused until the next was made, the database up.
            connected = followed = False
            try:
                address = psycopg.conninfo.make_conninfo(self.url, **LINK)
                with psycopg.connect(address, autocommit=True) as connection:
                    connected = True
                    connection.execute(f"LISTEN {self.channel}")
                    while not self._stop.is_set():
                        self._on_change(self._read(_Connection(connection)))
                        _mark(self.url, True)
                        if self.problem is not None:
                            log.warning("the database %s is reachable again", self.shown)
                        self.problem, self._said, pause, followed = None, None, 0.25, True
                        for _ in connection.notifies(timeout=self.every_s, stop_after=1):
                            pass  # woken: read the counter again
            except psycopg.Error as exc:
                if not connected:
                    self._unreachable(exc)
                elif followed and isinstance(exc, psycopg.OperationalError):
                    log.info("following %s: %s; connecting again", self.channel, _said(exc))
                    pause = 0.02  # at once: the next connection tells
                else:
                    self._complain(_said(exc))
            except StorageError as exc:  # the counter cannot be read (not a number, say)
                self._complain(exc.message)
            except Exception:  # never let the thread die: the replica would drift for good
                log.exception("following %s failed; trying again", self.channel)
            pause = min(BACKOFF_CAP_S, pause * 2)
            self._stop.wait(pause * random.uniform(0.5, 1.0))

    def _complain(self, why: str) -> None:
        """Why the counter cannot be followed now, said once (tried again meanwhile)."""
        if why != self._said:
            log.warning("following %s: %s; trying again", self.channel, why)
        self._said = why

    def _unreachable(self, exc: psycopg.Error) -> None:
        _mark(self.url, False)
        if self.problem is None:
            log.warning(
                "the database %s cannot be reached (%s): recognition goes on from "
                "memory, changes wait; trying again",
                self.shown,
                _said(exc),
            )
        self.problem = f"The database {self.shown} cannot be reached: " + _said(exc)

    def close(self, wake: Callable[[], object] | None = None) -> None:
        """Stop following; ``wake`` (a NOTIFY on the channel) spares the wait for the next
        read of the counter."""
        self._stop.set()
        if wake is not None and self._thread.is_alive():
            with contextlib.suppress(StorageError):
                wake()
        self._thread.join(timeout=self.every_s + CONNECT_TIMEOUT_S + 1)


def lock_key(name: str) -> int:
    """A stable advisory lock key for ``name`` (a signed 64-bit number)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class SessionLocks:
    """Advisory locks this process holds for as long as its own connection to the database
    lives: a process that dies or loses the network loses them, and another takes them. For
    work that one server of several must do at a time (delivering one target's events)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: psycopg.Connection[Any] | None = None
        self._held: set[int] = set()
        self._lock = threading.Lock()

    def hold(self, key: int) -> bool:
        """Whether this process holds ``key`` now (taken if free; checked alive if held)."""
        with self._lock:
            try:
                if self._connection is None or self._connection.closed:
                    self._held.clear()
                    address = psycopg.conninfo.make_conninfo(self.url, **LINK)
                    self._connection = psycopg.connect(address, autocommit=True)
                if key in self._held:
                    self._connection.execute("SELECT 1")  # alive: the lock is still ours
                    return True
                taken = self._connection.execute(
                    "SELECT pg_try_advisory_lock(%s)", (key,)
                ).fetchone()
                if taken and taken[0]:
                    self._held.add(key)
                    return True
                return False
            except psycopg.Error:
                self._drop()
                return False

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()
        self._connection = None
        self._held.clear()

    def close(self) -> None:
        with self._lock:
            self._drop()
