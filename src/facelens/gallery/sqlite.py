"""The embedded gallery: one SQLite file in WAL mode under the data directory, made of its
parts — the file (transactions, health, backups, the model it is bound to), its people, their
faces and the files they came from, and the stored vectors with the index matching uses.

Each enrolled file is written in its own transaction, so an interrupted enrolment keeps what
was committed and leaves no half-written file behind.
"""

from __future__ import annotations

import logging
from pathlib import Path

from facelens.errors import ModelError
from facelens.gallery import schema
from facelens.gallery.file import GalleryFile
from facelens.gallery.stored import StoredGallery
from facelens.models.profiles import ModelProfile, profile_for
from facelens.settings import ModelName

log = logging.getLogger(__name__)


class SQLiteGallery(StoredGallery):
    """:class:`~facelens.gallery.base.Gallery` on one SQLite file; safe to share across threads.

    Opening it upgrades its schema and binds it to a model profile: the one it was built with,
    or, for a new gallery, ``model`` (the default profile when None). Asking for another model
    than the one it was built with is a :class:`ModelError` naming both and the way out.
    """

    def __init__(
        self, path: Path, model: ModelName | None = None, *, read_only: bool = False
    ) -> None:
        # A file that does not exist yet is created, so it is opened for writing.
        self.file: GalleryFile = GalleryFile(path, read_only=read_only and path.is_file())
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
        self._assemble(self.file)

    def _stored_profile(self) -> ModelProfile | None:
        with self.file.lock, self.file._db.reading() as db:
            return schema.stored_profile(db)

    @property
    def path(self) -> Path:
        return self.file.path
