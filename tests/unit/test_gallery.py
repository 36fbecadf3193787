"""The SQLite gallery: people, Unicode names, model binding, atomic per-file records, caching."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from facelens.errors import Conflict, InvalidValue, ModelError, NotFound, StorageError
from facelens.gallery import NewFace, SQLiteGallery
from facelens.models.base import Box


def face(seed: int) -> NewFace:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return NewFace(vector, Box(1, 2, 30, 40))


@pytest.fixture
def gallery(tmp_path: Path) -> SQLiteGallery:
    return SQLiteGallery(tmp_path / "nested" / "dir" / "gallery.sqlite3")


def test_created_on_first_use_in_wal_mode(gallery: SQLiteGallery) -> None:
    assert gallery.path.is_file()
    mode = sqlite3.connect(gallery.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_people_add_list_rename_remove(gallery: SQLiteGallery) -> None:
    gallery.add_person("张伟")
    gallery.record_source("Zoë", "h1", "/p/1.jpg", [face(1), face(2)], None)
    assert [(p.name, p.faces) for p in gallery.list_people()] == [("Zoë", 2), ("张伟", 0)]
    renamed = gallery.rename_person("Zoë", "Zoë Smith")
    assert (renamed.name, renamed.faces) == ("Zoë Smith", 2)
    assert gallery.remove_person("Zoë Smith") == 2
    assert [p.name for p in gallery.list_people()] == ["张伟"]
    assert len(gallery.index()) == 0


def test_names_are_normalised_so_composed_and_decomposed_are_one(gallery: SQLiteGallery) -> None:
    gallery.add_person("Zoe\u0308")  # e + combining diaeresis
    with pytest.raises(Conflict, match="already exists"):
        gallery.add_person("Zo\u00eb")


@pytest.mark.parametrize("bad", ["", "   ", "tab\tname", "x" * 201])
def test_unusable_names_are_refused(gallery: SQLiteGallery, bad: str) -> None:
    with pytest.raises(InvalidValue):
        gallery.add_person(bad)


def test_rename_onto_an_existing_name_is_a_conflict(gallery: SQLiteGallery) -> None:
    gallery.add_person("a")
    gallery.add_person("b")
    with pytest.raises(Conflict):
        gallery.rename_person("a", "b")
    with pytest.raises(NotFound, match="facelens people list"):
        gallery.rename_person("nobody", "c")
    with pytest.raises(NotFound):
        gallery.remove_person("nobody")


def test_a_gallery_refuses_another_model(gallery: SQLiteGallery) -> None:
    gallery.bind_model("dlib-5pt+dlib-resnet-v1")
    gallery.bind_model("dlib-5pt+dlib-resnet-v1")
    with pytest.raises(ModelError, match="other-model"):
        gallery.bind_model("other-model")
    reopened = SQLiteGallery(gallery.path)
    with pytest.raises(ModelError):
        reopened.bind_model("other-model")


def test_recording_a_changed_file_replaces_its_faces(gallery: SQLiteGallery) -> None:
    gallery.record_source("ann", "old", "/p/a.jpg", [face(1)], None)
    gallery.record_source("ann", "new", "/p/a.jpg", [face(2)], None)
    (source,) = gallery.sources("ann")
    assert source.sha256 == "new"
    assert np.allclose(gallery.index().vectors, face(2).embedding)


def test_skipped_files_are_remembered_without_faces(gallery: SQLiteGallery) -> None:
    gallery.record_source("ann", "h", "/p/group.jpg", [], "2 faces found")
    (source,) = gallery.sources()
    assert (source.status, source.reason) == ("skipped", "2 faces found")
    assert gallery.list_people()[0].faces == 0


def test_index_follows_changes_and_groups_by_person(gallery: SQLiteGallery) -> None:
    gallery.record_source("a", "1", "/a1", [face(1)], None)
    first = gallery.index()
    assert gallery.index() is first  # cached while nothing changes
    gallery.record_source("b", "2", "/b1", [face(2), face(3)], None)
    second = gallery.index()
    assert second.names == ("a", "b") and len(second) == 3
    assert gallery.remove_sources("b", ["/b1"]) == 2
    assert len(gallery.index()) == 1


def test_changes_by_another_connection_are_seen(gallery: SQLiteGallery) -> None:
    other = SQLiteGallery(gallery.path)
    assert len(gallery.index()) == 0
    other.record_source("a", "1", "/a1", [face(1)], None)
    assert len(gallery.index()) == 1


def test_a_data_dir_that_cannot_be_created_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="another --data-dir"):
        SQLiteGallery(blocker / "data" / "gallery.sqlite3")


def test_a_file_that_is_not_a_gallery_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "gallery.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="not a facelens gallery"):
        SQLiteGallery(path)


def test_a_full_disk_is_a_storage_error_and_loses_nothing(gallery: SQLiteGallery) -> None:
    gallery.record_source("a", "1", "/a1", [face(1)], None)
    pages = sqlite3.connect(gallery.path).execute("PRAGMA page_count").fetchone()[0]
    # SQLite reports SQLITE_FULL ("database or disk is full") when it cannot grow the file.
    gallery._db.execute(f"PRAGMA max_page_count = {pages + 1}")
    with pytest.raises(StorageError, match="disk is full"):
        gallery.record_source("b", "2", "/b1", [face(n) for n in range(2, 200)], None)
    assert [(p.name, p.faces) for p in gallery.list_people()] == [("a", 1)]
    assert len(gallery.index()) == 1
