"""What the event log keeps of people, kept in line with the gallery: the face crops of a
person deleted are blanked (biometric data must not outlive the deletion), and the events of a
person renamed or merged take the new name (their history follows them; a later deletion finds
it)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from facelens.events.log import EventLog
from facelens.settings import EVENTS_FILE
from facelens.storage.connection import Connection

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Json:
    """A field of an event's JSON body in SQL, in the log's dialect: read as text, or set."""

    dialect: str

    def get(self, field: str) -> str:
        if self.dialect == "postgresql":
            return f"(body::json ->> '{field}')"
        return f"CAST(json_extract(body, '$.{field}') AS TEXT)"

    def set(self, field: str, value: str = "?") -> str:
        """``body`` with ``field`` set to the text ``value`` (a placeholder), or JSON null."""
        if self.dialect == "postgresql":
            new = "'null'::jsonb" if value == "NULL" else f"to_jsonb(CAST({value} AS TEXT))"
            return f"jsonb_set(body::jsonb, '{{{field}}}', {new})::text"
        return f"json_set(body, '$.{field}', {value})"


@dataclass(frozen=True, slots=True)
class Renamed:
    """Which events :meth:`EventLog.rename` gave the name ``new`` (by sequence number): those
    it named ``old``, and the renamed ones whose previous name was ``old``."""

    old: str
    new: str
    named: tuple[int, ...]
    previous: tuple[int, ...]


def forget_crops(events: EventLog, names: Iterable[str]) -> int:
    """Blank the face crops of every track any event names as one of ``names`` (as its
    name, or as the name it had before a rename), all its events included (a track that
    arrived ``unknown`` and was renamed shows the same face); how many events lost one.
    Overwritten on disk (``secure_delete``), and the write-ahead log is emptied."""
    blanked = 0
    with events.transaction() as db:
        for name in names:
            blanked += _blank_tracks(db, _Json(events.dialect), name)
    if blanked and (busy := events.checkpoint()) is not None:
        log.warning(
            "blanked event crops stay in the -wal file until its next checkpoint (%s)", busy
        )
    return blanked


def rename(events: EventLog, old: str, new: str) -> Renamed:
    """Give the events that name person ``old`` (as their name, or as a renamed track's
    previous name) the name ``new``, in the column and the body alike: a person renamed or
    merged keeps their history (``?person=`` the new name finds it) and deleting them later
    blanks its crops. Events still to be delivered go out as stored, under ``new``."""
    body = _Json(events.dialect)
    with events.transaction() as db:
        named = db.execute(
            f"UPDATE events SET name = ?, body = {body.set('name')} WHERE name = ? RETURNING seq",
            (new, new, old),
        ).fetchall()
        previous = db.execute(
            f"UPDATE events SET body = {body.set('previous')} WHERE kind = 'renamed' "
            f"AND {body.get('previous')} = ? RETURNING seq",
            (new, old),
        ).fetchall()
    return Renamed(old, new, tuple(r[0] for r in named), tuple(r[0] for r in previous))


def undo_rename(events: EventLog, done: Renamed) -> None:
    """Give back the name ``done.old`` to the events :func:`rename` changed (by sequence
    number: events that named ``done.new`` before keep it)."""
    body = _Json(events.dialect)
    with events.transaction() as db:
        for start in range(0, len(done.named), 500):  # under SQLite's limit of bound values
            chunk = done.named[start : start + 500]
            db.execute(
                f"UPDATE events SET name = ?, body = {body.set('name')} "
                f"WHERE seq IN ({', '.join('?' * len(chunk))})",
                (done.old, done.old, *chunk),
            )
        for start in range(0, len(done.previous), 500):
            chunk = done.previous[start : start + 500]
            db.execute(
                f"UPDATE events SET body = {body.set('previous')} "
                f"WHERE seq IN ({', '.join('?' * len(chunk))})",
                (done.old, *chunk),
            )


def _blank_tracks(db: Connection, body: _Json, name: str) -> int:
    """Within a transaction: blank the crops of the tracks that events name ``name``."""
    track = body.get("track")
    naming = db.execute(
        f"SELECT seq, stream, {track} FROM events WHERE name = ? UNION "
        f"SELECT seq, stream, {track} FROM events "
        f"WHERE kind = 'renamed' AND {body.get('previous')} = ? ORDER BY 1",
        (name, name),
    ).fetchall()
    done: dict[tuple[str, object], list[tuple[int, int | None]]] = {}
    blanked = 0
    for seq, stream, number in naming:
        spans = done.setdefault((stream, number), [])
        if any(start <= seq and (end is None or seq <= end) for start, end in spans):
            continue
        # The track's events: from its "arrived" to its "left" (track numbers start again
        # with each run of a stream, so the span is that of this run's track).
        first = db.execute(
            f"SELECT seq FROM events WHERE stream = ? AND seq <= ? AND kind = 'arrived' "
            f"AND {track} = ? ORDER BY seq DESC LIMIT 1",
            (stream, seq, number),
        ).fetchone()
        last = db.execute(
            f"SELECT seq FROM events WHERE stream = ? AND seq >= ? AND kind = 'left' "
            f"AND {track} = ? ORDER BY seq LIMIT 1",
            (stream, seq, number),
        ).fetchone()
        start, end = (
            (seq if first is None else int(first[0])),
            (None if last is None else int(last[0])),
        )
        spans.append((start, end))
        blanked += db.execute(
            f"UPDATE events SET body = {body.set('crop', 'NULL')} WHERE stream = ? "
            f"AND seq >= ? AND seq <= ? AND {track} = ? "
            f"AND {body.get('crop')} IS NOT NULL",
            (stream, start, 2**62 if end is None else end, number),
        ).rowcount
    return blanked


def _open(data_dir: Path, url: str | None) -> EventLog | None:
    """The event log of ``data_dir`` (None if there is none yet), or of the shared database."""
    path = data_dir / EVENTS_FILE
    if url is None and not path.is_file():
        return None
    return EventLog(path, url=url)


def forget_crops_in(data_dir: Path, names: Iterable[str], url: str | None = None) -> int:
    """Blank the event crops of people deleted from the gallery of ``data_dir`` (see
    :func:`forget_crops`), or of the shared database ``url``; 0 when there is no event log."""
    events = _open(data_dir, url)
    if events is None:
        return 0
    try:
        blanked = forget_crops(events, names)
    finally:
        events.close()
    if blanked:
        log.info("blanked the face crops of %d events of deleted people", blanked)
    return blanked


def rename_in(data_dir: Path, old: str, new: str, url: str | None = None) -> Renamed | None:
    """Give the stored events of person ``old`` of ``data_dir``'s gallery (or of the shared
    database ``url``) their new name (see :func:`rename`); None when there is no event log."""
    events = _open(data_dir, url)
    if events is None:
        return None
    try:
        done = rename(events, old, new)
    finally:
        events.close()
    if done.named or done.previous:
        log.info("%d stored events of %r now name %r", len(done.named), old, new)
    return done


def undo_rename_in(data_dir: Path, done: Renamed, url: str | None = None) -> None:
    """Undo :func:`rename_in` (the gallery's change it went with did not happen)."""
    events = EventLog(data_dir / EVENTS_FILE, url=url)
    try:
        undo_rename(events, done)
    finally:
        events.close()
