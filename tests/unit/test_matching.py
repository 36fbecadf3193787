"""Nearest-neighbour identification on synthetic vectors: thresholds, joint assignment, margins."""

from __future__ import annotations

import numpy as np
import pytest

from facelens.core.matching import (
    NAMED_FLOOR,
    UNKNOWN,
    UNNAMED_CEILING,
    GalleryIndex,
    identify,
    identify_ranked,
    pair_distance,
)
from facelens.models.scoring import Scoring

# The algorithm does not depend on a model: a Euclidean scoring with a round threshold.
EUCLID = Scoring("euclidean", 0.6, 12.0, 0.05)


def unit(*values: float) -> np.ndarray:
    v = np.zeros(128, dtype=np.float32)
    v[: len(values)] = values
    return v


def index_of(**people: list[np.ndarray]) -> GalleryIndex:
    return GalleryIndex.build(
        [(name, np.array(vecs)) for name, vecs in people.items()], 128, "euclidean"
    )


def test_person_distance_is_the_closest_of_their_faces() -> None:
    rng = np.random.default_rng(1)
    vectors = {
        name: rng.normal(size=(n, 128)).astype(np.float32)
        for name, n in (("a", 3), ("b", 1), ("c", 5))
    }
    index = GalleryIndex.build(list(vectors.items()), 128, "euclidean")
    queries = rng.normal(size=(4, 128)).astype(np.float32)
    got = index.person_distances(queries)
    for qi, q in enumerate(queries):
        for pi, name in enumerate(index.names):
            expected = min(np.linalg.norm(q - v) for v in vectors[name])
            assert got[qi, pi] == pytest.approx(expected, abs=1e-4)


def test_empty_gallery_makes_every_face_unknown() -> None:
    matches = identify(np.stack([unit(1.0)]), GalleryIndex.build([], 128, "euclidean"), EUCLID)
    assert [m.name for m in matches] == [UNKNOWN]
    assert matches[0].distance is None


def test_face_within_threshold_gets_nearest_name_and_beyond_is_unknown() -> None:
    index = index_of(alice=[unit(0.0)], bob=[unit(1.0)])
    near_alice, far = unit(0.2), unit(0.0, 5.0)
    a, f = identify(np.stack([near_alice, far]), index, EUCLID)
    assert (a.name, round(a.distance or 0, 4), a.runner_up) == ("alice", 0.2, "bob")
    assert a.margin == pytest.approx(0.6, abs=1e-5)
    assert f.name == UNKNOWN and f.runner_up == "alice"


def test_two_faces_near_one_person_the_second_gets_its_runner_up() -> None:
    # Both faces are closest to alice; the closer one keeps her, the other is offered bob.
    # first: alice 0.10, bob 0.65; second: alice 0.35, bob 0.40.
    index = index_of(alice=[unit(0.0)], bob=[unit(0.75)])
    first, second = unit(0.1), unit(0.35)
    m1, m2 = identify(np.stack([second, first]), index, EUCLID)
    assert (m1.name, m2.name) == ("bob", "alice")
    assert m1.ambiguous  # it lost its nearest person to another face


def test_joint_assignment_is_optimal_not_greedy() -> None:
    # face0: alice 0.30, bob 0.35; face1: alice 0.32, bob 0.97 (beyond the threshold).
    # Greedy, face by face, gives face0 alice and leaves face1 unknown; the optimum names both.
    index = index_of(alice=[unit(0.0)], bob=[unit(0.65)])
    m0, m1 = identify(np.stack([unit(0.30), unit(-0.32)]), index, EUCLID)
    assert (m0.name, m1.name) == ("bob", "alice")
    assert m0.distance == pytest.approx(0.35, abs=1e-5)


def test_close_runner_up_marks_the_match_ambiguous() -> None:
    index = index_of(alice=[unit(0.0)], bob=[unit(0.5)])
    (m,) = identify(np.stack([unit(0.24)]), index, EUCLID)
    assert m.name == "alice" and m.ambiguous and m.margin == pytest.approx(0.02, abs=1e-5)
    (clear,) = identify(np.stack([unit(0.05)]), index, EUCLID)
    assert not clear.ambiguous


def test_confidence_is_one_half_at_threshold_and_falls_with_distance() -> None:
    assert EUCLID.confidence(0.6) == pytest.approx(0.5)
    values = [EUCLID.confidence(d) for d in (0.0, 0.3, 0.5, 0.6, 0.7, 1.0, 2.0)]
    assert values == sorted(values, reverse=True)
    assert all(0.0 <= v <= 1.0 for v in values)
    assert EUCLID.confidence(0.4) > 0.9


def test_unknown_confidence_is_confidence_in_unknown() -> None:
    index = index_of(alice=[unit(0.0)])
    (m,) = identify(np.stack([unit(1.5)]), index, EUCLID)
    assert m.name == UNKNOWN and m.confidence > 0.99


def test_large_gallery_search_agrees_with_brute_force_in_float64() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((3000, 128)).astype(np.float32)
    vectors *= 0.35 / np.linalg.norm(vectors, axis=1, keepdims=True)
    index = GalleryIndex.build(
        [(f"p{i:04d}", vectors[i * 3 : i * 3 + 3]) for i in range(1000)], 128, "euclidean"
    )
    queries = vectors[[5, 1500, 2999]] + rng.normal(0, 0.01, (3, 128)).astype(np.float32)
    exact = (
        np.linalg.norm(
            queries.astype(np.float64)[:, None, :] - vectors.astype(np.float64)[None, :, :], axis=2
        )
        .reshape(3, 1000, 3)
        .min(axis=2)
    )
    assert np.allclose(index.person_distances(queries), exact, atol=1e-5)
    matches = identify(queries, index, EUCLID)
    for match, row in zip(matches, exact, strict=True):
        first, second = np.argsort(row)[:2]
        assert match.name == f"p{first:04d}"
        assert match.runner_up == f"p{second:04d}"
        assert match.runner_up_distance == pytest.approx(row[second], abs=1e-5)


def random_units(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, 128))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_cosine_distance_is_one_minus_cosine_similarity() -> None:
    rng = np.random.default_rng(3)
    gallery, queries = random_units(rng, 12), random_units(rng, 4)
    index = GalleryIndex.build(
        [(f"p{i}", gallery[i * 3 : i * 3 + 3]) for i in range(4)], 128, "cosine"
    )
    similarity = queries.astype(np.float64) @ gallery.astype(np.float64).T
    expected = (1.0 - similarity).reshape(4, 4, 3).min(axis=2)
    assert np.allclose(index.person_distances(queries), expected, atol=1e-5)
    assert pair_distance(queries[0], gallery[0], "cosine") == pytest.approx(
        1.0 - similarity[0, 0], abs=1e-6
    )
    # The same vectors, Euclidean: a different number for the same pair.
    assert pair_distance(queries[0], gallery[0], "euclidean") == pytest.approx(
        float(np.linalg.norm(queries[0].astype(np.float64) - gallery[0])), abs=1e-6
    )


def test_cosine_scoring_names_within_its_threshold_only() -> None:
    rng = np.random.default_rng(4)
    alice, bob = random_units(rng, 2)
    index = GalleryIndex.build([("alice", alice[None]), ("bob", bob[None])], 128, "cosine")
    near = alice + 0.3 * random_units(rng, 1)[0]
    near /= np.linalg.norm(near)
    cosine = Scoring("cosine", 0.4, 10.0, 0.05)
    (named,) = identify(near[None], index, cosine)
    assert named.name == "alice" and named.distance == pytest.approx(
        1 - float(near @ alice), abs=1e-6
    )
    strict = Scoring("cosine", (named.distance or 0) - 0.01, 10.0, 0.05)
    (unnamed,) = identify(near[None], index, strict)
    assert unnamed.name == UNKNOWN and unnamed.runner_up == "alice"


def test_candidates_put_the_named_person_first_then_the_rest_by_distance() -> None:
    # first: alice 0.35, bob 0.40, carol 0.9; second: alice 0.10. The joint assignment gives
    # alice to the second face and bob to the first, whose nearest person (alice) comes second.
    index = index_of(alice=[unit(0.0)], bob=[unit(0.75)], carol=[unit(1.25)])
    queries = np.stack([unit(0.35), unit(0.1)])
    ranked = identify_ranked(queries, index, EUCLID, top=3)
    assert [m for m, _ in ranked] == identify(queries, index, EUCLID)
    (_, first), (_, second) = ranked
    assert [c.name for c in first] == ["bob", "alice", "carol"]
    assert [c.name for c in second][:1] == ["alice"]
    assert first[0].similarity >= NAMED_FLOOR > UNNAMED_CEILING >= first[1].similarity
    assert [round(c.distance, 4) for c in first] == [0.4, 0.35, 0.9]
    assert identify_ranked(queries, index, EUCLID, top=0) == [(m, ()) for m, _ in ranked]
