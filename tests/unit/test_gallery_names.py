"""Person names: look-alikes (joiners, variation selectors, full case folding) are one person,
refused as a second spelling and never merged; scripts that need joiners stay enrollable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from facelens.errors import Conflict, InvalidValue
from facelens.gallery import NewFace, SQLiteGallery
from facelens.models.base import Box

ZWJ, ZWNJ, VS16 = "\u200d", "\u200c", "\ufe0f"


def face(seed: int) -> NewFace:
    vector = np.random.default_rng(seed).normal(size=128)
    return NewFace((vector / np.linalg.norm(vector)).astype(np.float32), Box(1, 2, 30, 40))


@pytest.fixture
def gallery(tmp_path: Path) -> SQLiteGallery:
    return SQLiteGallery(tmp_path / "gallery.sqlite3")


@pytest.mark.parametrize(
    ("stored", "alike"),
    [
        ("obama", f"oba{ZWJ}ma"),
        ("obama", f"o{ZWNJ}bama"),
        ("obama", f"obama{VS16}"),
        ("Barack Obama", "Barack  Obama"),
        ("Strauss", "Strauß"),
    ],
    ids=["zwj", "zwnj", "variation selector", "two spaces", "sharp s"],
)
def test_a_look_alike_of_a_stored_name_is_refused_naming_who_exists(
    gallery: SQLiteGallery, stored: str, alike: str
) -> None:
    gallery.record_source(stored, "h1", "/p/1.jpg", [face(1)], None)
    for create in (gallery.add_person, gallery.ensure_person):
        with pytest.raises(Conflict, match=f"same name as {stored!r}"):
            create(alike)
    with pytest.raises(Conflict, match=f"same name as {stored!r}"):
        gallery.record_source(alike, "h2", "/p/2.jpg", [face(2)], None)
    gallery.add_person("Biden")
    with pytest.raises(Conflict, match=f"{stored!r} already exists"):
        gallery.rename_person("Biden", alike)
    # Never merged: the stored person keeps their one face, and nobody else was made.
    assert {(p.name, p.faces) for p in gallery.list_people()} == {("Biden", 0), (stored, 1)}


@pytest.mark.parametrize("alike", [f"oba{ZWJ}ma", "Strauß"], ids=["joiner", "sharp s"])
def test_a_lookup_never_takes_a_look_alike_for_someone_else(
    gallery: SQLiteGallery, alike: str
) -> None:
    """The compatibility APIs find a person by name in any case, then add faces to them: a
    look-alike must not find (and so silently grow) another person."""
    gallery.add_person("obama")
    gallery.add_person("Strauss")
    found = gallery.find_person("OBAMA")
    assert found is not None and found.name == "obama"
    assert gallery.find_person("\uff33\uff54\uff52\uff41\uff55\uff53\uff53").name == "Strauss"  # type: ignore[union-attr]
    assert gallery.find_person(alike) is None


@pytest.mark.parametrize("name", [f"unknown{ZWJ}", f"unk{ZWNJ}nown", f"UNKNOWN{VS16}", "Unknown"])
def test_unknown_with_invisible_characters_is_refused_like_unknown(
    gallery: SQLiteGallery, name: str
) -> None:
    with pytest.raises(InvalidValue, match="nobody matches"):
        gallery.add_person(name)


@pytest.mark.parametrize("name", [ZWJ, f"{ZWNJ}{ZWJ}", "\u3164", VS16])
def test_a_name_that_shows_nothing_is_refused(gallery: SQLiteGallery, name: str) -> None:
    with pytest.raises(InvalidValue, match="shows nothing"):
        gallery.add_person(name)


def test_names_of_scripts_that_need_joiners_are_enrolled_as_written(
    gallery: SQLiteGallery,
) -> None:
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # with a ZWNJ
    devanagari = "\u0915\u094d\u200d\u0937\u093e"  # a half form made with a ZWJ
    family = "\U0001f469\u200d\U0001f469\u200d\U0001f467"  # an emoji sequence, with ZWJs
    for name in (persian, devanagari, family):
        gallery.record_source(name, name, f"/p/{name}.jpg", [face(len(name))], None)
    assert sorted(p.name for p in gallery.list_people()) == sorted([persian, devanagari, family])
    assert gallery.find_person(persian).name == persian  # type: ignore[union-attr]


def test_look_alikes_stored_before_the_rule_are_listed(gallery: SQLiteGallery) -> None:
    gallery.add_person("obama")
    with sqlite3.connect(gallery.path) as db:  # as an older facelens let them in
        db.execute(
            "INSERT INTO people (name, created_at) VALUES (?, '2025-01-01')", (f"oba{ZWJ}ma",)
        )
    assert gallery.lookalikes() == [["obama", f"oba{ZWJ}ma"]]
