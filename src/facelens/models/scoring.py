"""How a model's distances are judged: its metric, and the curve and threshold that turn a
distance into a name and a confidence (each profile's, with the settings in force)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Metric = Literal["euclidean", "cosine"]


@dataclass(frozen=True, slots=True)
class Scoring:
    """How a distance becomes a name and a confidence: a model profile's metric and curve, with
    the threshold and ambiguity margin in force."""

    metric: Metric
    threshold: float
    confidence_slope: float
    ambiguity_margin: float

    def confidence(self, distance: float) -> float:
        """Estimated probability in [0, 1] that a face at ``distance`` is the same person: a
        logistic curve of the distance, exactly 0.5 at the threshold."""
        return 1.0 / (1.0 + math.exp(self.confidence_slope * (distance - self.threshold)))
