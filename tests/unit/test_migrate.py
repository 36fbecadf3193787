"""How a migration pairs a stored face with the new model's face: by box overlap."""

from __future__ import annotations

import pytest

from facelens.migrate import overlap
from facelens.models.base import Box


def test_box_overlap_is_intersection_over_union() -> None:
    assert overlap(Box(0, 0, 10, 10), Box(0, 0, 10, 10)) == 1.0
    assert overlap(Box(0, 0, 10, 10), Box(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert overlap(Box(0, 0, 10, 10), Box(10, 10, 20, 20)) == 0.0
