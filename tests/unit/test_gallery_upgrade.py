"""Upgrading a gallery made by an older facelens: the numbered migrations run once, and the
file as it was is copied beside it first (docs/upgrading.md)."""

from __future__ import annotations

import logging
import sqlite3
import stat
from pathlib import Path

import pytest

import facelens.gallery.file
from facelens.errors import StorageError
from facelens.gallery import SQLiteGallery, schema
from facelens.models.profiles import PROFILES
from tests.unit.test_gallery import v1_gallery


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def copies(folder: Path) -> list[Path]:
    return sorted(folder.glob("g.sqlite3.schema-v*.bak"))


def test_an_older_gallery_is_copied_beside_itself_before_its_schema_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = v1_gallery(tmp_path / "g.sqlite3", model_id=PROFILES["dlib"].id, faces=2)
    faces_before = rows(path, "SELECT * FROM faces ORDER BY id")
    with caplog.at_level(logging.WARNING):
        gallery = SQLiteGallery(path)
    assert gallery.list_people()[0].faces == 2
    gallery.close()
    (copy,) = copies(tmp_path)
    assert copy.name.startswith("g.sqlite3.schema-v1-")
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600  # biometric data: its owner's only
    # The copy is the file as it was: version 1, the same faces, none of the new tables.
    assert rows(copy, "SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]
    assert rows(copy, "SELECT * FROM faces ORDER BY id") == faces_before
    assert rows(copy, "SELECT name FROM sqlite_master WHERE name = 'face_thumbnails'") == []
    assert rows(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(schema.LATEST),)
    ]
    (said,) = [r.getMessage() for r in caplog.records if "upgraded" in r.getMessage()]
    assert f"from schema version 1 to {schema.LATEST}" in said and str(copy) in said
    # Upgraded once: opening it again copies nothing; a new gallery has nothing to copy.
    SQLiteGallery(path).close()
    SQLiteGallery(tmp_path / "new" / "g.sqlite3").close()
    assert copies(tmp_path) == [copy] and copies(tmp_path / "new") == []


def test_a_failed_upgrade_changes_nothing_and_keeps_no_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = v1_gallery(tmp_path / "g.sqlite3", model_id=None, faces=1)

    def broken(db: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setitem(schema.MIGRATIONS, schema.LATEST, broken)
    with pytest.raises(StorageError):
        SQLiteGallery(path)
    assert copies(tmp_path) == []
    assert rows(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]


def test_no_copy_no_upgrade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy that cannot be made (a full disk, say) stops the upgrade before it starts."""
    path = v1_gallery(tmp_path / "g.sqlite3", model_id=None, faces=1)

    def full(source: sqlite3.Connection, target: Path, *_: object) -> None:
        target.write_bytes(b"half a copy")
        raise StorageError(f"Cannot write the backup {target}: the disk is full.")

    monkeypatch.setattr(facelens.gallery.file, "online_copy", full)
    with pytest.raises(StorageError, match="a copy of it is made first, which failed") as failed:
        SQLiteGallery(path)
    assert "Nothing was changed" in failed.value.message
    assert copies(tmp_path) == []  # no half copy left to be mistaken for one
    assert rows(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]
