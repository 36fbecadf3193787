"""The shared gallery: people, faces, vectors, thumbnails, enrolment records and the model, in
one PostgreSQL database that several servers use at once (``FACELENS_DATABASE_URL``).

Each server holds the index matching uses in memory, as with SQLite, and follows every change
made by any server: a change bumps the gallery's revision and NOTIFYs it; a
:class:`~facelens.storage.postgres.Follower` reads the revision on each notification and every
second, and the index is read again when it moved. While the database cannot be reached,
recognition answers from the index held, and writes fail with ``database_unavailable`` (503,
Retry-After), nothing half-written."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from facelens.errors import DatabaseUnavailable, GalleryDamaged, ModelError, StorageError
from facelens.gallery import pg_schema, schema
from facelens.gallery.stored import StoredGallery
from facelens.models.profiles import ModelProfile, profile_for
from facelens.settings import ModelName
from facelens.storage.connection import Connection
from facelens.storage.pg_sessions import Follower
from facelens.storage.postgres import PostgresDatabase

log = logging.getLogger(__name__)
QUICK_S = 0.5  # longest a recognition waits for a connection to read the revision


def _revision(db: Connection, where: str) -> int:
    """The gallery's revision; :class:`GalleryDamaged` if someone else made it no number or
    deleted it (``int()`` failed, and every recognition with it)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
    try:
        return int(row[0])
    except (TypeError, ValueError):
        found = "missing" if row is None else f"{row[0]!r}, not a number"
        raise GalleryDamaged(
            f"The gallery's revision in {where} is {found}: someone else wrote to its meta "
            "table. Recognition goes on with the people held in memory; no change is stored "
            "until it is a number again (UPDATE meta SET value = '1' WHERE key = 'revision', "
            "or INSERT the row)."
        ) from None


class PostgresStore:
    """The gallery's tables in one database (a :class:`~facelens.gallery.store.GalleryStore`);
    ``data_dir``: where this server keeps its own files (its event log)."""

    read_only = False
    damaged = None  # PostgreSQL looks after its own files: no quick_check of ours
    profile: ModelProfile

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = self.events_url = url  # the event log is in the database too
        self.db = PostgresDatabase.open(url)
        self.where = self.db.shown
        self.data_dir = data_dir
        self.lock = threading.RLock()
        self._revision = -1
        self._follower: Follower | None = None

    def follow(self) -> None:
        """From now on, follow the changes every server makes (read now, then followed)."""
        with self.db.reading() as connection:
            self._revision = _revision(connection, self.where)
        self._follower = Follower(
            self.url, pg_schema.CHANNEL, lambda db: _revision(db, self.where), self._moved
        )
        self._follower.start()

    def _moved(self, revision: int) -> None:
        self._revision = max(self._revision, revision)

    @property
    def unreachable(self) -> str | None:
        return None if self._follower is None else self._follower.problem

    @contextmanager
    def transaction(self, *, erases: bool = False) -> Iterator[Connection]:
        """One write transaction; no other server's gallery write runs meanwhile."""
        with self.db.transaction() as db:
            yield db

    def stream(self, sql: str, args: Sequence[object] = ()) -> Iterator[list[tuple[Any, ...]]]:
        return self.db.stream(sql, args)

    def read(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self.db.read(sql, args)

    def bump(self, db: Connection) -> None:
        """Within a write: the gallery changed; every server is told when it is committed."""
        # Read first: a revision someone made no number is refused in our words (CAST's
        # "invalid input syntax for type bigint"; a missing row changed nothing, silently).
        _revision(db, self.where)
        revision = db.execute(
            "UPDATE meta SET value = CAST(value AS BIGINT) + 1 WHERE key = 'revision' "
            "RETURNING value"
        ).fetchone()[0]
        db.execute("SELECT pg_notify(?, ?)", (pg_schema.CHANNEL, str(revision)))

    def revision(self) -> int:
        """The gallery's revision, read now (matching then sees a change this server made a
        moment ago, as with a file); while the database cannot be reached, the one last seen
        (recognition goes on from what is held)."""
        if self._follower is not None and self._follower.problem is not None:
            return self._revision
        try:
            # Bounded: a worker reads it before each recognition, which waited as long as
            # another session held the meta table locked (VACUUM FULL, ALTER, LOCK TABLE).
            with self.db.reading(QUICK_S, timeout_s=QUICK_S) as connection:
                self._revision = max(self._revision, _revision(connection, self.where))
        except DatabaseUnavailable:
            if self._revision < 0:  # never read: nothing to answer from
                raise
        return self._revision

    def require_bound(self, db: Connection) -> None:
        schema.require_bound(db, self.profile, self.where)

    def check_model(self) -> None:
        with self.db.reading() as db:
            self.require_bound(db)

    def check_writable(self) -> None:
        """Nothing to check beforehand: a write that cannot be made says why."""

    def health(self, max_age_s: float = 0.0) -> list[str]:
        return []

    def quick_check(self) -> list[str]:
        return []

    def backup(self, target: Path) -> None:
        raise StorageError(
            f"The gallery is in the database {self.where}: back it up with PostgreSQL's own "
            f"tools (pg_dump), or copy it into a SQLite file with 'facelens db copy "
            f"DATABASE_URL {target}'."
        )

    def close(self) -> None:
        if self._follower is not None:
            self._follower.close(
                lambda: self.db.execute("SELECT pg_notify(?, 'closing')", (pg_schema.CHANNEL,))
            )
        self.db.close()


class PostgresGallery(StoredGallery):
    """The gallery in a PostgreSQL database. Opening it upgrades the schema (one server of
    several starting at once does; see :mod:`facelens.gallery.pg_schema`) and binds it to a
    model profile as :class:`~facelens.gallery.sqlite.SQLiteGallery` does. ``follow``: keep
    the index in step with other servers' changes (off for one-shot commands)."""

    def __init__(
        self, url: str, data_dir: Path, model: ModelName | None = None, *, follow: bool = True
    ) -> None:
        store = PostgresStore(url, data_dir)
        try:
            done = pg_schema.upgrade(store.db)
            if done.pending and done.version == 0:
                log.info("database %s: gallery schema created", store.where)
            elif done.pending:
                log.warning(
                    "database %s: gallery schema upgraded from version %d to %d",
                    store.where,
                    done.version,
                    pg_schema.LATEST,
                )
            with store.db.transaction() as db:
                profile = schema.bound_profile(db)
                if profile is None:
                    profile = profile_for(model)
                    schema.record_profile(db, profile)
            if model is not None and model != profile.name:
                raise ModelError(
                    f"The gallery in {store.where} was built with the {profile.name} model "
                    f"({profile.id}), but the {model} model was asked for: their distances "
                    f"are not comparable. Leave the model unset to use {profile.name}, or use "
                    "another database."
                )
            store.profile = profile
            if follow:
                store.follow()
        except BaseException:
            store.close()
            raise
        self.file: PostgresStore = store
        self._assemble(store)
