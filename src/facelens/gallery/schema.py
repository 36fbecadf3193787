"""The gallery's SQLite schema, its numbered migrations, and the model it is bound to.

A new gallery is created at the latest version. An older one is brought up to date when opened,
one numbered migration at a time, all in the one transaction that records the version: a
migration that fails leaves the file as it was. Before the first migration runs, the caller is
told (``before``) so that it can copy the file as it was (``SQLiteGallery`` does, beside it): an
older facelens refuses a newer schema, so the copy is the way back. Never edit a released
migration; add one. docs/upgrading.md says what an upgrade does to each file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from facelens.errors import ModelError
from facelens.models.profiles import ModelProfile, profile_named, profile_with_id
from facelens.storage.connection import Connection

_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE people (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE sources (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('enrolled', 'skipped')),
    reason TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (person_id, path)
);
CREATE TABLE faces (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source_id INTEGER REFERENCES sources(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    box_left INTEGER NOT NULL, box_top INTEGER NOT NULL,
    box_right INTEGER NOT NULL, box_bottom INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX faces_person ON faces(person_id);
CREATE INDEX faces_source ON faces(source_id);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO meta VALUES ('revision', '0');
"""


def _statements(script: str) -> list[str]:
    return [s for s in script.split(";") if s.strip()]


def _meta(db: Connection, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set_meta(db: Connection, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def record_profile(db: Connection, profile: ModelProfile) -> None:
    """Bind the gallery to ``profile``: its contract id, name, vector size and metric."""
    _set_meta(db, "model_id", profile.id)
    _set_meta(db, "model", profile.name)
    _set_meta(db, "embedding_dim", str(profile.dim))
    _set_meta(db, "metric", profile.metric)


def _v1_to_v2(db: sqlite3.Connection) -> None:
    """Version 2 records the model profile (name, vector size, metric) beside its id.

    Every version-1 gallery that holds faces was made by dlib, the only model then (its id was
    recorded on first use by the CLI and the server, but a gallery filled by older code paths
    may lack it): it stays a dlib gallery, with no flag needed after the upgrade.
    """
    model_id = _meta(db, "model_id")
    if model_id is None and db.execute("SELECT 1 FROM faces LIMIT 1").fetchone():
        model_id = profile_named("dlib").id
    if model_id is not None:
        record_profile(db, profile_with_id(model_id))


def _v2_to_v3(db: sqlite3.Connection) -> None:
    """Version 3 never gives a deleted face's id to a new face (AUTOINCREMENT): with plain
    rowids, deleting the newest face and enrolling another reused its id, so a stale DELETE
    could remove a newer face. The table is rebuilt with the same rows and ids."""
    db.execute(
        "CREATE TABLE faces_v3 ("
        "id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE, "
        "source_id INTEGER REFERENCES sources(id) ON DELETE CASCADE, "
        "embedding BLOB NOT NULL, "
        "box_left INTEGER NOT NULL, box_top INTEGER NOT NULL, "
        "box_right INTEGER NOT NULL, box_bottom INTEGER NOT NULL, "
        "created_at TEXT NOT NULL)"
    )
    db.execute(
        "INSERT INTO faces_v3 (id, person_id, source_id, embedding, box_left, box_top, "
        "box_right, box_bottom, created_at) SELECT id, person_id, source_id, embedding, "
        "box_left, box_top, box_right, box_bottom, created_at FROM faces"
    )
    db.execute("DROP TABLE faces")
    db.execute("ALTER TABLE faces_v3 RENAME TO faces")
    db.execute("CREATE INDEX faces_person ON faces(person_id)")
    db.execute("CREATE INDEX faces_source ON faces(source_id)")


def _v3_to_v4(db: sqlite3.Connection) -> None:
    """Version 4 keeps, per face, how sharp it was (for the gallery review) and a small JPEG of
    it (shown on the web console, and enough to re-embed it with another model). Faces stored
    before have neither."""
    db.execute("ALTER TABLE faces ADD COLUMN sharpness REAL")
    db.execute(
        "CREATE TABLE face_thumbnails ("
        "face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE, "
        "jpeg BLOB NOT NULL)"
    )


# Version n is reached by MIGRATIONS[n] from version n - 1.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    2: _v1_to_v2,
    3: _v2_to_v3,
    4: _v3_to_v4,
}
LATEST = max(MIGRATIONS)


def _refuse_newer(version: int) -> None:
    if version > LATEST:
        raise ModelError(
            f"The gallery has schema version {version}, made by a newer facelens than this one "
            f"(which knows up to {LATEST}); upgrade facelens."
        )


def upgrade(db: sqlite3.Connection, before: Callable[[int], None] | None = None) -> None:
    """Create the schema, or bring it to :data:`LATEST`; the caller holds a write transaction.
    ``before(version)`` is called before an existing gallery's schema is changed."""
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not exists:
        for statement in _statements(_TABLES):
            db.execute(statement)
    version = int(_meta(db, "schema_version") or 1)
    _refuse_newer(version)
    if exists and version < LATEST and before is not None:
        before(version)
    for target in range(version + 1, LATEST + 1):
        MIGRATIONS[target](db)
        _set_meta(db, "schema_version", str(target))


def stored_profile(db: sqlite3.Connection) -> ModelProfile | None:
    """The profile of a gallery that can be read as it is, without writing: None if its schema
    must first be created or upgraded, or it is bound to no model yet."""
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not exists:
        return None
    version = schema_version(db)
    _refuse_newer(version)
    return bound_profile(db) if version == LATEST else None


def bound_profile(db: Connection) -> ModelProfile | None:
    """The profile the gallery is bound to, None if it is not bound yet."""
    model_id = _meta(db, "model_id")
    return None if model_id is None else profile_with_id(model_id)


def require_bound(db: Connection, profile: ModelProfile, where: str) -> None:
    """Refuse (:class:`ModelError`) if another process moved the gallery at ``where`` to
    another model than ``profile``, the one this process runs."""
    now = bound_profile(db)
    if now is not None and now.id != profile.id:
        raise ModelError(
            f"The gallery {where} was migrated to the {now.name} model while this "
            f"process runs {profile.name}; restart it to use the migrated gallery."
        )


def schema_version(db: sqlite3.Connection) -> int:
    return int(_meta(db, "schema_version") or 1)
