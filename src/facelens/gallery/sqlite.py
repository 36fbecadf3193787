"""The embedded gallery: one SQLite file in WAL mode under the data directory.

Each enrolled file is written in its own transaction, so an interrupted enrolment keeps what
was committed and leaves no half-written file behind.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facelens.errors import (
    Conflict,
    InvalidValue,
    ModelError,
    NotFound,
    PersonNotFound,
    StorageError,
)
from facelens.gallery import schema
from facelens.gallery.base import (
    FaceRecord,
    Holder,
    Merged,
    NewFace,
    PersonSummary,
    SourceRecord,
    check_new_name,
    looks_alike,
    name_keys,
    normalize_name,
    spelling_key,
)
from facelens.gallery.stored import StoredFaces
from facelens.models.base import Box
from facelens.models.profiles import ModelProfile, profile_for
from facelens.settings import ModelName
from facelens.storage.sqlite import now_text

if TYPE_CHECKING:
    from facelens.events.log import Renamed

log = logging.getLogger(__name__)


def forget_event_crops(data_dir: Path, names: list[str]) -> int:
    """Blank the face crops of stored events (``events.sqlite3`` beside the gallery) that name
    these people: biometric data must not outlive their deletion. The one place every delete
    goes through (HTTP, CLI, the CompreFace and DeepStack routes)."""
    from facelens.events.log import forget_crops_in  # the light event log, no video code

    return forget_crops_in(data_dir, names)


@contextmanager
def renaming_events(data_dir: Path) -> Iterator[Callable[[str, str], None]]:
    """Within a gallery transaction that renames a person or merges them into another: a call
    giving their stored events (``events.sqlite3`` beside the gallery) the new name, so that
    deleting them later blanks the crops of their events, which name them by the name they had
    when recorded. Undone if the transaction fails after it. The one place every rename and
    merge goes through (HTTP, CLI, the CompreFace route)."""
    from facelens.events.log import rename_in, undo_rename_in

    done: list[Renamed] = []

    def rename(old: str, new: str) -> None:
        renamed = rename_in(data_dir, old, new)
        if renamed is not None:
            done.append(renamed)

    try:
        yield rename
    except BaseException:
        for renamed in done:  # the gallery keeps the old name: so do the events
            try:
                undo_rename_in(data_dir, renamed)
            except StorageError as exc:
                log.error(
                    "the events of %r keep the name %r after a failed rename: %s; rename "
                    "them again (or the person back) to put them in line",
                    renamed.old,
                    renamed.new,
                    exc,
                )
        raise


def _not_found(name: str) -> NotFound:
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


class SQLiteGallery(StoredFaces):
    """:class:`~facelens.gallery.base.Gallery` on one SQLite file; safe to share across threads.

    Opening it upgrades its schema and binds it to a model profile: the one it was built with,
    or, for a new gallery, ``model`` (the default profile when None). Asking for another model
    than the one it was built with is a :class:`ModelError` naming both and the way out.
    """

    def __init__(
        self, path: Path, model: ModelName | None = None, *, read_only: bool = False
    ) -> None:
        # A file that does not exist yet is created, so it is opened for writing.
        super().__init__(path, read_only=read_only and path.is_file())
        copies: list[tuple[int, Path]] = []  # the file as it was before a schema upgrade
        try:
            profile = self._stored_profile() if self.read_only else None
            if profile is None:  # a new gallery, or one whose schema must be upgraded first
                self._open_for_writing()
                with self._transaction() as db:
                    schema.upgrade(
                        db, before=lambda v: copies.append((v, self.backup_before_upgrade(v)))
                    )
                    profile = schema.bound_profile(db)
                    if profile is None:
                        profile = profile_for(model)
                        schema.record_profile(db, profile)
        except BaseException:
            self._db.close()
            for _, copy in copies:  # nothing was changed: the copy holds nothing more
                copy.unlink(missing_ok=True)
            raise
        for version, copy in copies:
            log.warning(
                "gallery %s: upgraded from schema version %d to %d; the file as it was is kept "
                "in %s, to go back to the earlier facelens (it holds biometric data: delete it "
                "once this version has proven itself)",
                path,
                version,
                schema.LATEST,
                copy,
            )
        if model is not None and model != profile.name:
            self._db.close()
            raise ModelError(
                f"The gallery {path} was built with the {profile.name} model ({profile.id}), "
                f"but the {model} model was asked for: their distances are not comparable. "
                f"Run 'facelens gallery migrate --model {model}' to re-embed it, leave the model "
                f"unset to use {profile.name}, or choose another --data-dir."
            )
        self.profile = profile

    def _stored_profile(self) -> ModelProfile | None:
        with self._lock, self._db.reading(self._failure) as db:
            return schema.stored_profile(db)

    @staticmethod
    def _person_id(db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise _not_found(name)
        return int(row[0])

    # -- people -----------------------------------------------------------------------------

    @staticmethod
    def _same_identity(db: sqlite3.Connection, name: str, besides: str | None = None) -> str | None:
        """The stored name (other than ``besides``) that is the same person as ``name`` (it
        looks alike: see ``name_keys``), if any."""
        for (stored,) in db.execute("SELECT name FROM people"):
            if str(stored) != besides and looks_alike(str(stored), name):
                return str(stored)
        return None

    def _create(self, db: sqlite3.Connection, name: str, *, new: bool = False) -> None:
        """Create ``name`` unless it exists as spelled (with ``new``, that is a conflict too);
        another spelling of it is a conflict."""
        if db.execute("SELECT 1 FROM people WHERE name = ?", (name,)).fetchone():
            if new:
                raise _exists(name)
            return  # the usual case (a file enrolled for an existing person): no scan
        stored = self._same_identity(db, name)
        if stored is not None:
            raise _lookalike(name, stored)
        check_new_name(name)
        db.execute("INSERT INTO people (name, created_at) VALUES (?, ?)", (name, now_text()))

    def add_person(self, name: str) -> PersonSummary:
        name = normalize_name(name)
        with self._transaction() as db:
            self._create(db, name, new=True)
            self._bump(db)
        return PersonSummary(name, 0)

    def check_new_person(self, name: str) -> str:
        """``name`` as it would be stored, if a person of that name could be created now; the
        :class:`Conflict` :meth:`add_person` would raise if not. Writes nothing: a caller
        checks before long work (analysing photos), then creates with the first face."""
        name = normalize_name(name)
        if self._read("SELECT 1 FROM people WHERE name = ?", (name,)):
            raise _exists(name)
        for (stored,) in self._read("SELECT name FROM people"):
            if looks_alike(str(stored), name):
                raise _lookalike(name, str(stored))
        check_new_name(name)
        return name

    def ensure_person(self, name: str) -> PersonSummary:
        name = normalize_name(name)
        with self._transaction() as db:
            self._create(db, name)
            count = db.execute(
                "SELECT COUNT(f.id) FROM people p LEFT JOIN faces f ON f.person_id = p.id "
                "WHERE p.name = ?",
                (name,),
            ).fetchone()[0]
        return PersonSummary(name, int(count))

    def person(self, name: str) -> PersonSummary:
        name = normalize_name(name)
        rows = self._read(
            "SELECT COUNT(f.id) FROM people p LEFT JOIN faces f ON f.person_id = p.id "
            "WHERE p.name = ? GROUP BY p.id",
            (name,),
        )
        if not rows:
            raise _not_found(name)
        return PersonSummary(name, int(str(rows[0][0])))

    def count_people(self) -> int:
        return int(str(self._read("SELECT COUNT(*) FROM people")[0][0]))

    def list_people(self, offset: int = 0, limit: int | None = None) -> list[PersonSummary]:
        rows = self._read(
            "SELECT p.name, (SELECT COUNT(*) FROM faces f WHERE f.person_id = p.id), "
            "(SELECT MIN(t.face_id) FROM faces f JOIN face_thumbnails t ON t.face_id = f.id "
            "WHERE f.person_id = p.id) FROM people p ORDER BY p.name LIMIT ? OFFSET ?",
            (-1 if limit is None else limit, offset),
        )
        return [
            PersonSummary(str(name), int(str(count)), None if cover is None else int(str(cover)))
            for name, count, cover in rows
        ]

    def _face_rows(self, where: str = "", args: Sequence[object] = ()) -> list[FaceRecord]:
        rows = self._read(
            "SELECT f.id, p.name, s.path, s.sha256, f.box_left, f.box_top, f.box_right, "
            "f.box_bottom, f.created_at, f.sharpness, t.face_id IS NOT NULL FROM faces f "
            "JOIN people p ON p.id = f.person_id LEFT JOIN sources s ON s.id = f.source_id "
            "LEFT JOIN face_thumbnails t ON t.face_id = f.id" + where + " ORDER BY f.id",
            args,
        )
        return [
            FaceRecord(
                int(str(i)),
                str(name),
                None if path is None else str(path),
                None if sha is None else str(sha),
                Box(int(str(left)), int(str(top)), int(str(right)), int(str(bottom))),
                datetime.fromisoformat(str(t)),
                None if sharp is None else float(str(sharp)),
                bool(thumb),
            )
            for i, name, path, sha, left, top, right, bottom, t, sharp, thumb in rows
        ]

    def faces(self, person: str | None = None) -> list[FaceRecord]:
        if person is None:
            return self._face_rows()
        person = normalize_name(person)
        with self._lock:
            self.person(person)
            return self._face_rows(" WHERE p.name = ?", (person,))

    def remove_face(self, person: str, face_id: int) -> None:
        person = normalize_name(person)
        with self._transaction(erases=True) as db:
            person_id = self._person_id(db, person)
            row = db.execute(
                "SELECT source_id FROM faces WHERE id = ? AND person_id = ?", (face_id, person_id)
            ).fetchone()
            if row is None:
                raise NotFound(
                    f"{person!r} has no face with id {face_id}; list their faces to see the ids."
                )
            db.execute("DELETE FROM faces WHERE id = ?", (face_id,))
            # A file with no face left is forgotten, so enrolling it again is not refused.
            db.execute(
                "DELETE FROM sources WHERE id = ? AND NOT EXISTS "
                "(SELECT 1 FROM faces WHERE source_id = ?)",
                (row[0], row[0]),
            )
            self._bump(db)

    def rename_person(self, old: str, new: str) -> PersonSummary:
        old, new = normalize_name(old), normalize_name(new)
        with renaming_events(self.path.parent) as rename_events, self._transaction() as db:
            person = self._person_id(db, old)
            taken = self._same_identity(db, new, besides=old)
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
            self._bump(db)
            if new != old:
                rename_events(old, new)  # last: nothing after it can fail but the commit
        return PersonSummary(new, int(count))

    def remove_person(self, name: str) -> int:
        name = normalize_name(name)
        self.person(name)  # NotFound before anything is touched
        # Their face crops in stored events go first: if that fails, nothing is removed yet
        # and the call can be repeated.
        forget_event_crops(self.path.parent, [name])
        with self._transaction(erases=True) as db:
            person = self._person_id(db, name)
            count = db.execute(
                "SELECT COUNT(*) FROM faces WHERE person_id = ?", (person,)
            ).fetchone()[0]
            db.execute("DELETE FROM people WHERE id = ?", (person,))  # cascades to faces, sources
            self._bump(db)
        return int(count)

    def find_person(self, name: str) -> PersonSummary | None:
        """The person ``name`` names in any case, width or Unicode form (see ``spelling_key``),
        as stored; None if nobody. For APIs whose clients change a name's case. A look-alike of
        a stored name finds nobody: creating it is then refused, never merged into them."""
        name = normalize_name(name)
        with self._lock:
            try:
                return self.person(name)
            except NotFound:
                pass
            key = spelling_key(name)
            for (stored,) in self._read("SELECT name FROM people"):
                if spelling_key(str(stored)) == key:
                    return self.person(str(stored))
            return None

    def lookalikes(self) -> list[list[str]]:
        """Groups of stored names that look alike (see ``name_keys``; a group holds every name
        linked by a chain of look-alikes): stored before facelens refused them, each group is
        probably one person under several names."""
        names = [str(stored) for (stored,) in self._read("SELECT name FROM people ORDER BY name")]
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

    def face(self, face_id: int) -> FaceRecord:
        """One stored face by id, whoever it belongs to; :class:`NotFound` if none."""
        found = self._face_rows(" WHERE f.id = ?", (face_id,))
        if not found:
            raise NotFound(f"No stored face has id {face_id}.")
        return found[0]

    def remove_faces(self, person: str | None = None) -> int:
        """Delete every stored face of ``person`` (who stays, with none), or of everyone."""
        with self._transaction(erases=True) as db:
            if person is None:
                removed = db.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
                db.execute("DELETE FROM sources")  # cascades to faces
                db.execute("DELETE FROM faces")  # faces of no source, if any
            else:
                person_id = self._person_id(db, normalize_name(person))
                removed = db.execute(
                    "SELECT COUNT(*) FROM faces WHERE person_id = ?", (person_id,)
                ).fetchone()[0]
                db.execute("DELETE FROM sources WHERE person_id = ?", (person_id,))
                db.execute("DELETE FROM faces WHERE person_id = ?", (person_id,))
            self._bump(db)
        return int(removed)

    def remove_everyone(self) -> int:
        """Delete every person and face; returns the people removed."""
        forget_event_crops(self.path.parent, [p.name for p in self.list_people()])
        with self._transaction(erases=True) as db:
            removed = db.execute("SELECT COUNT(*) FROM people").fetchone()[0]
            db.execute("DELETE FROM people")  # cascades to sources and faces
            self._bump(db)
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
            renaming_events(self.path.parent) as rename_events,
            self._transaction(erases=True) as db,
        ):
            source, target = self._person_id(db, old), self._person_id(db, into)
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
            self._bump(db)
            count = db.execute(
                "SELECT COUNT(*) FROM faces WHERE person_id = ?", (target,)
            ).fetchone()[0]
            rename_events(old, into)  # last: nothing after it can fail but the commit
        return Merged(into, int(count), old, int(moved), int(dropped))

    # -- enrolment records ------------------------------------------------------------------

    def sources(self, person: str | None = None) -> list[SourceRecord]:
        sql = (
            "SELECT p.name, s.sha256, s.path, s.status, s.reason, s.created_at "
            "FROM sources s JOIN people p ON p.id = s.person_id"
        )
        rows = (
            self._read(sql + " WHERE p.name = ? ORDER BY s.path", (normalize_name(person),))
            if person is not None
            else self._read(sql + " ORDER BY p.name, s.path")
        )
        return [
            SourceRecord(
                str(n),
                str(h),
                str(p),
                str(s),
                None if r is None else str(r),
                datetime.fromisoformat(str(t)),
            )
            for n, h, p, s, r, t in rows
        ]

    def holders(self, sha256s: Sequence[str]) -> list[Holder]:
        """Who holds faces of the photos with these SHA-256s (of the file's bytes), with the
        ids of those faces: a photo keeps its hash through renames, merges and moves, so a
        client enrolling a folder again finds where its photos went."""
        found: dict[tuple[str, str], list[int]] = {}
        wanted = sorted({h.lower() for h in sha256s})
        for start in range(0, len(wanted), 500):  # under SQLite's limit of bound values
            chunk = wanted[start : start + 500]
            rows = self._read(
                "SELECT s.sha256, p.name, f.id FROM sources s JOIN people p ON p.id = s.person_id "
                "JOIN faces f ON f.source_id = s.id WHERE s.sha256 IN "
                f"({', '.join('?' * len(chunk))}) ORDER BY s.sha256, p.name, f.id",
                chunk,
            )
            for sha, name, face_id in rows:
                found.setdefault((str(sha), str(name)), []).append(int(str(face_id)))
        return [Holder(sha, name, tuple(ids)) for (sha, name), ids in found.items()]

    def record_source(
        self,
        person: str,
        sha256: str,
        path: str,
        faces: Sequence[NewFace],
        reason: str | None,
        *,
        new_person: bool = False,
    ) -> list[int]:
        person = normalize_name(person)
        now = now_text()
        with self._transaction() as db:
            self._require_bound(db)  # never store vectors of one model in another's gallery
            self._create(db, person, new=new_person)
            person_id = self._person_id(db, person)
            db.execute("DELETE FROM sources WHERE person_id = ? AND path = ?", (person_id, path))
            cursor = db.execute(
                "INSERT INTO sources (person_id, path, sha256, status, reason, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (person_id, path, sha256, "enrolled" if faces else "skipped", reason, now),
            )
            source_id = cursor.lastrowid
            ids = []
            for f in faces:
                face_id = int(
                    db.execute(
                        "INSERT INTO faces (person_id, source_id, embedding, box_left, box_top, "
                        "box_right, box_bottom, created_at, sharpness) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                        (
                            person_id,
                            source_id,
                            np.ascontiguousarray(f.embedding, dtype="<f4").tobytes(),
                            f.box.left,
                            f.box.top,
                            f.box.right,
                            f.box.bottom,
                            now,
                            f.sharpness,
                        ),
                    ).fetchone()[0]
                )
                if f.thumbnail is not None:
                    db.execute("INSERT INTO face_thumbnails VALUES (?, ?)", (face_id, f.thumbnail))
                ids.append(face_id)
            self._bump(db)
        return ids

    def remove_sources(self, person: str, paths: Sequence[str]) -> int:
        person = normalize_name(person)
        removed = 0
        with self._transaction(erases=True) as db:
            person_id = self._person_id(db, person)
            for path in paths:
                removed += db.execute(
                    "SELECT COUNT(*) FROM faces f JOIN sources s ON s.id = f.source_id "
                    "WHERE s.person_id = ? AND s.path = ?",
                    (person_id, path),
                ).fetchone()[0]
                db.execute(
                    "DELETE FROM sources WHERE person_id = ? AND path = ?", (person_id, path)
                )
            self._bump(db)
        return removed

    def set_thumbnail(self, face_id: int, jpeg: bytes, sharpness: float | None) -> None:
        """Keep ``jpeg`` as the thumbnail of face ``face_id`` (made after it was enrolled)."""
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM faces WHERE id = ?", (face_id,)).fetchone() is None:
                raise NotFound(f"No stored face has id {face_id}.")
            db.execute("INSERT OR REPLACE INTO face_thumbnails VALUES (?, ?)", (face_id, jpeg))
            db.execute(
                "UPDATE faces SET sharpness = COALESCE(?, sharpness) WHERE id = ?",
                (sharpness, face_id),
            )

    # -- moving faces -----------------------------------------------------------------------

    def move_face(self, person: str, face_id: int, to: str) -> PersonSummary:
        """Give ``person``'s face ``face_id`` (and the record of its photo) to ``to``, who must
        exist. If ``to`` holds the same photo already, the face is dropped as a duplicate."""
        person, to = normalize_name(person), normalize_name(to)
        with self._transaction() as db:
            source, target = self._person_id(db, person), self._person_id(db, to)
            row = db.execute(
                "SELECT f.source_id, s.path FROM faces f LEFT JOIN sources s ON s.id = f.source_id "
                "WHERE f.id = ? AND f.person_id = ?",
                (face_id, source),
            ).fetchone()
            if row is None:
                raise NotFound(
                    f"{person!r} has no face with id {face_id}; list their faces to see the ids."
                )
            source_id, path = row
            held = db.execute(
                "SELECT 1 FROM sources WHERE person_id = ? AND path = ?", (target, path)
            ).fetchone()
            if source != target and held:
                db.execute("DELETE FROM faces WHERE id = ?", (face_id,))
            elif source != target:
                db.execute("UPDATE faces SET person_id = ? WHERE id = ?", (target, face_id))
                db.execute(
                    "UPDATE sources SET person_id = ? WHERE id = ? AND NOT EXISTS (SELECT 1 FROM "
                    "faces WHERE source_id = ? AND person_id = ?)",
                    (target, source_id, source_id, source),
                )
            db.execute(
                "DELETE FROM sources WHERE id = ? AND NOT EXISTS "
                "(SELECT 1 FROM faces WHERE source_id = ?)",
                (source_id, source_id),
            )
            self._bump(db)
            count = db.execute(
                "SELECT COUNT(*) FROM faces WHERE person_id = ?", (target,)
            ).fetchone()[0]
        return PersonSummary(to, int(count))
