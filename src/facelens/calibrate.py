"""A threshold for *this* gallery: at most a chosen chance that a stranger is named.

A stranger is named when their face is within the threshold of anybody enrolled, so the chance
grows with the gallery: a threshold that is safe for two people is not for two hundred. The
gallery holds the evidence: each enrolled person, in turn, plays a stranger to all the others.
For each of their stored faces, the distance to the nearest face of anybody else is the
distance at which that "stranger" would be named. Person by person (their photos are not
independent), the share of faces within a threshold is the chance that a stranger like them is
named; the mean over people estimates the gallery's chance for a new stranger.

How sure that is depends on how many people there are: the 95% upper bound of the chance
(Clopper-Pearson, people as trials) is reported, and how many people it takes to be sure.
The estimate leans optimistic in two ways, both said in the report: a gallery of N - 1
people stands in for one of N, and enrolled photos are usually better than a camera's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from facelens.errors import InvalidValue
from facelens.matching import GalleryIndex

CONFIDENCE = 0.95
STEP = 0.005  # proposed thresholds are rounded down to this


@dataclass(frozen=True, slots=True)
class StrangerDistances:
    """Per person, the distances at which each of their faces would be named as someone else."""

    people: tuple[str, ...]
    distances: tuple[npt.NDArray[np.float64], ...]

    @property
    def faces(self) -> int:
        return sum(len(d) for d in self.distances)

    def rates(self, thresholds: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Estimated chance that a stranger is named, at each of ``thresholds``."""
        per_person = [
            np.searchsorted(np.sort(d), thresholds, side="right") / len(d) for d in self.distances
        ]
        mean: npt.NDArray[np.float64] = np.mean(per_person, axis=0)
        return mean

    def rate(self, threshold: float) -> float:
        return float(self.rates(np.array([threshold]))[0])


def stranger_distances(index: GalleryIndex) -> StrangerDistances:
    """Each stored face's distance to the nearest face of another person."""
    if len(index.names) < 2:
        raise InvalidValue(
            "A threshold for strangers needs at least two people with faces in the gallery; "
            "enrol more people first."
        )
    ends = [*index.starts[1:].tolist(), len(index)]
    distances = []
    for person, (start, end) in enumerate(zip(index.starts.tolist(), ends, strict=True)):
        per_person = index.person_distances(index.vectors[start:end])
        per_person[:, person] = np.inf  # everyone but themselves
        distances.append(per_person.min(axis=1))
    return StrangerDistances(index.names, tuple(distances))


def upper_bounds(
    rates: npt.NDArray[np.float64], trials: int, confidence: float = CONFIDENCE
) -> npt.NDArray[np.float64]:
    """One-sided upper confidence bounds of rates seen over ``trials`` (Clopper-Pearson; a
    fractional count of named trials is rounded up)."""
    from scipy.stats import beta  # ~0.3 s to import: only for this command

    named = np.ceil(rates * trials - 1e-9)
    bounds: npt.NDArray[np.float64] = np.where(
        named >= trials, 1.0, beta.ppf(confidence, named + 1, np.maximum(trials - named, 1))
    )
    return bounds


def upper_bound(rate: float, trials: int) -> float:
    return float(upper_bounds(np.array([rate]), trials)[0])


def people_needed(target: float, confidence: float = CONFIDENCE) -> int:
    """People it takes, none of them named, to be ``confidence`` sure the rate is <= target."""
    return math.ceil(math.log(1 - confidence) / math.log(1 - target))


@dataclass(frozen=True, slots=True)
class ThresholdProposal:
    target: float
    people: int
    faces: int
    threshold: float  # the largest threshold whose estimated rate is at most the target
    rate: float  # the estimated rate there
    bound: float  # its 95% upper bound
    sure_threshold: float | None  # the largest whose upper bound is at most the target
    current_threshold: float
    current_rate: float
    current_bound: float

    @property
    def people_needed(self) -> int:
        return people_needed(self.target)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "people": self.people,
            "faces": self.faces,
            "proposed_threshold": self.threshold,
            "estimated_rate": round(self.rate, 5),
            "upper_bound_95": round(self.bound, 5),
            "sure_threshold": self.sure_threshold,
            "people_needed_to_be_sure": self.people_needed,
            "current_threshold": self.current_threshold,
            "current_rate": round(self.current_rate, 5),
            "current_upper_bound_95": round(self.current_bound, 5),
        }


def _largest(candidates: npt.NDArray[np.float64], accepted: npt.NDArray[np.bool_]) -> float | None:
    return float(candidates[accepted].max()) if accepted.any() else None


def propose_threshold(
    strangers: StrangerDistances, target: float, current_threshold: float
) -> ThresholdProposal:
    """The threshold at which a stranger is named with a chance of at most ``target``."""
    if not 0 < target < 1:
        raise InvalidValue(f"--strangers must be a chance between 0 and 1, not {target}.")
    people = len(strangers.people)
    every = np.sort(np.concatenate(strangers.distances))
    # Candidates: just below each distance (a rate changes only there), rounded down to STEP.
    candidates = np.unique(np.floor((every - 1e-9) / STEP) * STEP)
    candidates = candidates[candidates > 0]
    rates = strangers.rates(candidates)
    proposed = _largest(candidates, rates <= target)
    if proposed is None:
        raise InvalidValue("Even the smallest threshold names strangers here; check the gallery.")
    sure = _largest(candidates, upper_bounds(rates, people) <= target)
    rate, current = strangers.rate(proposed), strangers.rate(current_threshold)
    return ThresholdProposal(
        target=target,
        people=people,
        faces=strangers.faces,
        threshold=round(proposed, 4),
        rate=rate,
        bound=upper_bound(rate, people),
        sure_threshold=None if sure is None else round(sure, 4),
        current_threshold=current_threshold,
        current_rate=current,
        current_bound=upper_bound(current, people),
    )
