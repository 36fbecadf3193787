"""What is stored per face, read back: the vectors (and the index matching uses, cached until
the gallery changes), and the small JPEG kept of each face."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence

import numpy as np

from facelens.core.matching import GalleryIndex
from facelens.errors import Conflict, DatabaseUnavailable, GalleryDamaged, NotFound, StorageError
from facelens.gallery import schema
from facelens.gallery.base import FaceVectors, NewFace, normalize_name
from facelens.gallery.store import GalleryStore
from facelens.models.base import Embeddings
from facelens.models.profiles import ModelProfile

log = logging.getLogger(__name__)

# A face's thumbnail, stored or replaced (SQL both backends speak).
PUT_THUMBNAIL = (
    "INSERT INTO face_thumbnails VALUES (?, ?) "
    "ON CONFLICT (face_id) DO UPDATE SET jpeg = excluded.jpeg"
)


class StoredVectors:
    """The stored faces' vectors of a gallery file, the index matching uses (cached until the
    gallery changes), and the thumbnails."""

    def __init__(self, file: GalleryStore) -> None:
        self.file = file
        self.bad_faces: list[int] = []  # stored faces whose vectors are unusable (left out)
        self._cache: tuple[int, GalleryIndex] | None = None

    @property
    def profile(self) -> ModelProfile:
        return self.file.profile

    def face_vectors(self) -> FaceVectors:
        """Every stored face's id, person and embedding, in person and id order; faces with
        unusable vectors are left out (and listed in :attr:`bad_faces`). Read a chunk at a
        time into one matrix and checked a chunk at once: 1e6 faces take the 512 MB matrix
        and one chunk, never every row as well."""
        with self.file.lock:
            self.file.check_model()
            dim = self.profile.dim
            expected = int(self.file.read("SELECT COUNT(*) FROM faces")[0][0])
            matrix = np.empty((expected, dim), dtype="<f4")
            ids: list[int] = []
            people: list[str] = []
            bad: list[int] = []
            kept = 0
            for rows in self.file.stream(
                "SELECT f.id, p.name, f.embedding FROM faces f JOIN people p ON "
                "p.id = f.person_id ORDER BY p.name, f.id"
            ):
                chunk, usable = self._checked([row[2] for row in rows])
                end = kept + int(usable.sum())
                if end > len(matrix):  # faces added since the count
                    matrix = np.concatenate([matrix, np.empty((end - len(matrix), dim), "<f4")])
                matrix[kept:end] = chunk[usable]
                kept = end
                for (face_id, name, _), ok in zip(rows, usable, strict=True):
                    if ok:
                        ids.append(int(face_id))
                        people.append(str(name))
                    else:
                        bad.append(int(face_id))
            if bad and bad != self.bad_faces:
                log.warning(
                    "gallery %s: %d stored faces have unusable vectors and are left out of "
                    "matching (ids %s); 'facelens gallery check' lists them",
                    self.file.where,
                    len(bad),
                    ", ".join(map(str, bad[:20])),
                )
            self.bad_faces = bad
            return FaceVectors(tuple(ids), tuple(people), matrix[:kept])

    def _checked(self, blobs: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Stored vectors as a matrix, and which are usable: the model's size (a blob of any
        other length, no whole number of floats included, is left out), finite, a plausible
        length (one NaN would make every distance NaN)."""
        dim = self.profile.dim
        size = dim * 4
        sized = np.fromiter((len(blob) == size for blob in blobs), bool, len(blobs))
        blank = bytes(size)  # a vector of the wrong size: zeros, left out below
        chunk = np.frombuffer(
            b"".join(blob if ok else blank for blob, ok in zip(blobs, sized, strict=True)),
            dtype="<f4",
        ).reshape(len(blobs), dim)
        low, high = self.profile.norm_range
        with np.errstate(all="ignore"):  # NaN and inf: found unusable just below
            squared = np.einsum("ij,ij->i", chunk, chunk, dtype=np.float64)
            usable = sized & np.isfinite(chunk).all(1) & (squared >= low * low)
            usable &= squared <= high * high
        return chunk, usable

    def face_vector(self, face_id: int) -> Embeddings:
        """One stored face's embedding (CompreFace's verify by ``image_id``); :class:`NotFound`
        if there is no such face, :class:`StorageError` if its vector is unusable."""
        with self.file.lock:
            self.file.check_model()
            rows = self.file.read("SELECT embedding FROM faces WHERE id = ?", (face_id,))
            if not rows:
                raise NotFound(f"No stored face has id {face_id}.")
            vectors, usable = self._checked([rows[0][0]])
            if not usable[0]:
                raise StorageError(
                    f"Stored face {face_id} has an unusable vector: 'facelens gallery check' "
                    "lists such faces."
                )
            found: Embeddings = vectors[0].copy()
            return found

    def index(self) -> GalleryIndex:
        """All embeddings for matching, cached until the gallery changes. Once the file is
        found damaged, the index last read from it (if any) is kept: recognition goes on with
        the people known until then, while nothing more is written."""
        with self.file.lock:
            if self.file.damaged is not None and self._cache is not None:
                return self._cache[1]
            try:
                revision = self.file.revision()
                if self._cache is not None and self._cache[0] == revision:
                    return self._cache[1]
                stored = self.face_vectors()
            except (GalleryDamaged, DatabaseUnavailable):
                # Damage: nothing more is read. A shared database out of reach: what was read
                # last answers until it is back (the change is read then).
                if self._cache is None:
                    raise
                return self._cache[1]
            # Rows come in person order: the matrix is the index's as it is.
            index = GalleryIndex.grouped(stored.people, stored.vectors, self.profile.metric)
            self._cache = (revision, index)
            return index

    def switch_model(
        self, profile: ModelProfile, kept: Mapping[int, NewFace], expected: Collection[int]
    ) -> None:
        """In one transaction: bind the gallery to ``profile``, give each face in ``kept`` its
        new embedding and box (and sharpness and thumbnail, when given; ids stay), delete every
        other face, and forget every file left with no face (so the next enrolment takes them
        afresh). ``expected`` are the face ids the caller planned for: if the gallery changed
        since, nothing is done."""
        with self.file.transaction(erases=True) as db:
            self.file.require_bound(db)
            current = {int(row[0]) for row in db.execute("SELECT id FROM faces")}
            if current != set(expected):
                raise Conflict(
                    f"The gallery {self.file.where} changed while it was being migrated (faces "
                    "were added or removed); nothing was changed. Run the migration again."
                )
            for face_id, face in kept.items():
                db.execute(
                    "UPDATE faces SET embedding = ?, box_left = ?, box_top = ?, box_right = ?, "
                    "box_bottom = ?, sharpness = COALESCE(?, sharpness) WHERE id = ?",
                    (
                        np.ascontiguousarray(face.embedding, dtype="<f4").tobytes(),
                        face.box.left,
                        face.box.top,
                        face.box.right,
                        face.box.bottom,
                        face.sharpness,
                        face_id,
                    ),
                )
                if face.thumbnail is not None:
                    db.execute(PUT_THUMBNAIL, (face_id, face.thumbnail))
            db.executemany(
                "DELETE FROM faces WHERE id = ?", [(i,) for i in sorted(current - set(kept))]
            )
            db.execute(
                "DELETE FROM sources WHERE NOT EXISTS "
                "(SELECT 1 FROM faces WHERE faces.source_id = sources.id)"
            )
            schema.record_profile(db, profile)
            self.file.bump(db)  # the stored vectors' index is read again
        self.file.profile = profile

    # -- thumbnails -------------------------------------------------------------------------

    def thumbnail(self, face_id: int, person: str | None = None) -> bytes:
        """The small JPEG kept of a stored face (of ``person``, when given); :class:`NotFound`
        if there is no such face or none was kept (thumbnails off, or enrolled before)."""
        where, args = "t.face_id = ?", list[object]([face_id])
        if person is not None:
            where += " AND p.name = ?"
            args.append(normalize_name(person))
        rows = self.file.read(
            "SELECT t.jpeg FROM face_thumbnails t JOIN faces f ON f.id = t.face_id "
            "JOIN people p ON p.id = f.person_id WHERE " + where,
            args,
        )
        if not rows:
            raise NotFound(f"No thumbnail is kept of face {face_id}.")
        return _jpeg(rows[0][0])


def _jpeg(value: object) -> bytes:
    assert isinstance(value, bytes), "thumbnails are stored as BLOBs"
    return value
