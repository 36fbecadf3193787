"""Person names: look-alikes (joiners, variation selectors, full case folding, letters of other
alphabets shaped like Latin ones) are one person, refused as a second spelling and never merged;
scripts that need joiners, and names wholly in another alphabet, stay enrollable."""

from __future__ import annotations

import sqlite3
import string
from pathlib import Path

import numpy as np
import pytest

from facelens.errors import Conflict, InputPathError, InvalidValue
from facelens.gallery import NewFace, SQLiteGallery
from facelens.gallery.homoglyphs import latin_skeleton
from facelens.jobs.enrol import plan_enrolment
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
        ("obama", "\u043ebama"),  # a Cyrillic o
        ("obama", "ob\u0430ma"),  # a Cyrillic a
        ("obama", "\u03bfbama"),  # a Greek omicron
        ("obama", "\u039f\u0392\u0391\u039c\u0391"),  # Greek capitals: OBAMA
        ("Bob", "\u0412\u041e\u0412"),  # Cyrillic capitals: BOB
        ("viktor", "\u03bdiktor"),  # a Greek small nu looks like v (its capital like N)
        ("Nina", "\u039dina"),
        ("Alice", "\u13aalice"),  # a Cherokee capital
        ("\u00f8ystein", "o\u0338ystein"),  # a stroke, or a combining overlay
    ],
    ids=[
        "zwj",
        "zwnj",
        "variation selector",
        "two spaces",
        "sharp s",
        "cyrillic o",
        "cyrillic a",
        "greek omicron",
        "greek capitals",
        "cyrillic capitals",
        "greek small nu",
        "greek capital nu",
        "cherokee",
        "overlay",
    ],
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


@pytest.mark.parametrize(
    "name",
    [
        f"unknown{ZWJ}",
        f"unk{ZWNJ}nown",
        f"UNKNOWN{VS16}",
        "Unknown",
        "unkn\u043ewn",  # a Cyrillic o
        "UNKN\u039fWN",  # a Greek capital omicron
    ],
)
def test_unknown_with_invisible_characters_or_look_alike_letters_is_refused_like_unknown(
    gallery: SQLiteGallery, name: str
) -> None:
    for create in (gallery.add_person, gallery.check_new_person):
        with pytest.raises(InvalidValue, match="nobody matches"):
            create(name)
    gallery.add_person("Ann")
    with pytest.raises(InvalidValue, match="nobody matches"):
        gallery.rename_person("Ann", name)
    assert [p.name for p in gallery.list_people()] == ["Ann"]


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


@pytest.mark.parametrize(
    ("name", "scripts"),
    [
        ("\u039dikos", "Greek and Latin"),  # like 'Nikos', whom nobody holds yet
        ("\u0455tr", "Cyrillic and Latin"),
    ],
)
def test_a_word_mixing_latin_with_cyrillic_or_greek_is_refused(
    gallery: SQLiteGallery, name: str, scripts: str
) -> None:
    """UTS #39's mixed-script restriction: a look-alike is refused even before the person it
    imitates is enrolled."""
    for create in (gallery.add_person, gallery.check_new_person, gallery.ensure_person):
        with pytest.raises(InvalidValue, match=f"mixes {scripts} letters in one word"):
            create(name)
    with pytest.raises(InvalidValue, match="mixes"):
        gallery.record_source(name, "h1", "/p/1.jpg", [face(1)], None)
    assert gallery.list_people() == []


def test_names_wholly_in_another_alphabet_are_enrolled_and_one_person_in_any_case(
    gallery: SQLiteGallery,
) -> None:
    """Look-alike letters make a look-alike name only when every letter passes for Latin."""
    gallery.add_person("obama")
    gallery.add_person("Vladimir")
    names = [
        "\u0412\u043b\u0430\u0434\u0438\u043c\u0438\u0440",  # Владимир
        "\u03a3\u03c9\u03ba\u03c1\u03ac\u03c4\u03b7\u03c2",  # Σωκράτης
        "\u0393\u03b9\u03ac\u03bd\u03bd\u03b7\u03c2",  # Γιάννης
        "\u0531\u0580\u0561\u0574",  # Արամ (Armenian)
        "\u0418\u0432\u0430\u043d Smith",  # Иван Smith: two words, one alphabet each
    ]
    for name in names:
        gallery.add_person(name)
    assert {p.name for p in gallery.list_people()} == {"obama", "Vladimir", *names}
    with pytest.raises(Conflict, match="same name as 'Владимир'"):
        gallery.add_person("\u0412\u041b\u0410\u0414\u0418\u041c\u0418\u0420")  # in capitals
    with pytest.raises(Conflict, match="same name as 'Γιάννης'"):
        gallery.add_person("\u0393\u0399\u0386\u039d\u039d\u0397\u03a3")
    assert gallery.lookalikes() == []


def test_names_stored_before_the_alphabet_rules_can_still_be_found_renamed_and_deleted(
    gallery: SQLiteGallery,
) -> None:
    """The rules apply to a name being given; a look-alike an older facelens let in must stay
    reachable, or nobody could delete it."""
    gallery.record_source("obama", "h1", "/p/1.jpg", [face(1)], None)
    with sqlite3.connect(gallery.path) as db:
        for name in ("\u043ebama", "unkn\u043ewn"):
            db.execute("INSERT INTO people (name, created_at) VALUES (?, '2025-01-01')", (name,))
    assert gallery.lookalikes() == [["obama", "\u043ebama"]]
    gallery.record_source("unkn\u043ewn", "h2", "/p/2.jpg", [face(2)], None)
    assert gallery.person("unkn\u043ewn").faces == 1
    gallery.rename_person("unkn\u043ewn", "Ann")
    assert gallery.remove_person("\u043ebama") == 0
    assert [(p.name, p.faces) for p in gallery.list_people()] == [("Ann", 1), ("obama", 1)]


def test_enrolment_folders_in_look_alike_alphabets_are_one_person(tmp_path: Path) -> None:
    for folder in ("obama", "\u039f\u0392\u0391\u039c\u0391"):  # Greek capitals
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "1.jpg").write_bytes(b"not read while planning")
    with pytest.raises(InputPathError, match="another alphabet"):
        plan_enrolment(tmp_path)


def test_the_look_alike_table_leaves_latin_letters_and_digits_as_they_are() -> None:
    """A Latin letter in the table would make Latin names that do not look alike one person."""
    latin = string.ascii_letters + string.digits + "\u00df\u00e6\u00fe"  # ß æ þ
    assert latin_skeleton(latin) == latin
