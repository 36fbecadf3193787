"""The gallery file's health: damage is found on disk (not in a page cache), by a check or by any
operation, and remembered; a full disk is not damage; deleted faces leave no copy in the files;
commands that only read open it read only."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from facelens.errors import GalleryDamaged, StorageError
from facelens.gallery import NewFace, SQLiteGallery
from facelens.models.base import Box

PAGE = 4096


def face(seed: int, thumbnail: bytes | None = None) -> NewFace:
    vector = np.random.default_rng(seed).normal(size=128)
    unit = (vector / np.linalg.norm(vector)).astype(np.float32)
    return NewFace(unit, Box(1, 2, 30, 40), 1.0, thumbnail)


def filled(path: Path, people: int = 300) -> Path:
    """A gallery of ``people`` one-face people, written through to the main file and closed."""
    gallery = SQLiteGallery(path)
    for n in range(people):
        gallery.record_source(f"p{n}", str(n), f"/p{n}.jpg", [face(n)], None)
    gallery.close()  # the last connection: the WAL goes into the file
    return path


def root_page(path: Path, table: str) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    return int(row[0])


def damage(path: Path, page: int) -> None:
    """Overwrite one page of the file in place with junk, as a bad disk would."""
    with path.open("r+b") as handle:
        handle.seek((page - 1) * PAGE)
        handle.write(b"\xa5" * PAGE)


def test_damage_met_by_any_operation_is_remembered_and_stops_every_write(
    tmp_path: Path,
) -> None:
    path = filled(tmp_path / "gallery.sqlite3")
    faces_page = root_page(path, "faces")
    gallery = SQLiteGallery(path)
    damage(path, faces_page)
    gallery.file._vouched = gallery.file._stamp()  # as if the change went unseen
    with pytest.raises(GalleryDamaged, match=r"damaged.*nothing more is written"):
        gallery.faces()
    (problem,) = gallery.health(max_age_s=3600)
    assert "malformed" in problem
    with pytest.raises(GalleryDamaged, match="nothing more is written"):
        gallery.add_person("after")  # its pages are sound, yet it is refused
    gallery.close()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        assert db.execute("SELECT 1 FROM people WHERE name = 'after'").fetchone() is None


def test_a_file_changed_under_the_gallery_is_checked_before_the_next_write(
    tmp_path: Path,
) -> None:
    path = filled(tmp_path / "gallery.sqlite3")
    gallery = SQLiteGallery(path)
    gallery.add_person("before")
    damage(path, root_page(path, "faces"))  # pages the next write does not touch
    with pytest.raises(GalleryDamaged, match="damaged"):
        gallery.add_person("after")
    assert gallery.damaged is not None and gallery.health(max_age_s=3600) == [gallery.damaged]
    gallery.close()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        assert db.execute("SELECT 1 FROM people WHERE name = 'after'").fetchone() is None


def test_the_health_check_sees_damage_that_the_page_cache_hides(tmp_path: Path) -> None:
    path = filled(tmp_path / "gallery.sqlite3")
    gallery = SQLiteGallery(path)
    assert len(gallery.index()) == 300  # every face page is now in the connection's cache
    damage(path, root_page(path, "faces"))
    gallery.file._vouched = gallery.file._stamp()  # as if the change went unseen
    assert gallery.faces()  # the cache still answers...
    (problem,) = gallery.health(max_age_s=0)  # ...but the file on disk is damaged
    assert "damaged" in problem
    gallery.close()


def test_recognition_goes_on_from_the_index_in_memory_once_damage_is_found(
    tmp_path: Path,
) -> None:
    path = filled(tmp_path / "gallery.sqlite3")
    gallery = SQLiteGallery(path)
    index = gallery.index()
    damage(path, root_page(path, "faces"))
    assert gallery.health()
    assert gallery.index() is index
    gallery.close()


def test_a_full_disk_is_not_damage(tmp_path: Path) -> None:
    gallery = SQLiteGallery(tmp_path / "gallery.sqlite3")
    gallery.record_source("a", "1", "/a1", [face(1)], None)
    pages = gallery.file._db.execute("PRAGMA page_count")[0][0]
    gallery.file._db.execute(f"PRAGMA max_page_count = {pages + 1}")
    with pytest.raises(StorageError) as caught:
        gallery.record_source("b", "2", "/b1", [face(n) for n in range(2, 200)], None)
    assert not isinstance(caught.value, GalleryDamaged)
    assert "disk is full" in caught.value.message and "keep the file" in caught.value.message
    assert "move it away" not in caught.value.message and "damaged (" not in caught.value.message
    assert gallery.damaged is None and gallery.health() == []
    gallery.add_person("c")  # writes go on once there is room
    gallery.close()


def test_a_removed_person_leaves_no_copy_in_the_gallery_files(tmp_path: Path) -> None:
    path = tmp_path / "gallery.sqlite3"
    gallery = SQLiteGallery(path)
    gallery.add_person("kept")
    marker = b"\xff\xd8 the-thumbnail-of-zelda " * 20
    secret = face(7, thumbnail=marker)
    gallery.record_source("Zelda Quintessa", "z", "/z.jpg", [secret], None)
    vector = secret.embedding.astype("<f4").tobytes()
    files = [path, path.with_name(path.name + "-wal")]
    assert any(vector in f.read_bytes() for f in files if f.exists())
    gallery.remove_person("Zelda Quintessa")
    for held in (f.read_bytes() for f in files if f.exists()):
        assert vector not in held and marker[:40] not in held
        assert b"Zelda Quintessa" not in held
    assert [p.name for p in gallery.list_people()] == ["kept"]
    gallery.close()


def test_a_read_only_gallery_writes_nothing_and_refuses_writes(tmp_path: Path) -> None:
    path = filled(tmp_path / "gallery.sqlite3", people=3)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    gallery = SQLiteGallery(path, read_only=True)
    assert gallery.read_only and [p.name for p in gallery.list_people()] == ["p0", "p1", "p2"]
    assert len(gallery.index()) == 3
    with pytest.raises(StorageError, match="only for reading"):
        gallery.add_person("x")
    gallery.close()
    assert path.stat().st_mtime_ns == before[path.name]


def test_an_older_gallery_opened_read_only_is_upgraded_first(tmp_path: Path) -> None:
    path = filled(tmp_path / "gallery.sqlite3", people=1)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        db.execute("DROP TABLE face_thumbnails")
        db.execute("ALTER TABLE faces DROP COLUMN sharpness")
    gallery = SQLiteGallery(path, read_only=True)
    assert not gallery.read_only and gallery.faces()[0].sharpness is None
    gallery.close()
