"""The embedded gallery: one SQLite file in WAL mode under the data directory, made of its
parts — the file (transactions, health, backups, the model it is bound to), its people, their
faces and the files they came from, and the stored vectors with the index matching uses.

Each enrolled file is written in its own transaction, so an interrupted enrolment keeps what
was committed and leaves no half-written file behind.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from facelens.core.matching import GalleryIndex
from facelens.errors import ModelError
from facelens.gallery import schema
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
from facelens.gallery.file import GalleryFile
from facelens.gallery.people import People
from facelens.gallery.vectors import StoredVectors
from facelens.models.base import Embeddings
from facelens.models.profiles import ModelProfile, profile_for
from facelens.settings import ModelName

log = logging.getLogger(__name__)


class SQLiteGallery:
    """:class:`~facelens.gallery.base.Gallery` on one SQLite file; safe to share across threads.

    Opening it upgrades its schema and binds it to a model profile: the one it was built with,
    or, for a new gallery, ``model`` (the default profile when None). Asking for another model
    than the one it was built with is a :class:`ModelError` naming both and the way out.
    """

    def __init__(
        self, path: Path, model: ModelName | None = None, *, read_only: bool = False
    ) -> None:
        # A file that does not exist yet is created, so it is opened for writing.
        self.file = GalleryFile(path, read_only=read_only and path.is_file())
        copies: list[tuple[int, Path]] = []  # the file as it was before a schema upgrade
        try:
            profile = self._stored_profile() if self.file.read_only else None
            if profile is None:  # a new gallery, or one whose schema must be upgraded first
                self.file.open_for_writing()
                with self.file.transaction() as db:
                    schema.upgrade(
                        db, before=lambda v: copies.append((v, self.file.backup_before_upgrade(v)))
                    )
                    profile = schema.bound_profile(db)
                    if profile is None:
                        profile = profile_for(model)
                        schema.record_profile(db, profile)
        except BaseException:
            self.file.close()
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
            self.file.close()
            raise ModelError(
                f"The gallery {path} was built with the {profile.name} model ({profile.id}), "
                f"but the {model} model was asked for: their distances are not comparable. "
                f"Run 'facelens gallery migrate --model {model}' to re-embed it, leave the model "
                f"unset to use {profile.name}, or choose another --data-dir."
            )
        self.file.profile = profile
        self._people = People(self.file)
        self._faces = Faces(self.file)
        self.vectors = StoredVectors(self.file)

    def _stored_profile(self) -> ModelProfile | None:
        with self.file.lock, self.file._db.reading() as db:
            return schema.stored_profile(db)

    # -- the file -----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.file.path

    @property
    def profile(self) -> ModelProfile:
        return self.file.profile

    @property
    def read_only(self) -> bool:
        return self.file.read_only

    @property
    def damaged(self) -> str | None:
        return self.file.damaged

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
        self.file.switch_model(profile, kept, expected)

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
