"""A gallery made of its parts — its people, their faces and the files they came from, and the
stored vectors with the index matching uses — over a store of one backend: a SQLite file
(:class:`~facelens.gallery.sqlite.SQLiteGallery`) or a PostgreSQL database shared by several
servers (:class:`~facelens.gallery.postgres.PostgresGallery`). Callers hold this one object."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from facelens.core.matching import GalleryIndex
from facelens.gallery.base import (
    FaceRecord,
    FaceVectors,
    Holder,
    Merged,
    NewFace,
    PersonSummary,
    SourceRecord,
)
from facelens.gallery.faces import Faces
from facelens.gallery.people import People
from facelens.gallery.store import GalleryStore
from facelens.gallery.vectors import StoredVectors
from facelens.models.base import Embeddings
from facelens.models.profiles import ModelProfile


class StoredGallery:
    """:class:`~facelens.gallery.base.Gallery` on one store; safe to share across threads."""

    file: GalleryStore

    def _assemble(self, file: GalleryStore) -> None:
        self.file = file
        self._people = People(file)
        self._faces = Faces(file)
        self.vectors = StoredVectors(file)

    # -- the file -----------------------------------------------------------------------------

    @property
    def profile(self) -> ModelProfile:
        return self.file.profile

    @property
    def read_only(self) -> bool:
        return self.file.read_only

    @property
    def damaged(self) -> str | None:
        return self.file.damaged

    @property
    def where(self) -> str:
        return self.file.where

    @property
    def unreachable(self) -> str | None:
        return self.file.unreachable

    def health(self, max_age_s: float = 0.0) -> list[str]:
        return self.file.health(max_age_s)

    def quick_check(self) -> list[str]:
        return self.file.quick_check()

    def check_writable(self) -> None:
        self.file.check_writable()

    def check_model(self) -> None:
        self.file.check_model()

    def backup(self, target: Path) -> None:
        self.file.backup(target)

    def switch_model(
        self, profile: ModelProfile, kept: Mapping[int, NewFace], expected: Collection[int]
    ) -> None:
        self.vectors.switch_model(profile, kept, expected)

    def close(self) -> None:
        self.file.close()

    # -- people -------------------------------------------------------------------------------

    def add_person(self, name: str) -> PersonSummary:
        return self._people.add_person(name)

    def check_new_person(self, name: str) -> str:
        return self._people.check_new_person(name)

    def ensure_person(self, name: str) -> PersonSummary:
        return self._people.ensure_person(name)

    def person(self, name: str) -> PersonSummary:
        return self._people.person(name)

    def find_person(self, name: str) -> PersonSummary | None:
        return self._people.find_person(name)

    def count_people(self) -> int:
        return self._people.count_people()

    def list_people(self, offset: int = 0, limit: int | None = None) -> list[PersonSummary]:
        return self._people.list_people(offset, limit)

    def lookalikes(self) -> list[list[str]]:
        return self._people.lookalikes()

    def rename_person(self, old: str, new: str) -> PersonSummary:
        return self._people.rename_person(old, new)

    def merge_person(self, old: str, into: str) -> Merged:
        return self._people.merge_person(old, into)

    def remove_person(self, name: str) -> int:
        return self._people.remove_person(name)

    def remove_everyone(self) -> int:
        return self._people.remove_everyone()

    # -- faces and the files they came from -----------------------------------------------------

    def faces(self, person: str | None = None) -> list[FaceRecord]:
        return self._faces.faces(person)

    def face(self, face_id: int) -> FaceRecord:
        return self._faces.face(face_id)

    def remove_face(self, person: str, face_id: int) -> None:
        self._faces.remove_face(person, face_id)

    def remove_faces(self, person: str | None = None) -> int:
        return self._faces.remove_faces(person)

    def move_face(self, person: str, face_id: int, to: str) -> PersonSummary:
        return self._faces.move_face(person, face_id, to)

    def set_thumbnail(self, face_id: int, jpeg: bytes, sharpness: float | None) -> None:
        self._faces.set_thumbnail(face_id, jpeg, sharpness)

    def sources(self, person: str | None = None) -> list[SourceRecord]:
        return self._faces.sources(person)

    def holders(self, sha256s: Sequence[str]) -> list[Holder]:
        return self._faces.holders(sha256s)

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
        return self._faces.record_source(person, sha256, path, faces, reason, new_person=new_person)

    def remove_sources(self, person: str, paths: Sequence[str]) -> int:
        return self._faces.remove_sources(person, paths)

    # -- stored vectors -------------------------------------------------------------------------

    @property
    def bad_faces(self) -> list[int]:
        return self.vectors.bad_faces

    def face_vectors(self) -> FaceVectors:
        return self.vectors.face_vectors()

    def face_vector(self, face_id: int) -> Embeddings:
        return self.vectors.face_vector(face_id)

    def index(self) -> GalleryIndex:
        return self.vectors.index()

    def thumbnail(self, face_id: int, person: str | None = None) -> bytes:
        return self.vectors.thumbnail(face_id, person)
