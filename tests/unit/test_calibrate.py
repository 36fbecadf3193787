"""The stranger-threshold estimate on galleries whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from facelens.core.matching import GalleryIndex
from facelens.errors import InvalidValue
from facelens.jobs.calibrate import (
    people_needed,
    propose_threshold,
    stranger_distances,
    upper_bound,
)


def line_gallery(positions: dict[str, list[float]]) -> GalleryIndex:
    """People as points on one axis (Euclidean): distances are differences of positions."""
    rows = []
    for name, xs in positions.items():
        vectors = np.zeros((len(xs), 4), dtype=np.float32)
        vectors[:, 0] = xs
        rows.append((name, vectors))
    return GalleryIndex.build(rows, 4, "euclidean")


def test_each_face_is_measured_against_everybody_else_only() -> None:
    index = line_gallery({"a": [0.0, 0.1], "b": [1.0], "c": [3.0]})
    strangers = stranger_distances(index)
    by_person = dict(zip(strangers.people, strangers.distances, strict=True))
    assert np.allclose(by_person["a"], [1.0, 0.9])  # not 0.1 to a's own other face
    assert np.allclose(by_person["b"], [0.9])
    assert np.allclose(by_person["c"], [2.0])
    assert strangers.faces == 4


def test_people_weigh_the_same_whatever_their_number_of_photos() -> None:
    index = line_gallery({"a": [0.0, 0.0, 0.0, 5.0], "b": [2.0], "c": [10.0]})
    strangers = stranger_distances(index)
    # a: three faces at 2.0 and one at 3.0; b: 2.0; c: 5.0. At 2.5: a 3/4, b 1, c 0.
    assert strangers.rate(2.5) == pytest.approx((0.75 + 1 + 0) / 3)


def test_a_small_gallery_never_loosens_the_models_threshold() -> None:
    """Six people far apart "estimate" no stranger named at 0.9: no evidence at n = 6 (the
    shared photos proposed 0.72 that way, which named 10% of lfw-dev's faces)."""
    positions = {f"p{i}": [float(i) * 3.0] for i in range(6)}
    strangers = stranger_distances(line_gallery(positions))
    assert strangers.rate(2.9) == 0.0
    proposal = propose_threshold(strangers, 0.01, current_threshold=0.9, model_threshold=0.6)
    assert (proposal.advice, proposal.threshold) == ("keep", 0.6)
    assert proposal.sure_threshold is None and proposal.people_needed == 299
    assert proposal.current_threshold == 0.9 and proposal.model_threshold == 0.6


def test_a_looser_threshold_only_where_the_95_percent_bound_allows() -> None:
    rng = np.random.default_rng(5)
    positions = {f"p{i}": [float(x)] for i, x in enumerate(np.cumsum(rng.uniform(0.5, 2, 400)))}
    strangers = stranger_distances(line_gallery(positions))
    proposal = propose_threshold(strangers, 0.05, current_threshold=0.3, model_threshold=0.3)
    assert proposal.advice == "looser" and proposal.threshold > 0.3
    # 400 people are enough to be 95% sure of 5%: the proposal is the largest such threshold.
    assert proposal.threshold == proposal.sure_threshold
    assert upper_bound(strangers.rate(proposal.threshold), 400) <= 0.05
    assert upper_bound(strangers.rate(proposal.threshold + 0.01), 400) > 0.05
    assert proposal.people == 400 and proposal.faces == 400
    assert proposal.current_rate == pytest.approx(strangers.rate(0.3))


def test_a_gallery_naming_its_own_people_at_the_default_gets_a_stricter_one() -> None:
    positions = {f"p{i}": [float(i) * 0.4] for i in range(50)}  # neighbours 0.4 apart
    strangers = stranger_distances(line_gallery(positions))
    assert strangers.rate(0.6) == 1.0
    proposal = propose_threshold(strangers, 0.01, current_threshold=0.6, model_threshold=0.6)
    assert proposal.advice == "stricter" and proposal.threshold < 0.4
    assert proposal.rate <= 0.01


def test_how_sure_follows_the_number_of_people() -> None:
    # None named out of n: the 95% bound is 1 - 0.05^(1/n) (about 3/n).
    for n in (10, 100, 1000):
        assert upper_bound(0.0, n) == pytest.approx(1 - 0.05 ** (1 / n))
    assert people_needed(0.01) == 299 and people_needed(0.05) == 59
    assert upper_bound(1.0, 10) == 1.0


def test_too_small_a_gallery_or_a_bad_target_is_refused() -> None:
    with pytest.raises(InvalidValue, match="at least two people"):
        stranger_distances(line_gallery({"a": [0.0, 1.0]}))
    strangers = stranger_distances(line_gallery({"a": [0.0], "b": [1.0]}))
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(InvalidValue, match="between 0 and 1"):
            propose_threshold(strangers, bad, current_threshold=0.6)
