"""The gallery review on synthetic vectors and records: each kind of finding, and none for a
clean gallery."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from facelens.gallery.base import FaceRecord, FaceVectors
from facelens.jobs.review import MIN_FACE_SIDE, MIN_SHARPNESS, review
from facelens.models.base import Box
from facelens.models.scoring import Scoring

SCORING = Scoring(metric="cosine", threshold=0.5, confidence_slope=10, ambiguity_margin=0.05)
RNG = np.random.default_rng(7)
CENTRES = {name: RNG.standard_normal(64) for name in ("ann", "bob", "cy")}


def near(name: str, spread: float = 0.35) -> np.ndarray:
    """A vector of ``name``: their centre plus noise (distances within a person ~0.1-0.2)."""
    v = CENTRES[name] + spread * np.linalg.norm(CENTRES[name]) / 8 * RNG.standard_normal(64)
    return v / np.linalg.norm(v)


def stored(*faces: tuple[int, str, np.ndarray]) -> FaceVectors:
    return FaceVectors(
        tuple(i for i, _, _ in faces),
        tuple(p for _, p, _ in faces),
        np.stack([v for _, _, v in faces]).astype(np.float32),
    )


def record(
    face_id: int, person: str, side: int = 100, sharpness: float | None = 80.0
) -> FaceRecord:
    return FaceRecord(
        face_id, person, None, None, Box(0, 0, side, side), datetime.now(UTC), sharpness, True
    )


def test_a_clean_gallery_has_nothing_to_fix() -> None:
    faces = [(i, p, near(p)) for i, p in enumerate(["ann", "ann", "bob", "bob", "cy"], 1)]
    assert review(stored(*faces), [record(i, p) for i, p, _ in faces], SCORING) == []


def test_an_empty_gallery_or_one_person_has_nothing_to_fix() -> None:
    empty = FaceVectors((), (), np.zeros((0, 64), dtype=np.float32))
    assert review(empty, [], SCORING) == []
    assert review(stored((1, "ann", near("ann"))), [record(1, "ann")], SCORING) == []


def test_a_face_closer_to_another_person_is_offered_a_move_to_them() -> None:
    faces = [(1, "ann", near("ann")), (2, "ann", near("ann")), (3, "ann", near("bob"))]
    faces += [(4, "bob", near("bob")), (5, "bob", near("bob"))]
    (finding,) = review(stored(*faces), [], SCORING)
    assert (finding.kind, finding.person, finding.face_id) == ("mismatch", "ann", 3)
    assert (finding.fix, finding.other_person) == ("move", "bob")
    assert finding.other_face_id in (4, 5) and finding.distance is not None
    assert "bob" in finding.message


def test_a_lone_face_within_the_threshold_of_someone_else_is_flagged() -> None:
    faces = [(1, "ann", near("ann")), (2, "ann", near("ann")), (3, "cy", near("ann"))]
    (lone,) = [f for f in review(stored(*faces), [], SCORING) if f.face_id == 3]
    assert (lone.kind, lone.person, lone.other_person) == ("mismatch", "cy", "ann")
    assert "only face" in lone.message


def test_the_same_photo_twice_flags_the_later_face_only() -> None:
    v = near("ann")
    faces = [(1, "ann", v), (2, "ann", near("ann")), (3, "ann", v + 1e-4)]
    (finding,) = review(stored(*faces), [], SCORING)
    assert (finding.kind, finding.face_id, finding.other_face_id) == ("duplicate", 3, 1)
    assert finding.fix == "remove"


def test_small_and_blurry_faces_are_flagged_and_unmeasured_ones_are_not() -> None:
    records = [
        record(1, "ann", side=MIN_FACE_SIDE - 1),
        record(2, "ann", sharpness=MIN_SHARPNESS - 1),
        record(3, "ann", sharpness=None),  # enrolled before sharpness was measured
        record(4, "ann", side=MIN_FACE_SIDE, sharpness=MIN_SHARPNESS),
    ]
    found = review(stored((9, "bob", near("bob"))), records, SCORING)
    assert [(f.kind, f.face_id, f.fix) for f in found] == [
        ("small", 1, "remove"),
        ("blurry", 2, "remove"),
    ]


def test_distances_over_several_blocks_agree_with_one() -> None:
    import facelens.jobs.review as module

    faces = [(i, ["ann", "bob", "cy"][i % 3], near(["ann", "bob", "cy"][i % 3])) for i in range(40)]
    faces.append((40, "ann", near("cy")))
    whole = review(stored(*faces), [], SCORING)
    saved = module._BLOCK
    module._BLOCK = 7
    try:
        assert review(stored(*faces), [], SCORING) == whole
    finally:
        module._BLOCK = saved
    assert [(f.kind, f.face_id) for f in whole] == [("mismatch", 40)]


def test_one_person_under_two_names_is_offered_one_move_not_moves_both_ways() -> None:
    """'Tom  Cruise' (one face) beside 'Tom Cruise' (four): the old review also offered to
    move two of the real person's faces to the one-face name, as they were nearer its one
    face than their own others on average. A face within the threshold of its own person is
    where it belongs: only the lone face is offered a move."""
    faces = [(i, "Tom Cruise", near("ann")) for i in range(1, 5)]
    faces.append((5, "Tom  Cruise", near("ann")))
    found = review(stored(*faces), [], SCORING)
    assert [(f.kind, f.person, f.face_id, f.fix, f.other_person) for f in found] == [
        ("mismatch", "Tom  Cruise", 5, "move", "Tom Cruise")
    ]


def test_two_names_of_several_faces_each_are_offered_a_merge_of_the_smaller() -> None:
    faces = [(i, "ann", near("ann")) for i in range(1, 5)]
    faces += [(5, "Ann B", near("ann")), (6, "Ann B", near("ann"))]
    faces += [(7, "bob", near("bob")), (8, "bob", near("bob"))]
    (finding,) = review(stored(*faces), [], SCORING)
    assert (finding.kind, finding.person, finding.fix, finding.other_person) == (
        "same_person",
        "Ann B",
        "merge",
        "ann",
    )
    assert finding.face_id in (5, 6) and finding.other_face_id in range(1, 5)
    assert "merge 'Ann B' into 'ann'" in finding.message


def test_two_one_face_people_alike_are_offered_one_move_the_later_into_the_earlier() -> None:
    faces = [(3, "ann", near("ann")), (8, "Ann", near("ann")), (9, "bob", near("bob"))]
    (finding,) = review(stored(*faces), [], SCORING)
    assert (finding.person, finding.face_id, finding.fix, finding.other_person) == (
        "Ann",
        8,
        "move",
        "ann",
    )


def test_a_stray_face_is_moved_and_the_lone_face_it_resembles_is_left_alone() -> None:
    """'cy' holds their own face and one of bob's; 'bob' has one face. Bob's face in cy is
    beyond the threshold of cy's own (0.7): it moves to bob. Bob's only face is within the
    threshold of cy as a whole (mean 0.36): the old review also offered to move it to cy."""

    def unit(cos: float) -> np.ndarray:
        v = np.zeros(64)
        v[0], v[1] = cos, np.sqrt(1 - cos**2)
        return v

    faces = [(1, "cy", unit(0.3)), (2, "cy", unit(0.98)), (3, "bob", unit(1.0))]
    found = review(stored(*faces), [], SCORING)
    assert [(f.person, f.face_id, f.fix, f.other_person) for f in found] == [
        ("cy", 2, "move", "bob")
    ]


def test_a_person_with_no_face_is_flagged() -> None:
    from facelens.gallery.base import PersonSummary

    faces = [(1, "ann", near("ann"))]
    people = [PersonSummary("ann", 1), PersonSummary("Tom", 0)]
    (empty,) = review(stored(*faces), [record(1, "ann")], SCORING, people)
    assert (empty.kind, empty.person, empty.face_id, empty.fix) == (
        "empty",
        "Tom",
        None,
        "remove_person",
    )
    assert "no face" in empty.message
