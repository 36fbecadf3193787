"""The people of a gallery: names (one identity per name, look-alikes refused), renames and
merges, deletion. Deleting or renaming someone also forgets or renames their stored events
(``events.sqlite3`` beside the gallery): biometric data must not outlive a deletion."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from facelens.errors import Conflict, InvalidValue, NotFound, PersonNotFound, StorageError
from facelens.gallery.base import (
    Merged,
    PersonSummary,
    check_new_name,
    looks_alike,
    name_keys,
    normalize_name,
    spelling_key,
)
from facelens.gallery.store import GalleryStore
from facelens.storage.connection import Connection
from facelens.storage.sqlite import now_text

if TYPE_CHECKING:
    from facelens.events.people import Renamed

log = logging.getLogger(__name__)
ALL = 2**62  # a LIMIT that takes every row (both backends; SQLite's -1 is not PostgreSQL's)


def forget_event_crops(data_dir: Path, names: list[str], url: str | None = None) -> int:
    """Blank the face crops of stored events (``events.sqlite3`` beside the gallery) that name
    these people: biometric data must not outlive their deletion. The one place every delete
    goes through (HTTP, CLI, the CompreFace and DeepStack routes)."""
    from facelens.events.people import forget_crops_in  # the light event log, no video code

    return forget_crops_in(data_dir, names, url)


@contextmanager
def renaming_events(data_dir: Path, url: str | None = None) -> Iterator[Callable[[str, str], None]]:
    """Within a gallery transaction that renames a person or merges them into another: a call
    giving their stored events (``events.sqlite3`` beside the gallery) the new name, so that
    deleting them later blanks the crops of their events, which name them by the name they had
    when recorded. Undone if the transaction fails after it. The one place every rename and
    merge goes through (HTTP, CLI, the CompreFace route)."""
    from facelens.events.people import rename_in, undo_rename_in

    done: list[Renamed] = []

    def rename(old: str, new: str) -> None:
        renamed = rename_in(data_dir, old, new, url)
        if renamed is not None:
            done.append(renamed)

    try:
        yield rename
    except BaseException:
        for renamed in done:  # the gallery keeps the old name: so do the events
            try:
                undo_rename_in(data_dir, renamed, url)
            except StorageError as exc:
                log.error(
                    "the events of %r keep the name %r after a failed rename: %s; rename "
                    "them again (or the person back) to put them in line",
                    renamed.old,
                    renamed.new,
                    exc,
                )
        raise


def not_found(name: str) -> NotFound:
    return PersonNotFound(
        f"No person named {name!r}; 'facelens people list' shows who is enrolled.",
        api_message=f"No person named {name!r}; GET /v1/people lists who is enrolled.",
    )


def _exists(name: str) -> Conflict:
    return Conflict(f"A person named {name!r} already exists.")


def _lookalike(name: str, stored: str) -> Conflict:
    return Conflict(
        f"{name!r} is the same name as {stored!r}, who exists (names that differ only in case, "
        "spacing, width, Unicode form, characters that show nothing, such as joiners, or "
        "letters of another alphabet shaped like theirs, such as a Cyrillic or Greek 'o' for "
        f"a Latin one, look alike and are one person). Use {stored!r}, or rename them."
    )


def id_of(db: Connection, name: str) -> int:
    row = db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise not_found(name)
    return int(row[0])


def same_identity(db: Connection, name: str, besides: str | None = None) -> str | None:
    """The stored name (other than ``besides``) that is the same person as ``name`` (it
    looks alike: see ``name_keys``), if any."""
    for (stored,) in db.execute("SELECT name FROM people"):
        if str(stored) != besides and looks_alike(str(stored), name):
            return str(stored)
    return None


def create(db: Connection, name: str, *, new: bool = False) -> None:
    """Create ``name`` unless it exists as spelled (with ``new``, that is a conflict too);
    another spelling of it is a conflict."""
    if db.execute("SELECT 1 FROM people WHERE name = ?", (name,)).fetchone():
        if new:
            raise _exists(name)
        return  # the usual case (a file enrolled for an existing person): no scan
    stored = same_identity(db, name)
    if stored is not None:
        raise _lookalike(name, stored)
    check_new_name(name)
    db.execute("INSERT INTO people (name, created_at) VALUES (?, ?)", (name, now_text()))


class People:
    """The people of one gallery file; safe to share across threads."""

    def __init__(self, file: GalleryStore) -> None:
        self.file = file

    def add_person(self, name: str) -> PersonSummary:
        name = normalize_name(name)
        with self.file.transaction() as db:
            create(db, name, new=True)
            self.file.bump(db)
        return PersonSummary(name, 0)

    def check_new_person(self, name: str) -> str:
        """``name`` as it would be stored, if a person of that name could be created now; the
        :class:`Conflict` :meth:`add_person` would raise if not. Writes nothing: a caller
        checks before long work (analysing photos), then creates with the first face."""
        name = normalize_name(name)
        if self.file.read("SELECT 1 FROM people WHERE name = ?", (name,)):
            raise _exists(name)
        for (stored,) in self.file.read("SELECT name FROM people"):
            if looks_alike(str(stored), name):
                raise _lookalike(name, str(stored))
        check_new_name(name)
        return name

    def ensure_person(self, name: str) -> PersonSummary:
        name = normalize_name(name)
        with self.file.transaction() as db:
            create(db, name)
            count = db.execute(
                "SELECT COUNT(f.id) FROM people p LEFT JOIN faces f ON f.person_id = p.id "
                "WHERE p.name = ?",
                (name,),
            ).fetchone()[0]
        return PersonSummary(name, int(count))

    def person(self, name: str) -> PersonSummary:
        name = normalize_name(name)
        rows = self.file.read(
            "SELECT COUNT(f.id) FROM people p LEFT JOIN faces f ON f.person_id = p.id "
            "WHERE p.name = ? GROUP BY p.id",
            (name,),
        )
        if not rows:
            raise not_found(name)
        return PersonSummary(name, int(str(rows[0][0])))

    def count_people(self) -> int:
        return int(str(self.file.read("SELECT COUNT(*) FROM people")[0][0]))

    def list_people(self, offset: int = 0, limit: int | None = None) -> list[PersonSummary]:
        rows = self.file.read(
            "SELECT p.name, (SELECT COUNT(*) FROM faces f WHERE f.person_id = p.id), "
            "(SELECT MIN(t.face_id) FROM faces f JOIN face_thumbnails t ON t.face_id = f.id "
            "WHERE f.person_id = p.id) FROM people p ORDER BY p.name LIMIT ? OFFSET ?",
            (ALL if limit is None else limit, offset),
        )
        return [
            PersonSummary(str(name), int(str(count)), None if cover is None else int(str(cover)))
            for name, count, cover in rows
        ]

    def find_person(self, name: str) -> PersonSummary | None:
        """The person ``name`` names in any case, width or Unicode form (see ``spelling_key``),
        as stored; None if nobody. For APIs whose clients change a name's case. A look-alike of
        a stored name finds nobody: creating it is then refused, never merged into them."""
        name = normalize_name(name)
        with self.file.lock:
            try:
                return self.person(name)
            except NotFound:
                pass
            key = spelling_key(name)
            for (stored,) in self.file.read("SELECT name FROM people"):
                if spelling_key(str(stored)) == key:
                    return self.person(str(stored))
            return None

    def lookalikes(self) -> list[list[str]]:
        """Groups of stored names that look alike (see ``name_keys``; a group holds every name
        linked by a chain of look-alikes): stored before facelens refused them, each group is
        probably one person under several names."""
        names = [
            str(stored) for (stored,) in self.file.read("SELECT name FROM people ORDER BY name")
        ]
        parent = list(range(len(names)))  # union-find over the names' keys

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        holder: dict[str, int] = {}  # key -> the first name that has it
        for i, name in enumerate(names):
            for key in name_keys(name):
                parent[root(i)] = root(holder.setdefault(key, i))
        groups: dict[int, list[str]] = {}
        for i, name in enumerate(names):
            groups.setdefault(root(i), []).append(name)
        return [group for group in groups.values() if len(group) > 1]

    def rename_person(self, old: str, new: str) -> PersonSummary:
        old, new = normalize_name(old), normalize_name(new)
        with (
            renaming_events(self.file.data_dir, self.file.events_url) as rename_events,
            self.file.transaction() as db,
        ):
            person = id_of(db, old)
            taken = same_identity(db, new, besides=old)
            if taken is not None:
                alike = "" if taken == new else f" ({new!r} looks the same)"
                raise Conflict(
                    f"A person named {taken!r} already exists{alike}; remove or rename them first."
                )
            if new != old:
                check_new_name(new)
            db.execute("UPDATE people SET name = ? WHERE id = ?", (new, person))
            count = db.execute(
                "SELECT COUNT(*) FROM faces WHERE person_id = ?", (person,)
            ).fetchone()[0]
            self.file.bump(db)
            if new != old:
                rename_events(old, new)  # last: nothing after it can fail but the commit
        return PersonSummary(new, int(count))

    def remove_person(self, name: str) -> int:
        name = normalize_name(name)
        self.person(name)  # NotFound before anything is touched
        # Their face crops in stored events go first: if that fails, nothing is removed yet
        # and the call can be repeated.
        forget_event_crops(self.file.data_dir, [name], self.file.events_url)
        with self.file.transaction(erases=True) as db:
            person = id_of(db, name)
            count = db.execute(
                "SELECT COUNT(*) FROM faces WHERE person_id = ?", (person,)
            ).fetchone()[0]
            db.execute("DELETE FROM people WHERE id = ?", (person,))  # cascades to faces, sources
            self.file.bump(db)
        return int(count)

    def remove_everyone(self) -> int:
        """Delete every person and face; returns the people removed."""
        forget_event_crops(
            self.file.data_dir, [p.name for p in self.list_people()], self.file.events_url
        )
        with self.file.transaction(erases=True) as db:
            removed = db.execute("SELECT COUNT(*) FROM people").fetchone()[0]
            db.execute("DELETE FROM people")  # cascades to sources and faces
            self.file.bump(db)
        return int(removed)

    def merge_person(self, old: str, into: str) -> Merged:
        """Move every face of ``old`` to ``into`` (both exist), with their thumbnails and the
        records of the photos they came from (so folder enrolment knows where a folder went),
        and delete ``old``. A photo both hold (same path, same content) is kept once: ``old``'s
        copy of its faces is dropped as a duplicate. A path both hold with other content (the
        file changed between two enrolments) keeps ``into``'s record; ``old``'s faces of it
        stay, without a record of their photo."""
        old, into = normalize_name(old), normalize_name(into)
        with (
            renaming_events(self.file.data_dir, self.file.events_url) as rename_events,
            self.file.transaction(erases=True) as db,
        ):
            source, target = id_of(db, old), id_of(db, into)
            if source == target:
                raise InvalidValue(f"{old!r} and {into!r} are one person: nothing to merge.")
            shared = (
                "SELECT s.id FROM sources s JOIN sources t ON t.path = s.path AND t.person_id = ? "
                "WHERE s.person_id = ?"
            )
            twins = f"{shared} AND s.sha256 = t.sha256"
            dropped = db.execute(
                f"SELECT COUNT(*) FROM faces WHERE source_id IN ({twins})", (target, source)
            ).fetchone()[0]
            db.execute(f"DELETE FROM sources WHERE id IN ({twins})", (target, source))  # + faces
            db.execute(
                f"UPDATE faces SET source_id = NULL WHERE source_id IN ({shared})", (target, source)
            )
            db.execute(f"DELETE FROM sources WHERE id IN ({shared})", (target, source))
            moved = db.execute(
                "SELECT COUNT(*) FROM faces WHERE person_id = ?", (source,)
            ).fetchone()[0]
            db.execute("UPDATE sources SET person_id = ? WHERE person_id = ?", (target, source))
            db.execute("UPDATE faces SET person_id = ? WHERE person_id = ?", (target, source))
            db.execute("DELETE FROM people WHERE id = ?", (source,))
            self.file.bump(db)
            count = db.execute(
                "SELECT COUNT(*) FROM faces WHERE person_id = ?", (target,)
            ).fetchone()[0]
            rename_events(old, into)  # last: nothing after it can fail but the commit
        return Merged(into, int(count), old, int(moved), int(dropped))
