"""``facelens db copy``: a gallery moved between backends — a SQLite file and a PostgreSQL
database, either way — with its people, faces (ids kept, and the next id too, so a deleted
face's id is never given again), vectors, thumbnails, enrolment records, model and API keys
in one transaction of the target; then, between a data directory and a database, the event
log with its pending deliveries. Then verified: the counts of every table and a SHA-256 over
every face's id, person and vector, and every thumbnail, equal on both sides."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from facelens.errors import Conflict, StorageError
from facelens.events.log import EventLog
from facelens.gallery import pg_schema
from facelens.gallery.keys import KEY_COLUMNS as KEYS
from facelens.gallery.keys import KEYS_TABLE
from facelens.gallery.postgres import PostgresGallery, PostgresStore
from facelens.gallery.sqlite import SQLiteGallery
from facelens.gallery.stored import StoredGallery
from facelens.settings import EVENTS_FILE, GALLERY_FILE, ModelName
from facelens.storage.connection import Connection
from facelens.storage.postgres import PostgresDatabase, is_url, shown
from facelens.storage.sqlite import connect_read_only

# The gallery's tables, parents first, with the columns copied (ids kept).
TABLES: dict[str, str] = {
    "people": "id, name, created_at",
    "sources": "id, person_id, path, sha256, status, reason, created_at",
    "faces": "id, person_id, source_id, embedding, box_left, box_top, box_right, box_bottom, "
    "created_at, sharpness",
    "face_thumbnails": "face_id, jpeg",
}
EVENTS = "seq, id, time, stream, kind, name, body"
DELIVERIES = "target, seq, attempts, state, last_error, tried_at"
CHUNK = 2000  # rows read and written at a time


@dataclass(frozen=True)
class CopyReport:
    source: str
    target: str
    model: str
    counts: dict[str, int]
    checksum: str  # SHA-256 over every face (id, person, vector) and thumbnail

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _file(place: str) -> Path:
    """The gallery file ``place`` names: itself, or the gallery file of a data directory."""
    path = Path(place).expanduser()
    return path / GALLERY_FILE if _is_data_dir(path) else path


def _require_gallery_file(path: Path) -> None:
    """Refuse a SQLite file that holds no gallery (the event log, another program's
    database): neither copied from as an empty gallery nor given a gallery's tables."""
    try:
        with contextlib.closing(connect_read_only(path)) as db:
            found = {
                str(row[0])
                for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
    except sqlite3.Error:
        found = set()
    if not {"meta", "people", "faces"} <= found:
        raise StorageError(
            f"{path} is not a facelens gallery: nothing was copied. Give a data directory, "
            f"its {GALLERY_FILE}, or a new file."
        )


def _require_gallery_database(url: str) -> None:
    db = PostgresDatabase.open(url)
    try:
        version = pg_schema.plan(db).version
    finally:
        db.close()
    if not version:
        raise StorageError(f"There is no gallery in the database {shown(url)}: nothing was copied.")


def open_place(
    place: str, model: ModelName | None = None, *, source: bool = False
) -> StoredGallery:
    """The gallery at ``place``: a postgresql:// URL, a data directory (its gallery file) or
    a gallery file; created, at ``model``, when it does not exist yet, unless it is the
    ``source`` (a wrong folder, an empty database was copied as an empty gallery, and with
    --replace emptied the target). A file that holds something else is refused."""
    if is_url(place):
        if source:
            _require_gallery_database(place)
        return PostgresGallery(place, Path("."), model, follow=False)
    path = _file(place)
    if path.is_file() and (source or path.stat().st_size):
        _require_gallery_file(path)
    elif source:
        raise StorageError(f"There is no gallery at {place} (no {path}): nothing was copied.")
    return SQLiteGallery(path, model)


def _is_data_dir(path: Path) -> bool:
    """A data directory (made if need be), unless a file or a path ending in .sqlite3."""
    return path.is_dir() or (not path.exists() and path.suffix != ".sqlite3")


def _count(gallery: StoredGallery, table: str) -> int:
    return int(gallery.file.read(f"SELECT COUNT(*) FROM {table}")[0][0])


def _events_of(place: str, *, source: bool) -> EventLog | None:
    """The event log beside the gallery at ``place``: a database's, or a data directory's
    (None for a bare gallery file: its events would land beside it unasked; none either for
    a source directory without one)."""
    if is_url(place):
        return EventLog(Path("."), url=place)
    path = Path(place).expanduser()
    if not _is_data_dir(path) or (source and not (path / EVENTS_FILE).is_file()):
        return None
    return EventLog(path / EVENTS_FILE)


def _rows(
    read: Callable[[str, Sequence[object]], list[tuple[Any, ...]]],
    table: str,
    columns: str,
    key: str = "id",
    first: object = -1,
) -> Iterator[list[tuple[Any, ...]]]:
    """Every row of ``table`` (``columns``), CHUNK at a time, by ``key`` (from past ``first``)."""
    last = first
    while True:
        rows = read(
            f"SELECT {columns} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?", (last, CHUNK)
        )
        if rows:
            yield rows
        if len(rows) < CHUNK:
            return
        last = rows[-1][0]


def checksum(gallery: StoredGallery) -> str:
    digest = hashlib.sha256()
    faces = "faces f JOIN people p ON p.id = f.person_id"
    for rows in _rows(gallery.file.read, faces, "f.id, p.name, f.embedding", "f.id"):
        for face_id, name, vector in rows:
            digest.update(f"{face_id}\0{name}\0".encode())
            digest.update(bytes(vector))
    for rows in _rows(gallery.file.read, "face_thumbnails", "face_id, jpeg", "face_id"):
        for face_id, jpeg in rows:
            digest.update(f"t{face_id}\0".encode())
            digest.update(bytes(jpeg))
    return digest.hexdigest()


def _next_face_id(gallery: StoredGallery) -> int:
    """The id the gallery would give its next face (deleted faces' ids are never reused)."""
    if isinstance(gallery.file, PostgresStore):
        row = gallery.file.read("SELECT last_value, is_called FROM faces_id_seq")[0]
        return int(row[0]) + 1 if row[1] else int(row[0])
    found = gallery.file.read("SELECT seq FROM sqlite_sequence WHERE name = 'faces'")
    return (int(found[0][0]) if found else 0) + 1


def _continue_ids(gallery: StoredGallery, db: Connection, next_face: int) -> None:
    """After rows were inserted with their ids: new rows get higher ones, faces from
    ``next_face`` on."""
    if isinstance(gallery.file, PostgresStore):
        for table in ("people", "sources"):
            db.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            )
        db.execute("SELECT setval('faces_id_seq', ?, false)", (next_face,))
    else:
        db.execute("DELETE FROM sqlite_sequence WHERE name = 'faces'")
        db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('faces', ?)", (next_face - 1,))


def copy_gallery(source: str, target: str, *, replace: bool = False) -> CopyReport:
    """Copy the gallery at ``source`` into the one at ``target`` (see :func:`open_place`),
    which must be empty unless ``replace`` (what it holds is then dropped first, in the same
    transaction); with its events when both are a data directory or a database. Nothing is
    written to ``source``."""
    with contextlib.ExitStack() as stack:
        origin = stack.enter_context(contextlib.closing(open_place(source, source=True)))
        destination = stack.enter_context(
            contextlib.closing(open_place(target, origin.profile.name))
        )
        events = _events_of(source, source=True)
        into = None if events is None else _events_of(target, source=False)
        for log in (events, into):
            if log is not None:
                stack.callback(log.close)
        if into is not None and into.last_seq() and not replace:
            raise Conflict(
                f"The event log at {_shown(target)} holds events: nothing was copied. Give "
                "--replace to drop what it holds first."
            )
        report = _copy(origin, destination, _shown(source), _shown(target), replace)
        if events is not None and into is not None:
            report.counts.update(_copy_events(events, into))
            copied = into.read_rows("SELECT COUNT(*) FROM events")[0][0]
            if int(copied) != report.counts["events"]:
                raise StorageError(
                    f"The events copied to {_shown(target)} do not match ({copied} for "
                    f"{report.counts['events']}): the source changed during the copy? Run it "
                    "again with --replace."
                )
        return report


def _keys_reader(
    origin: StoredGallery,
) -> Callable[[str, Sequence[object]], list[tuple[Any, ...]]]:
    """The source's API keys are read as its gallery's rows; a gallery never served over HTTP
    has no key table (it is made by the server): no keys, then."""

    def read(sql: str, args: Sequence[object]) -> list[tuple[Any, ...]]:
        try:
            return origin.file.read(sql, args)
        except StorageError as exc:
            if "api_keys" not in str(exc):
                raise
            return []

    return read


def _copy_events(origin: EventLog, destination: EventLog) -> dict[str, int]:
    """The events and their pending deliveries, in one transaction of the target (what it
    held is dropped: checked empty, or to be replaced, by the caller)."""
    counts = {"events": 0, "deliveries": 0}
    with destination.transaction() as db:
        db.execute("DELETE FROM events")  # cascades to deliveries
        for rows in _rows(origin.read_rows, "events", EVENTS, "seq"):
            db.executemany(f"INSERT INTO events ({EVENTS}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            counts["events"] += len(rows)
        pending = origin.read_rows(f"SELECT {DELIVERIES} FROM deliveries ORDER BY seq, target")
        if pending:  # an outbox is small: events not delivered yet
            db.executemany(
                f"INSERT INTO deliveries ({DELIVERIES}) VALUES (?, ?, ?, ?, ?, ?)", pending
            )
        counts["deliveries"] = len(pending)
        if destination.url is not None:
            db.execute(
                "SELECT setval(pg_get_serial_sequence('events', 'seq'), "
                "COALESCE((SELECT MAX(seq) FROM events), 0) + 1, false)"
            )
    return counts


def _shown(place: str) -> str:
    return shown(place) if is_url(place) else place


def _copy(
    origin: StoredGallery, destination: StoredGallery, source: str, target: str, replace: bool
) -> CopyReport:
    held = {table: _count(destination, table) for table in TABLES}
    if any(held.values()) and not replace:
        raise Conflict(
            f"The gallery at {target} is not empty ({held['people']} people, {held['faces']} "
            "faces): nothing was copied. Give --replace to drop what it holds first."
        )
    next_face = _next_face_id(origin)
    with destination.file.transaction(erases=True) as db:
        db.execute("DELETE FROM people")  # cascades to sources, faces, thumbnails
        for table, columns in TABLES.items():
            key = "face_id" if table == "face_thumbnails" else "id"
            marks = ", ".join("?" * len(columns.split(",")))
            for rows in _rows(origin.file.read, table, columns, key):
                db.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
        _continue_ids(destination, db, next_face)
        destination.file.bump(db)
        keys = 0
        db.execute(KEYS_TABLE)  # made by the first server otherwise
        db.execute("DELETE FROM api_keys")
        for rows in _rows(_keys_reader(origin), "api_keys", KEYS, first=""):
            db.executemany(f"INSERT INTO api_keys ({KEYS}) VALUES (?, ?, ?, ?, ?, ?)", rows)
            keys += len(rows)
    counts = {table: _count(origin, table) for table in TABLES} | {"api_keys": keys}
    copied = {table: _count(destination, table) for table in (*TABLES, "api_keys")}
    summed = checksum(origin)
    if copied != counts or checksum(destination) != summed:
        raise StorageError(
            f"The copy in {target} does not match {source} (counts {copied} for {counts}, or "
            "the vectors' checksum differs): the source changed during the copy? Run it again "
            "with --replace."
        )
    return CopyReport(source, target, origin.profile.name, counts, summed)
