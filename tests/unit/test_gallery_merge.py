"""People made one (merge), people made only with a face (new_person), and who holds a photo:
the gallery side of one person enrolled under two names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelens.errors import Conflict, InvalidValue, NotFound
from facelens.gallery import NewFace, SQLiteGallery
from facelens.models.base import Box


def face(seed: int, thumbnail: bytes | None = None) -> NewFace:
    vector = np.random.default_rng(seed).normal(size=128)
    return NewFace(
        (vector / np.linalg.norm(vector)).astype(np.float32), Box(1, 2, 30, 40), 50.0, thumbnail
    )


@pytest.fixture
def gallery(tmp_path: Path) -> SQLiteGallery:
    return SQLiteGallery(tmp_path / "gallery.sqlite3")


def test_merging_moves_every_face_with_its_thumbnail_and_photo_record(
    gallery: SQLiteGallery,
) -> None:
    gallery.record_source("Tom Cruise", "a" * 64, "/in/Tom Cruise/1.jpg", [face(1)], None)
    moving = [
        gallery.record_source("tom", "b" * 64, "/in/tom/2.jpg", [face(2, b"jpeg-2")], None)[0],
        gallery.record_source("tom", "c" * 64, "upload:3.jpg#cccccccccccc", [face(3)], None)[0],
    ]
    gallery.record_source("tom", "d" * 64, "/in/tom/blank.jpg", [], "no face found")
    merged = gallery.merge_person("tom", "Tom Cruise")
    assert (merged.name, merged.faces, merged.source, merged.moved, merged.dropped) == (
        "Tom Cruise",
        3,
        "tom",
        2,
        0,
    )
    assert [p.name for p in gallery.list_people()] == ["Tom Cruise"]
    assert {f.id for f in gallery.faces("Tom Cruise")} >= set(moving)
    assert gallery.thumbnail(moving[0], "Tom Cruise") == b"jpeg-2"
    # The records go along (skipped ones too): folder enrolment finds where the folder went.
    assert {s.path for s in gallery.sources("Tom Cruise")} == {
        "/in/Tom Cruise/1.jpg",
        "/in/tom/2.jpg",
        "upload:3.jpg#cccccccccccc",
        "/in/tom/blank.jpg",
    }
    index = gallery.index()
    assert (index.names, len(index.vectors)) == (("Tom Cruise",), 3)


def test_merging_keeps_a_photo_both_held_once_and_says_so(gallery: SQLiteGallery) -> None:
    same = "upload:a.jpg#aaaaaaaaaaaa"
    gallery.record_source("Tom Cruise", "a" * 64, same, [face(1)], None)
    gallery.record_source("tom", "a" * 64, same, [face(1)], None)
    gallery.record_source("tom", "b" * 64, "upload:b.jpg#bbbbbbbbbbbb", [face(2)], None)
    merged = gallery.merge_person("tom", "Tom Cruise")
    assert (merged.faces, merged.moved, merged.dropped) == (2, 1, 1)


def test_merging_a_path_both_hold_with_other_content_keeps_both_faces(
    gallery: SQLiteGallery,
) -> None:
    """The same file name enrolled for both, changed in between: two faces, not one twice."""
    gallery.record_source("Tom Cruise", "a" * 64, "/in/x/1.jpg", [face(1)], None)
    (kept,) = gallery.record_source("tom", "b" * 64, "/in/x/1.jpg", [face(2)], None)
    merged = gallery.merge_person("tom", "Tom Cruise")
    assert (merged.faces, merged.moved, merged.dropped) == (2, 1, 0)
    assert kept in {f.id for f in gallery.faces("Tom Cruise")}
    assert [(s.path, s.sha256) for s in gallery.sources("Tom Cruise")] == [
        ("/in/x/1.jpg", "a" * 64)
    ]


def test_merging_someone_into_themselves_or_nobody_is_refused_and_changes_nothing(
    gallery: SQLiteGallery,
) -> None:
    gallery.record_source("Tom Cruise", "a" * 64, "/p/1.jpg", [face(1)], None)
    with pytest.raises(InvalidValue, match="one person"):
        gallery.merge_person("Tom Cruise", "Tom Cruise")
    with pytest.raises(NotFound):
        gallery.merge_person("nobody", "Tom Cruise")
    with pytest.raises(NotFound):
        gallery.merge_person("Tom Cruise", "nobody")
    assert [(p.name, p.faces) for p in gallery.list_people()] == [("Tom Cruise", 1)]


def test_merging_erases_the_dropped_duplicates_from_the_file(gallery: SQLiteGallery) -> None:
    same = "upload:a.jpg#aaaaaaaaaaaa"
    gallery.record_source("Tom Cruise", "a" * 64, same, [face(1)], None)
    gallery.record_source("tom", "a" * 64, same, [face(7, b"TOMS-OWN-THUMBNAIL")], None)
    gallery.merge_person("tom", "Tom Cruise")
    gallery.close()
    assert b"TOMS-OWN-THUMBNAIL" not in gallery.path.read_bytes()
    assert not Path(f"{gallery.path}-wal").exists() or (
        b"TOMS-OWN-THUMBNAIL" not in Path(f"{gallery.path}-wal").read_bytes()
    )


def test_a_new_person_is_created_with_their_face_or_not_at_all(gallery: SQLiteGallery) -> None:
    gallery.record_source("Ann", "a" * 64, "upload:1", [face(1)], None, new_person=True)
    with pytest.raises(Conflict, match="already exists"):
        gallery.record_source("Ann", "b" * 64, "upload:2", [face(2)], None, new_person=True)
    with pytest.raises(Conflict, match="same name as 'Ann'"):
        gallery.record_source("ANN", "b" * 64, "upload:2", [face(2)], None, new_person=True)
    assert [(p.name, p.faces) for p in gallery.list_people()] == [("Ann", 1)]


def test_checking_a_new_name_writes_nothing(gallery: SQLiteGallery) -> None:
    gallery.add_person("Tom Cruise")
    assert gallery.check_new_person(" Ann ") == "Ann"
    for taken, why in (("Tom Cruise", "already exists"), ("Tom  Cruise", "same name as")):
        with pytest.raises(Conflict, match=why):
            gallery.check_new_person(taken)
    assert [p.name for p in gallery.list_people()] == ["Tom Cruise"]


def test_who_holds_a_photo_follows_renames_and_merges(gallery: SQLiteGallery) -> None:
    (first,) = gallery.record_source("tom", "a" * 64, "upload:1#a", [face(1)], None)
    gallery.record_source("tom", "b" * 64, "upload:2#b", [], "no face found")
    gallery.rename_person("tom", "Tom Cruise")
    gallery.add_person("Cruise")
    gallery.merge_person("Tom Cruise", "Cruise")
    found = gallery.holders(["A" * 64, "b" * 64, "c" * 64])
    assert [(h.sha256, h.person, h.face_ids) for h in found] == [("a" * 64, "Cruise", (first,))]


def test_who_holds_many_photos_is_asked_in_chunks(gallery: SQLiteGallery) -> None:
    hashes = [f"{n:064x}" for n in range(1200)]
    gallery.record_source("Ann", hashes[-1], "upload:last", [face(1)], None)
    assert [h.sha256 for h in gallery.holders(hashes)] == [hashes[-1]]
