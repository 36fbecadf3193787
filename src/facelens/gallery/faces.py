"""The faces of a gallery and the files they came from: stored with their vectors and
thumbnails (one file's faces in one transaction), listed, moved between people, removed; and
the records folder enrolment keeps of every file it saw."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from facelens.errors import NotFound
from facelens.gallery.base import (
    FaceRecord,
    Holder,
    NewFace,
    PersonSummary,
    SourceRecord,
    normalize_name,
)
from facelens.gallery.people import create, id_of, not_found
from facelens.gallery.store import GalleryStore
from facelens.gallery.vectors import PUT_THUMBNAIL
from facelens.models.base import Box
from facelens.storage.sqlite import now_text


class Faces:
    """The faces and enrolment records of one gallery file; safe to share across threads."""

    def __init__(self, file: GalleryStore) -> None:
        self.file = file

    def _face_rows(self, where: str = "", args: Sequence[object] = ()) -> list[FaceRecord]:
        rows = self.file.read(
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
        with self.file.lock:
            if not self.file.read("SELECT 1 FROM people WHERE name = ?", (person,)):
                raise not_found(person)
            return self._face_rows(" WHERE p.name = ?", (person,))

    def face(self, face_id: int) -> FaceRecord:
        """One stored face by id, whoever it belongs to; :class:`NotFound` if none."""
        found = self._face_rows(" WHERE f.id = ?", (face_id,))
        if not found:
            raise NotFound(f"No stored face has id {face_id}.")
        return found[0]

    def remove_face(self, person: str, face_id: int) -> None:
        person = normalize_name(person)
        with self.file.transaction(erases=True) as db:
            person_id = id_of(db, person)
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
            self.file.bump(db)

    def remove_faces(self, person: str | None = None) -> int:
        """Delete every stored face of ``person`` (who stays, with none), or of everyone."""
        with self.file.transaction(erases=True) as db:
            if person is None:
                removed = db.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
                db.execute("DELETE FROM sources")  # cascades to faces
                db.execute("DELETE FROM faces")  # faces of no source, if any
            else:
                person_id = id_of(db, normalize_name(person))
                removed = db.execute(
                    "SELECT COUNT(*) FROM faces WHERE person_id = ?", (person_id,)
                ).fetchone()[0]
                db.execute("DELETE FROM sources WHERE person_id = ?", (person_id,))
                db.execute("DELETE FROM faces WHERE person_id = ?", (person_id,))
            self.file.bump(db)
        return int(removed)

    def move_face(self, person: str, face_id: int, to: str) -> PersonSummary:
        """Give ``person``'s face ``face_id`` (and the record of its photo) to ``to``, who must
        exist. If ``to`` holds the same photo already, the face is dropped as a duplicate."""
        person, to = normalize_name(person), normalize_name(to)
        with self.file.transaction() as db:
            source, target = id_of(db, person), id_of(db, to)
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
            self.file.bump(db)
            count = db.execute(
                "SELECT COUNT(*) FROM faces WHERE person_id = ?", (target,)
            ).fetchone()[0]
        return PersonSummary(to, int(count))

    def sources(self, person: str | None = None) -> list[SourceRecord]:
        sql = (
            "SELECT p.name, s.sha256, s.path, s.status, s.reason, s.created_at "
            "FROM sources s JOIN people p ON p.id = s.person_id"
        )
        rows = (
            self.file.read(sql + " WHERE p.name = ? ORDER BY s.path", (normalize_name(person),))
            if person is not None
            else self.file.read(sql + " ORDER BY p.name, s.path")
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
            rows = self.file.read(
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
        with self.file.transaction() as db:
            self.file.require_bound(db)  # never store vectors of one model in another's gallery
            create(db, person, new=new_person)
            person_id = id_of(db, person)
            db.execute("DELETE FROM sources WHERE person_id = ? AND path = ?", (person_id, path))
            source_id = db.execute(
                "INSERT INTO sources (person_id, path, sha256, status, reason, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (person_id, path, sha256, "enrolled" if faces else "skipped", reason, now),
            ).fetchone()[0]
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
            self.file.bump(db)
        return ids

    def remove_sources(self, person: str, paths: Sequence[str]) -> int:
        person = normalize_name(person)
        removed = 0
        with self.file.transaction(erases=True) as db:
            person_id = id_of(db, person)
            for path in paths:
                removed += db.execute(
                    "SELECT COUNT(*) FROM faces f JOIN sources s ON s.id = f.source_id "
                    "WHERE s.person_id = ? AND s.path = ?",
                    (person_id, path),
                ).fetchone()[0]
                db.execute(
                    "DELETE FROM sources WHERE person_id = ? AND path = ?", (person_id, path)
                )
            self.file.bump(db)
        return removed

    def set_thumbnail(self, face_id: int, jpeg: bytes, sharpness: float | None) -> None:
        """Keep ``jpeg`` as the thumbnail of face ``face_id`` (made after it was enrolled)."""
        with self.file.transaction() as db:
            if db.execute("SELECT 1 FROM faces WHERE id = ?", (face_id,)).fetchone() is None:
                raise NotFound(f"No stored face has id {face_id}.")
            db.execute(PUT_THUMBNAIL, (face_id, jpeg))
            db.execute(
                "UPDATE faces SET sharpness = COALESCE(?, sharpness) WHERE id = ?",
                (sharpness, face_id),
            )
