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

So the advice never loosens the model's own threshold (set on far more faces: see
docs/benchmarks.md) on the gallery's word alone: only when the 95% bound itself is within
the target. A home gallery of 6 people "estimated" 0% of strangers named at 0.72, yet at
0.72 about 10% of lfw-dev's faces (none of them enrolled) got a name. It tightens the
threshold when the gallery shows the default names its own people as each other more often
than the target; otherwise the advice is to keep the default, saying how many people it
would take to be sure of more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from facelens.core.matching import GalleryIndex
from facelens.errors import InvalidValue

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


Advice = Literal["looser", "keep", "stricter"]


@dataclass(frozen=True, slots=True)
class ThresholdProposal:
    target: float
    people: int
    faces: int
    advice: Advice  # looser than the model's threshold (proven), keep it, or stricter
    threshold: float  # the threshold advised
    rate: float  # the estimated rate there
    bound: float  # its 95% upper bound
    sure_threshold: float | None  # the largest whose upper bound is at most the target
    estimate_threshold: float | None  # the largest whose estimate is (not advice: see above)
    model_threshold: float  # the model's own
    current_threshold: float  # the one in force (FACELENS_THRESHOLD, else the model's)
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
            "advice": self.advice,
            "proposed_threshold": self.threshold,
            "estimated_rate": round(self.rate, 5),
            "upper_bound_95": round(self.bound, 5),
            "sure_threshold": self.sure_threshold,
            "estimate_threshold": self.estimate_threshold,
            "people_needed_to_be_sure": self.people_needed,
            "model_threshold": self.model_threshold,
            "current_threshold": self.current_threshold,
            "current_rate": round(self.current_rate, 5),
            "current_upper_bound_95": round(self.current_bound, 5),
        }


def _largest(candidates: npt.NDArray[np.float64], accepted: npt.NDArray[np.bool_]) -> float | None:
    return float(candidates[accepted].max()) if accepted.any() else None


def propose_threshold(
    strangers: StrangerDistances,
    target: float,
    current_threshold: float,
    model_threshold: float | None = None,
) -> ThresholdProposal:
    """The threshold to use so that a stranger is named with a chance of at most ``target``:
    looser than ``model_threshold`` only when this gallery makes that 95% sure, stricter when
    the gallery's own estimate at ``model_threshold`` misses the target, else the model's."""
    if not 0 < target < 1:
        raise InvalidValue(f"--strangers must be a chance between 0 and 1, not {target}.")
    default = current_threshold if model_threshold is None else model_threshold
    people = len(strangers.people)
    every = np.sort(np.concatenate(strangers.distances))
    # Candidates: just below each distance (a rate changes only there), rounded down to STEP.
    candidates = np.unique(np.floor((every - 1e-9) / STEP) * STEP)
    candidates = candidates[candidates > 0]
    rates = strangers.rates(candidates)
    sure = _largest(candidates, upper_bounds(rates, people) <= target)
    estimate = _largest(candidates, rates <= target)
    advice: Advice
    if sure is not None and sure > default:
        advice, advised = "looser", sure
    elif strangers.rate(default) <= target:
        advice, advised = "keep", default
    else:
        stricter = _largest(candidates, (rates <= target) & (candidates < default))
        if stricter is None:
            raise InvalidValue(
                "Even the smallest threshold names strangers here; check the gallery."
            )
        advice, advised = "stricter", stricter
    rate, current = strangers.rate(advised), strangers.rate(current_threshold)
    return ThresholdProposal(
        target=target,
        people=people,
        faces=strangers.faces,
        advice=advice,
        threshold=round(advised, 4),
        rate=rate,
        bound=upper_bound(rate, people),
        sure_threshold=None if sure is None else round(sure, 4),
        estimate_threshold=None if estimate is None else round(estimate, 4),
        model_threshold=default,
        current_threshold=current_threshold,
        current_rate=current,
        current_bound=upper_bound(current, people),
    )
