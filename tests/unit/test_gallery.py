"""The SQLite gallery: people, Unicode names, model binding, atomic per-file records, caching."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from facelens.errors import Conflict, InvalidValue, ModelError, NotFound, StorageError
from facelens.events.event import Event
from facelens.events.log import EventLog
from facelens.gallery import NewFace, SQLiteGallery
from facelens.gallery.base import normalize_name
from facelens.gallery.people import renaming_events
from facelens.gallery.schema import LATEST
from facelens.models.base import Box
from facelens.models.profiles import DEFAULT_MODEL, PROFILES
from facelens.storage.sqlite import check_file


def face(seed: int) -> NewFace:
    """A face with a plausible vector: unit length, as both models' are near."""
    vector = np.random.default_rng(seed).normal(size=128)
    return NewFace((vector / np.linalg.norm(vector)).astype(np.float32), Box(1, 2, 30, 40))


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


def test_a_new_gallery_records_the_default_model_and_keeps_it(gallery: SQLiteGallery) -> None:
    assert gallery.profile is PROFILES[DEFAULT_MODEL]
    meta = dict(sqlite3.connect(gallery.path).execute("SELECT key, value FROM meta").fetchall())
    profile = PROFILES[DEFAULT_MODEL]
    assert (meta["model_id"], meta["model"], meta["embedding_dim"], meta["metric"]) == (
        profile.id,
        profile.name,
        str(profile.dim),
        profile.metric,
    )
    assert meta["schema_version"] == str(LATEST)
    assert SQLiteGallery(gallery.path).profile is profile  # unset: the gallery's own
    assert SQLiteGallery(gallery.path, DEFAULT_MODEL).profile is profile


def test_a_gallery_refuses_another_model_naming_both_and_the_way_out(
    gallery: SQLiteGallery,
) -> None:
    other = next(name for name in PROFILES if name != DEFAULT_MODEL)
    with pytest.raises(ModelError) as refused:
        SQLiteGallery(gallery.path, other)
    message = str(refused.value)
    assert f"built with the {DEFAULT_MODEL} model" in message
    assert f"the {other} model was asked for" in message
    assert f"facelens gallery migrate --model {other}" in message


def test_a_new_gallery_takes_the_model_asked_for(tmp_path: Path) -> None:
    chosen = SQLiteGallery(tmp_path / "g.sqlite3", "dlib")
    assert chosen.profile.name == "dlib"
    assert SQLiteGallery(chosen.path).profile.name == "dlib"


# The schema of version 1 as it shipped: galleries made before model profiles existed.
_V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
CREATE TABLE sources (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    path TEXT NOT NULL, sha256 TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('enrolled', 'skipped')),
    reason TEXT, created_at TEXT NOT NULL, UNIQUE (person_id, path)
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
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO meta VALUES ('revision', '3');
"""


def v1_gallery(path: Path, *, model_id: str | None, faces: int) -> Path:
    db = sqlite3.connect(path)
    db.executescript(_V1_SCHEMA)
    if model_id is not None:
        db.execute("INSERT INTO meta VALUES ('model_id', ?)", (model_id,))
    db.execute("INSERT INTO people VALUES (1, 'ann', '2026-01-01T00:00:00+00:00')")
    for i in range(faces):
        db.execute(
            "INSERT INTO faces VALUES (?, 1, NULL, ?, 1, 2, 30, 40, '2026-01-01T00:00:00+00:00')",
            (i + 1, face(i).embedding.astype("<f4").tobytes()),
        )
    db.commit()
    db.close()
    return path


@pytest.mark.parametrize("recorded", [True, False], ids=["model recorded", "model not recorded"])
def test_a_version_1_dlib_gallery_opens_as_dlib_with_no_flag(
    tmp_path: Path, recorded: bool
) -> None:
    dlib = PROFILES["dlib"]
    path = v1_gallery(tmp_path / "g.sqlite3", model_id=dlib.id if recorded else None, faces=2)
    gallery = SQLiteGallery(path)
    assert gallery.profile is dlib
    assert gallery.list_people()[0].faces == 2
    assert len(gallery.index()) == 2 and gallery.index().metric == "euclidean"
    meta = dict(sqlite3.connect(path).execute("SELECT key, value FROM meta").fetchall())
    assert (meta["schema_version"], meta["model"], meta["revision"]) == (str(LATEST), "dlib", "3")
    if DEFAULT_MODEL != "dlib":
        with pytest.raises(ModelError, match="gallery migrate"):
            SQLiteGallery(path, DEFAULT_MODEL)


def test_an_empty_version_1_gallery_becomes_a_gallery_of_the_default_model(
    tmp_path: Path,
) -> None:
    path = v1_gallery(tmp_path / "g.sqlite3", model_id=None, faces=0)
    assert SQLiteGallery(path).profile.name == DEFAULT_MODEL


def test_a_gallery_from_a_newer_facelens_is_refused(gallery: SQLiteGallery) -> None:
    with sqlite3.connect(gallery.path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(ModelError, match="newer facelens"):
        SQLiteGallery(gallery.path)


def test_a_model_the_gallery_names_but_facelens_does_not_know_is_refused(
    gallery: SQLiteGallery,
) -> None:
    with sqlite3.connect(gallery.path) as db:
        db.execute("UPDATE meta SET value = 'some-other-model' WHERE key = 'model_id'")
    with pytest.raises(ModelError, match="some-other-model"):
        SQLiteGallery(gallery.path)


def test_a_process_whose_gallery_was_migrated_under_it_stops_matching(
    gallery: SQLiteGallery,
) -> None:
    gallery.record_source("a", "1", "/a1", [face(1)], None)
    assert len(gallery.index()) == 1
    other = next(p for p in PROFILES.values() if p.name != DEFAULT_MODEL)
    with sqlite3.connect(gallery.path) as db:  # as 'facelens gallery migrate' would
        db.execute("UPDATE meta SET value = ? WHERE key = 'model_id'", (other.id,))
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'revision'")
    with pytest.raises(ModelError, match=f"migrated to the {other.name} model.*restart"):
        gallery.index()


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
    gallery.file._db.execute(f"PRAGMA max_page_count = {pages + 1}")
    with pytest.raises(StorageError, match="disk is full"):
        gallery.record_source("b", "2", "/b1", [face(n) for n in range(2, 200)], None)
    assert [(p.name, p.faces) for p in gallery.list_people()] == [("a", 1)]
    assert len(gallery.index()) == 1


def test_a_writer_whose_gallery_was_migrated_under_it_stores_nothing(
    gallery: SQLiteGallery,
) -> None:
    other = next(p for p in PROFILES.values() if p.name != DEFAULT_MODEL)
    migrator = SQLiteGallery(gallery.path)
    migrator.switch_model(other, {}, [])
    with pytest.raises(ModelError, match="restart"):
        gallery.record_source("a", "1", "/a1", [face(1)], None)
    assert migrator.faces() == [] and migrator.profile is other


def test_switching_model_keeps_ids_drops_the_rest_and_refuses_a_changed_gallery(
    gallery: SQLiteGallery,
) -> None:
    keep, drop = gallery.record_source("a", "1", "/a1", [face(1), face(2)], None)
    gallery.record_source("a", "2", "/skipped.jpg", [], "no face found")
    other = next(p for p in PROFILES.values() if p.name != DEFAULT_MODEL)
    with pytest.raises(Conflict, match="changed while it was being migrated"):
        gallery.switch_model(other, {keep: face(3)}, [keep])  # did not plan for `drop`
    assert gallery.profile.name == DEFAULT_MODEL and len(gallery.faces()) == 2
    gallery.switch_model(other, {keep: face(3)}, [keep, drop])
    assert [f.id for f in gallery.faces()] == [keep]
    assert np.allclose(gallery.index().vectors, face(3).embedding)
    assert [s.path for s in gallery.sources()] == ["/a1"]  # the skipped file will be retried
    assert SQLiteGallery(gallery.path).profile is other


@pytest.mark.parametrize(
    ("bad", "words"),
    [("x/faces/12", "contains '/'"), ("Unknown", "nobody matches"), ("a\u202eb", "control")],
)
def test_names_that_would_break_the_api_or_mislead_are_refused(
    gallery: SQLiteGallery, bad: str, words: str
) -> None:
    with pytest.raises(InvalidValue, match=words):
        gallery.add_person(bad)


def test_joiners_belong_in_names() -> None:
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # with a ZWNJ
    family = "\U0001f469\u200d\U0001f469\u200d\U0001f467"  # an emoji sequence, with ZWJs
    for name in (persian, family):
        assert normalize_name(name) == name


@pytest.mark.parametrize("other", ["obama", "OBAMA", "\uff4f\uff42\uff41\uff4d\uff41"])
def test_names_differing_only_in_case_or_width_are_one_person(
    gallery: SQLiteGallery, other: str
) -> None:
    gallery.add_person("Obama")
    with pytest.raises(Conflict, match="same name as 'Obama'"):
        gallery.add_person(other)
    with pytest.raises(Conflict, match="same name as 'Obama'"):
        gallery.ensure_person(other)
    with pytest.raises(Conflict, match="same name as 'Obama'"):
        gallery.record_source(other, "h", "/p/x.jpg", [face(1)], None)
    gallery.add_person("Biden")
    with pytest.raises(Conflict, match="already exists"):
        gallery.rename_person("Biden", other)
    assert gallery.rename_person("Obama", "OBAMA").name == "OBAMA"  # re-spelling oneself is fine
    assert [p.name for p in gallery.list_people()] == ["Biden", "OBAMA"]


@pytest.mark.parametrize("damage", [np.nan, np.inf, 40.0], ids=["nan", "inf", "too long"])
def test_an_unusable_stored_vector_is_left_out_and_reported_not_poisoning_all(
    gallery: SQLiteGallery, damage: float
) -> None:
    gallery.record_source("a", "1", "/a1", [face(1)], None)
    (broken,) = gallery.record_source("b", "2", "/b1", [face(2)], None)
    vector = face(2).embedding.copy()
    vector[5] = damage
    with sqlite3.connect(gallery.path) as db:
        db.execute("UPDATE faces SET embedding = ? WHERE id = ?", (vector.tobytes(), broken))
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'revision'")
    index = gallery.index()
    assert index.names == ("a",) and gallery.bad_faces == [broken]
    assert np.isfinite(index.person_distances(face(1).embedding[None])).all()


def test_the_vectors_are_read_a_chunk_at_a_time_into_one_index_whatever_the_chunks(
    gallery: SQLiteGallery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored vectors are read in chunks (here of 4 rows) into one matrix: each person's faces
    together, bad ones left out wherever they fall, and faces stored after the count was read
    (a concurrent enrolment) grow the matrix instead of breaking the load."""
    monkeypatch.setattr("facelens.storage.sqlite.STREAM_ROWS", 4)
    for n in range(25):
        gallery.record_source(f"p{n % 7}", str(n), f"/p{n}.jpg", [face(n)], None)
    broken = [3, 4, 11]  # face ids, in three different chunks
    with sqlite3.connect(gallery.path) as db:
        for face_id in broken:
            db.execute("UPDATE faces SET embedding = x'00' WHERE id = ?", (face_id,))
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'revision'")
    counted = gallery.file.read
    monkeypatch.setattr(  # the count as it was before 20 of the faces were stored
        gallery.file,
        "read",
        lambda sql, args=(): [(5,)] if sql.startswith("SELECT COUNT") else counted(sql, args),
    )
    stored = gallery.face_vectors()
    expected = [(f.id, f.person) for f in sorted(gallery.faces(), key=lambda f: (f.person, f.id))]
    assert list(zip(stored.ids, stored.people, strict=True)) == [
        (i, p) for i, p in expected if i not in broken
    ]
    assert gallery.bad_faces == sorted(broken, key=lambda i: dict(expected)[i])
    for face_id, vector in zip(stored.ids, stored.vectors, strict=True):
        assert np.array_equal(vector, gallery.face_vector(face_id))
    index = gallery.index()
    assert index.names == tuple(sorted({p for _, p in expected}))
    for name, start in zip(index.names, index.starts, strict=True):
        assert stored.people[start] == name


def damage_file(path: Path) -> None:
    """Overwrite the middle of a gallery file with junk, as a bad disk or a copy cut short."""
    data = bytearray(path.read_bytes())
    page = 4096
    last = len(data) // page - 1  # a page of faces, after the schema and the small tables
    data[last * page : (last + 1) * page] = b"\xa5" * page
    path.write_bytes(bytes(data))


def test_a_damaged_gallery_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "gallery.sqlite3"
    gallery = SQLiteGallery(path)
    for n in range(300):
        gallery.record_source(f"p{n}", str(n), f"/p{n}.jpg", [face(n)], None)
    gallery.file._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    gallery.close()
    damage_file(path)
    with pytest.raises(StorageError, match=r"damaged.*gallery backup.*gallery check"):
        SQLiteGallery(path)
    assert check_file(path)  # what 'facelens gallery check' lists


def test_damage_found_while_running_stops_every_write(
    gallery: SQLiteGallery, monkeypatch: pytest.MonkeyPatch
) -> None:
    gallery.add_person("before")
    assert gallery.health() == []
    monkeypatch.setattr(gallery.file, "quick_check", lambda: ["*** in database main ***"])
    (problem,) = gallery.health()
    assert "damaged" in problem and "gallery backup" in problem
    with pytest.raises(StorageError, match="nothing more is written"):
        gallery.add_person("after")
    assert [p.name for p in gallery.list_people()] == ["before"]  # reads still work


def test_a_deleted_face_id_is_never_given_to_a_new_face(gallery: SQLiteGallery) -> None:
    _, newest = gallery.record_source("a", "1", "/a1", [face(1), face(2)], None)
    gallery.remove_face("a", newest)
    (added,) = gallery.record_source("a", "2", "/a2", [face(3)], None)
    assert added > newest  # a stale DELETE of `newest` cannot remove it


def test_a_version_1_gallery_keeps_its_face_ids_through_the_migrations(tmp_path: Path) -> None:
    path = v1_gallery(tmp_path / "g.sqlite3", model_id=None, faces=3)
    gallery = SQLiteGallery(path)
    assert [f.id for f in gallery.faces()] == [1, 2, 3]
    gallery.remove_face("ann", 3)
    (added,) = gallery.record_source("ann", "h", "/p.jpg", [face(9)], None)
    assert added == 4


def with_thumbnail(seed: int, jpeg: bytes, sharp: float = 50.0) -> NewFace:
    return dataclasses.replace(face(seed), thumbnail=jpeg, sharpness=sharp)


def test_a_thumbnail_is_kept_per_face_and_deleted_with_it(gallery: SQLiteGallery) -> None:
    first, second = gallery.record_source(
        "ann", "h1", "/a.jpg", [with_thumbnail(1, b"one"), face(2)], None
    )
    assert gallery.thumbnail(first) == b"one"
    assert gallery.thumbnail(first, "ann") == b"one"
    assert [p.thumbnail_face_id for p in gallery.list_people()] == [first]
    stored = {f.id: f for f in gallery.faces("ann")}
    assert (stored[first].has_thumbnail, stored[first].sharpness) == (True, 50.0)
    assert (stored[second].has_thumbnail, stored[second].sharpness) == (False, None)
    with pytest.raises(NotFound):
        gallery.thumbnail(second)  # none kept of this face
    gallery.add_person("bob")
    with pytest.raises(NotFound):
        gallery.thumbnail(first, "bob")  # not bob's face
    gallery.remove_face("ann", first)
    with pytest.raises(NotFound):
        gallery.thumbnail(first)
    db = sqlite3.connect(gallery.path)
    assert db.execute("SELECT COUNT(*) FROM face_thumbnails").fetchone()[0] == 0  # biometric
    gallery.record_source("ann", "h3", "/c.jpg", [with_thumbnail(3, b"three")], None)
    gallery.remove_person("ann")
    assert db.execute("SELECT COUNT(*) FROM face_thumbnails").fetchone()[0] == 0


def test_moving_a_face_gives_it_and_its_photo_record_to_the_other_person(
    gallery: SQLiteGallery,
) -> None:
    (wrong,) = gallery.record_source("ann", "h1", "/bob.jpg", [face(1)], None)
    gallery.record_source("ann", "h2", "/ann.jpg", [face(2)], None)
    gallery.add_person("bob")
    assert gallery.move_face("ann", wrong, "bob").faces == 1
    assert [f.id for f in gallery.faces("bob")] == [wrong]
    assert [s.path for s in gallery.sources("bob")] == ["/bob.jpg"]
    assert [s.path for s in gallery.sources("ann")] == ["/ann.jpg"]
    assert gallery.index().names == ("ann", "bob")
    with pytest.raises(NotFound):
        gallery.move_face("ann", wrong, "bob")  # no longer ann's
    with pytest.raises(NotFound):
        gallery.move_face("bob", wrong, "nobody")


def test_moving_a_face_onto_a_person_holding_the_same_photo_drops_it(
    gallery: SQLiteGallery,
) -> None:
    (mine,) = gallery.record_source("ann", "h1", "/same.jpg", [face(1)], None)
    (theirs,) = gallery.record_source("bob", "h1", "/same.jpg", [face(1)], None)
    assert gallery.move_face("ann", mine, "bob").faces == 1
    assert [f.id for f in gallery.faces("bob")] == [theirs]
    assert gallery.faces("ann") == [] and gallery.sources("ann") == []


def test_a_version_3_gallery_gains_sharpness_and_thumbnails_empty(tmp_path: Path) -> None:
    path = v1_gallery(tmp_path / "g.sqlite3", model_id=None, faces=2)
    gallery = SQLiteGallery(path)
    assert [(f.sharpness, f.has_thumbnail) for f in gallery.faces()] == [(None, False)] * 2
    assert gallery.list_people()[0].thumbnail_face_id is None


def seen(n: int, name: str, kind: str = "arrived", previous: str | None = None) -> Event:
    """Event ``n`` of track ``n`` on one stream, naming ``name``, with a face crop."""
    return Event(
        f"id{n}",
        kind,  # type: ignore[arg-type]
        "door",
        n,
        name,
        0.3,
        0.9,
        Box(0, 0, 10, 10),
        datetime.now(UTC),
        previous=previous,
        crop=os.urandom(300),
    )


def stored_events(data_dir: Path) -> dict[str, tuple[str, bool]]:
    """Each stored event's name and whether it still has a crop, by id."""
    log = EventLog(data_dir / "events.sqlite3")
    try:
        return {e["id"]: (e["name"], e["crop"] is not None) for _, e in log.events(limit=100)}
    finally:
        log.close()


def test_renamed_or_merged_people_take_their_events_along_and_a_delete_blanks_their_crops(
    tmp_path: Path,
) -> None:
    """Events name a person as they were named when recorded; deleting a person blanks the
    crops of events naming them: so a rename or merge renames their events too."""
    gallery = SQLiteGallery(tmp_path / "gallery.sqlite3")
    for name in ("ann", "bob", "cleo"):
        gallery.add_person(name)
    log = EventLog(tmp_path / "events.sqlite3")  # a stream's, open meanwhile
    log.add([seen(1, "ann"), seen(2, "bob"), seen(3, "cleo"), seen(4, "dan")])
    gallery.rename_person("ann", "anna")
    gallery.merge_person("bob", "cleo")
    assert stored_events(tmp_path) == {
        "id1": ("anna", True),
        "id2": ("cleo", True),
        "id3": ("cleo", True),
        "id4": ("dan", True),
    }
    gallery.remove_person("anna")
    gallery.remove_person("cleo")
    assert stored_events(tmp_path) == {
        "id1": ("anna", False),
        "id2": ("cleo", False),
        "id3": ("cleo", False),
        "id4": ("dan", True),
    }
    log.close()


def test_a_rename_whose_events_cannot_be_renamed_is_not_made(tmp_path: Path) -> None:
    gallery = SQLiteGallery(tmp_path / "gallery.sqlite3")
    gallery.add_person("ann")
    gallery.add_person("bob")
    (tmp_path / "events.sqlite3").write_bytes(b"not a database" * 100)
    with pytest.raises(StorageError):
        gallery.rename_person("ann", "anna")
    with pytest.raises(StorageError):
        gallery.merge_person("ann", "bob")
    assert [p.name for p in gallery.list_people()] == ["ann", "bob"]


def test_events_renamed_for_a_gallery_change_that_fails_get_their_old_name_back(
    tmp_path: Path,
) -> None:
    log = EventLog(tmp_path / "events.sqlite3")
    log.add([seen(1, "ann"), seen(2, "anna"), seen(3, "bob", "renamed", previous="ann")])
    with pytest.raises(StorageError), renaming_events(tmp_path) as rename:
        rename("ann", "anna")
        assert [e["name"] for _, e in log.events(limit=10)] == ["anna", "anna", "bob"]
        raise StorageError("the gallery's commit failed")
    assert [(e["name"], e["previous"]) for _, e in log.events(limit=10)] == [
        ("ann", None),
        ("anna", None),  # named so before: left alone
        ("bob", "ann"),
    ]
    log.close()


def test_a_new_data_directory_and_its_files_are_for_their_owner_only(tmp_path: Path) -> None:
    """They hold biometric data: a data directory made 0755 and a gallery 0644 could be read
    by every user of the machine."""
    from facelens.events.log import EventLog

    data = tmp_path / "data"
    SQLiteGallery(data / "gallery.sqlite3").close()
    EventLog(data / "events.sqlite3").close()
    assert data.stat().st_mode & 0o777 == 0o700
    for name in ("gallery.sqlite3", "events.sqlite3"):
        assert (data / name).stat().st_mode & 0o777 == 0o600, name
