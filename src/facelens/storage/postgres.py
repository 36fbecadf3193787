"""PostgreSQL (``FACELENS_DATABASE_URL``): one database shared by several servers.

:class:`PostgresDatabase` is what a store holds, as :class:`facelens.storage.sqlite.Database` is
for a file: a small pool of connections (psycopg's, which replaces broken ones after an outage),
one careful write transaction — serialised across every server by a transaction-level advisory
lock, as SQLite's one writer serialises a file's writes, so a check-then-insert (one identity per
name) holds across replicas — and reads that never wait for a writer. The stores' SQL is written
once with ``?`` placeholders and the syntax both backends speak; this module hands psycopg its
``%s``. :func:`follow` keeps a process in step with changes made elsewhere (LISTEN/NOTIFY and a
change counter read every second, so a missed notification costs at most a second).

Every failure is ours: :class:`DatabaseUnavailable` (503, Retry-After) when the server cannot be
reached, :class:`StorageError` otherwise; the URL is shown without its user and password."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
import psycopg.conninfo
import psycopg_pool

from facelens.errors import DatabaseUnavailable, InvalidValue, StorageError
from facelens.storage.connection import Connection, Cursor
from facelens.system.redact import mask

log = logging.getLogger(__name__)

SCHEMES = ("postgresql://", "postgres://")
CONNECT_TIMEOUT_S = 5  # a server that does not answer is unreachable after this
WAIT_S = 5.0  # longest a statement waits for a connection (all busy, or none can be made)
# Advisory lock keys (one number space per database): the gallery's writes, schema upgrades.
WRITE_LOCK = 0x66_6C_00_01
UPGRADE_LOCK = 0x66_6C_00_02
STREAM_ROWS = 10_000  # rows a streamed read holds at once
BACKOFF_CAP_S = 5.0  # longest pause between attempts to reach the database again
# psycopg's pool tries to connect again after 1, 2, 4, 8 ... s, uncapped: a chain of attempts
# given up after this long is started afresh by the next statement (at once), so writes come
# back within seconds of the database, however long it was away.
RECONNECT_S = BACKOFF_CAP_S
# How a connection notices a server gone quiet (a partition, not a refusal): data unanswered
# for 5 s, or an idle link whose keepalives go unanswered, drops it instead of waiting for TCP.
LINK: dict[str, Any] = {
    "connect_timeout": CONNECT_TIMEOUT_S,
    "tcp_user_timeout": 5000,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
}


def is_url(value: str) -> bool:
    return value.startswith(SCHEMES)


# Query parameters of a URL shown with their values; any other's value is hidden.
_PLAIN = frozenset(("sslmode", "connect_timeout", "target_session_attrs", "application_name"))


def shown(url: str) -> str:
    """``url`` as messages show it: where it goes (host, port, database), whatever the user
    and password hold (a quote, '@', '/' or a space, where masking by pattern stopped and
    showed the rest), and query values hidden but a few harmless ones (``sslmode``)."""
    scheme, found, rest = url.partition("://")
    if not found:
        return "***"
    if "@" in rest:  # the last '@' ends the credentials, whatever they hold
        rest = "***@" + rest.rpartition("@")[2]
    where, _, query = rest.partition("?")
    if query:
        where += "?" + "&".join(
            item if item.partition("=")[0] in _PLAIN else f"{item.partition('=')[0]}=***"
            for item in query.split("&")
        )
    return f"{scheme}://{where}"


def _readable(url: str) -> None:
    """Refuse a URL libpq cannot read, without its words: they quote the part it could not
    read, the password itself when that holds a space or a stray '%'."""
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        raise InvalidValue(
            f"The database URL {shown(url)} cannot be read as a PostgreSQL URL: "
            "percent-encode every character of the user name and password but letters, digits "
            "and -._~ (a space as %20, '%' as %25, '@' as %40, '/' as %2F, ':' as %3A)."
        ) from None


@functools.lru_cache(maxsize=512)
def dialect(sql: str) -> str:
    """``sql`` with psycopg's placeholders: ``?`` becomes ``%s`` (a literal ``%`` is doubled).
    Our statements hold no ``?`` but placeholders (no string literal carries one)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Connection:
    """A psycopg connection as a :class:`Connection` (``?`` placeholders)."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        return self.connection.execute(dialect(sql), parameters)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        cursor = self.connection.cursor()
        cursor.executemany(dialect(sql), parameters)
        return cursor


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _said(exc: BaseException) -> str:
    return mask(_first_line(exc))


_pools: dict[str, tuple[psycopg_pool.ConnectionPool[psycopg.Connection[Any]], list[int]]] = {}
_opening = threading.Lock()
# The databases found out of reach, each with when to try it again: meanwhile a statement
# fails at once (a recognition checking a key never waits for a dead server), then one probe
# waits at most PROBE_S. Set by any failure to connect (a statement's, or a Follower's), not by
# a connection lost once made (killed, say): the next attempt to connect tells.
_down: dict[str, float] = {}
RETRY_S = 1.0
PROBE_S = 0.5
WAIT_SLICE_S = 0.1  # how often a statement waiting for a connection looks if the database was
# found out of reach meanwhile (then it gives up)


def _mark(url: str, reachable: bool) -> None:
    if reachable:
        _down.pop(url, None)
    else:
        _down[url] = time.monotonic() + RETRY_S


def _pool(url: str, wait_s: float) -> psycopg_pool.ConnectionPool[psycopg.Connection[Any]]:
    return psycopg_pool.ConnectionPool(
        url,
        min_size=1,
        max_size=4,
        open=False,
        kwargs={"autocommit": True, **LINK},
        timeout=wait_s,
        reconnect_timeout=RECONNECT_S,
        name="facelens",
    )


class PostgresDatabase:
    """One PostgreSQL database as this process uses it (``what``: what is stored there, for
    messages): :meth:`open` gives every store of the process the same small pool of
    connections (each its own handle, closed on its own), made when the first opens it, which
    waits until a first connection is made (:class:`DatabaseUnavailable` if none can be,
    within ``wait_s``). Safe to share across threads."""

    dialect = "postgresql"

    def __init__(
        self,
        url: str,
        what: str,
        pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]],
        wait_s: float,
    ) -> None:
        self.url = url
        self.shown = shown(url)
        self.what = what
        self.wait_s = wait_s
        self._pool = pool
        self._closed = False

    @classmethod
    def open(cls, url: str, what: str = "Gallery", *, wait_s: float = WAIT_S) -> PostgresDatabase:
        _readable(url)
        with _opening:
            found = _pools.get(url)
            if found is not None:
                found[1][0] += 1
                return cls(url, what, found[0], wait_s)
            pool = _pool(url, wait_s)
            handle = cls(url, what, pool, wait_s)
            try:
                # One connection first, for the server's own words if it refuses (a wrong
                # password, no such database): the pool's wait would only time out.
                psycopg.connect(psycopg.conninfo.make_conninfo(url, **LINK)).close()
                pool.open(wait=True, timeout=wait_s)
            except (psycopg_pool.PoolTimeout, psycopg.Error) as exc:
                pool.close(timeout=0)
                raise DatabaseUnavailable(
                    f"The database {handle.shown} cannot be reached "
                    f"({mask(_first_line(exc))}): check FACELENS_DATABASE_URL (host, port, "
                    "user, password, database), the network, and that PostgreSQL runs."
                ) from None
            except BaseException:
                pool.close(timeout=0)
                raise
            _pools[url] = (pool, [1])
            return handle

    def failure(self, exc: BaseException) -> StorageError:
        """Our error for psycopg's (or its pool's) ``exc``."""
        if isinstance(exc, psycopg_pool.PoolTimeout | psycopg.OperationalError):
            return DatabaseUnavailable(
                f"The database {self.shown} cannot be reached ({mask(_first_line(exc))}); "
                "nothing was written. Retry later: recognition goes on meanwhile.",
                api_message="The shared database cannot be reached now; nothing was written. "
                "Retry later: recognition goes on meanwhile.",
            )
        return StorageError(f"{self.what} in {self.shown}: {mask(_first_line(exc))}")

    @contextlib.contextmanager
    def _connection(self, wait_s: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        wait_s = wait_s or self.wait_s
        retry_at = _down.get(self.url)
        if retry_at is not None:  # out of reach a moment ago
            if time.monotonic() < retry_at:
                raise self.failure(psycopg.OperationalError("out of reach a moment ago"))
            wait_s = min(wait_s, PROBE_S)
        try:
            connection = self._answering(time.monotonic() + wait_s, retry_at)
        except psycopg_pool.PoolTimeout as exc:
            _mark(self.url, False)
            raise self.failure(exc) from None
        _mark(self.url, True)
        try:
            yield connection
        except psycopg.Error as exc:
            # Not marked out of reach: a connection lost during a statement (killed, the
            # server restarting) says nothing of the next; one that cannot be had does.
            raise self.failure(exc) from None
        finally:
            self._pool.putconn(connection)

    def _answering(self, deadline: float, marked: float | None) -> psycopg.Connection[Any]:
        """A pooled connection that answers (by ``deadline``, else PoolTimeout). One the server
        dropped while it was idle (a restart, a failover, a connection killed) is given back,
        to be replaced, and the next tried at once: psycopg's pool's own check sleeps 1, 2,
        4 s between such connections, so after a restart a statement waited its whole 5 s
        and failed, the database up. Waiting, it gives up once the database is found out of
        reach meanwhile (marked anew since ``marked``): a request that came as it went away
        waited the whole 5 s, though every one after it failed at once."""
        while True:
            left = deadline - time.monotonic()
            try:
                connection = self._pool.getconn(timeout=max(0.0, min(left, WAIT_SLICE_S)))
            except psycopg_pool.PoolTimeout:
                if left <= WAIT_SLICE_S or _down.get(self.url, marked) != marked:
                    raise
                continue
            try:
                connection.execute("")
            except psycopg.Error:
                self._pool.putconn(connection)  # broken: the pool closes and replaces it
                continue
            except BaseException:
                self._pool.putconn(connection)
                raise
            return connection

    @contextlib.contextmanager
    def transaction(self, lock: int | None = WRITE_LOCK) -> Iterator[Connection]:
        """One write transaction, committed whole or rolled back whole; while it runs no other
        transaction holding ``lock`` (by default the gallery's writes) runs, in any process."""
        with self._connection() as connection, connection.transaction():
            if lock is not None:
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            yield _Connection(connection)

    @contextlib.contextmanager
    def reading(
        self, wait_s: float | None = None, *, timeout_s: float | None = None
    ) -> Iterator[Connection]:
        """A connection for several reads in a row (waited for at most ``wait_s``), each
        given up after ``timeout_s`` if set (a table another session locked makes a read
        wait as long as the lock is held)."""
        with self._connection(wait_s) as connection:
            if timeout_s is None:
                yield _Connection(connection)
                return
            with connection.transaction():
                connection.execute(
                    "SELECT set_config('statement_timeout', %s, true)",
                    (str(max(1, round(timeout_s * 1000))),),
                )
                yield _Connection(connection)

    def read(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self.reading() as connection:
            return connection.execute(sql, args).fetchall()

    def stream(
        self, sql: str, args: Sequence[object] = (), size: int | None = None
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of one statement that only reads, ``size`` at a time, through a server-side
        cursor: neither libpq nor Python holds them all at once (a million stored vectors)."""
        with (
            self._connection() as connection,
            connection.transaction(),
            connection.cursor(name="facelens_stream") as cursor,
        ):
            cursor.execute(dialect(sql), args)
            while rows := cursor.fetchmany(size or STREAM_ROWS):
                yield rows

    def execute(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """One statement that writes, atomic on its own (not under the gallery's lock)."""
        with self._connection() as connection:
            cursor = connection.execute(dialect(sql), args)
            return cursor.fetchall() if cursor.description else []

    def script(self, sql: str) -> None:
        """Statements that make a store's tables (``CREATE ... IF NOT EXISTS``, in SQLite's
        words: BLOB is BYTEA here, REAL DOUBLE PRECISION), one server at a time."""
        ddl = re.sub(r"\bBLOB\b", "BYTEA", re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql))
        with self.transaction(lock=UPGRADE_LOCK) as connection:
            for statement in ddl.split(";"):
                if statement.strip():
                    connection.execute(statement)

    def close(self) -> None:
        """Give up this handle; the pool closes with the last one (again: nothing)."""
        if self._closed:
            return
        self._closed = True
        with _opening:
            found = _pools.get(self.url)
            if found is None or found[0] is not self._pool:
                return
            found[1][0] -= 1
            if found[1][0]:
                return
            del _pools[self.url]
        self._pool.close(timeout=5)
