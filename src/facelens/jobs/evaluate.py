"""Accuracy on the user's own data: verification pairs and identification against labels.

Plain functions over distances and names; the CLI reads files, runs the engine and prints.
"""

from __future__ import annotations

import csv
import functools
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facelens.core.matching import UNKNOWN, pair_distance
from facelens.core.pipeline import Analysis, Engine
from facelens.core.recognition import recognize_bytes
from facelens.errors import InputPathError, InvalidValue
from facelens.gallery.sqlite import SQLiteGallery
from facelens.jobs.batch import FileResult, analyze_files, run_batch
from facelens.jobs.enrol import enrol_folder, plan_enrolment
from facelens.models.base import Embeddings
from facelens.models.scoring import Scoring
from facelens.system import extras

YES = frozenset({"yes", "true", "1", "y", "same"})
NO = frozenset({"no", "false", "0", "n", "different"})
FAR_TARGETS = (1e-2, 1e-3)


# -- reading the files --------------------------------------------------------------------------


def _rows(path: Path, what: str) -> list[tuple[int, list[str]]]:
    """(line number, cells) of a CSV after its header row; BOM and CRLF tolerated."""
    if not path.is_file():
        raise InputPathError(f"{path}: no such {what} file.")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputPathError(f"{path}: cannot be read as UTF-8 text ({exc}).") from None
    rows = list(csv.reader(text.splitlines()))
    return [(n, row) for n, row in enumerate(rows[1:], start=2) if any(c.strip() for c in row)]


@dataclass(frozen=True, slots=True)
class Pair:
    first: str
    second: str
    same: bool


def read_pairs(path: Path) -> list[Pair]:
    """Pairs from a CSV: header row; image, image, label (yes/no, true/false, 1/0); more ignored."""
    pairs = []
    for line, row in _rows(path, "pairs"):
        if len(row) < 3:
            raise InvalidValue(
                f"{path}:{line}: needs 3 columns (image, image, label), found {len(row)}."
            )
        label = row[2].strip().lower()
        if label not in YES | NO:
            raise InvalidValue(
                f"{path}:{line}: label {row[2].strip()!r} is not yes/no, true/false or 1/0."
            )
        pairs.append(Pair(row[0].strip(), row[1].strip(), label in YES))
    if not pairs:
        raise InputPathError(f"{path}: holds no pairs after its header row.")
    return pairs


def read_labels(path: Path) -> dict[str, list[str]]:
    """``file,expected`` rows, the expected names ``;``-separated (``unknown`` for strangers)."""
    labels = {}
    for line, row in _rows(path, "labels"):
        if len(row) < 2:
            raise InvalidValue(f"{path}:{line}: needs 2 columns (file, expected names).")
        names = sorted(n.strip() for n in row[1].split(";") if n.strip())
        labels[row[0].strip()] = names
    if not labels:
        raise InputPathError(f"{path}: holds no labelled files after its header row.")
    return labels


def resolve_images(names: Sequence[str], folder: Path) -> dict[str, Path]:
    """Each distinct relative name as a path under ``folder``; every missing one is reported."""
    if not folder.is_dir():
        raise InputPathError(f"{folder}: no such folder of images.")
    paths = {name: (folder / name) for name in dict.fromkeys(names)}
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise InputPathError(f"{len(missing)} image(s) not found under {folder}: {shown}.")
    return paths


# -- verification metrics -------------------------------------------------------------------------


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(np.mean((distances <= threshold) == same))


def best_threshold(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold with the highest accuracy, midway between neighbouring distances; the
    strictest of equally accurate ones (fewer false accepts)."""
    values = np.unique(distances)
    candidates = np.concatenate(
        [[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]]
    )
    accuracies = [accuracy_at(distances, same, float(t)) for t in candidates]
    best = int(np.argmax(accuracies))
    return float(candidates[best]), accuracies[best]


def roc_auc(distances: np.ndarray, same: np.ndarray) -> float | None:
    """Probability that a same-person pair is closer than a different-person pair (ties ½)."""
    genuine, impostor = distances[same], distances[~same]
    if len(genuine) == 0 or len(impostor) == 0:
        return None
    closer = (genuine[:, None] < impostor[None, :]).sum()
    ties = (genuine[:, None] == impostor[None, :]).sum()
    return float((closer + 0.5 * ties) / (len(genuine) * len(impostor)))


def tar_at_far(distances: np.ndarray, same: np.ndarray, far: float) -> float | None:
    """Share of same-person pairs accepted at the loosest threshold whose false-accept rate is
    at most ``far``; None if there are too few different-person pairs to measure that rate."""
    genuine, impostor = distances[same], np.sort(distances[~same])
    if len(genuine) == 0 or len(impostor) < round(1 / far):
        return None
    allowed = int(np.floor(far * len(impostor)))  # impostor pairs we may accept
    threshold = impostor[allowed] - 1e-9 if allowed < len(impostor) else np.inf
    return float(np.mean(genuine <= threshold))


def roc_curve(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-accept rate, true-accept rate) for every threshold, from strict to loose."""
    thresholds = np.concatenate([[-np.inf], np.unique(distances)])
    far = np.array([np.mean(distances[~same] <= t) for t in thresholds])
    tar = np.array([np.mean(distances[same] <= t) for t in thresholds])
    return far, tar


@dataclass(frozen=True, slots=True)
class ScoredPair:
    pair: Pair
    distance: float


@dataclass(slots=True)
class PairsReport:
    model: str
    pairs: int
    no_face: list[str]
    scored: list[ScoredPair]
    threshold: float
    same_pairs: int = 0
    different_pairs: int = 0
    accuracy: float | None = None
    best_threshold: float | None = None
    best_accuracy: float | None = None
    auc: float | None = None
    tar_at_far: dict[str, float | None] = field(default_factory=dict)

    def false_accepts(self) -> list[ScoredPair]:
        return [s for s in self.scored if not s.pair.same and s.distance <= self.threshold]

    def false_rejects(self) -> list[ScoredPair]:
        return [s for s in self.scored if s.pair.same and s.distance > self.threshold]

    def as_dict(self) -> dict[str, Any]:
        def listed(items: list[ScoredPair]) -> list[dict[str, Any]]:
            return [
                {"first": s.pair.first, "second": s.pair.second, "distance": round(s.distance, 4)}
                for s in items
            ]

        return {
            "model": self.model,
            "pairs": self.pairs,
            "scored_pairs": len(self.scored),
            "same_pairs": self.same_pairs,
            "different_pairs": self.different_pairs,
            "no_face": self.no_face,
            "threshold": self.threshold,
            "accuracy": _round(self.accuracy),
            "best_threshold": _round(self.best_threshold),
            "best_accuracy": _round(self.best_accuracy),
            "auc": _round(self.auc),
            "tar_at_far": {k: _round(v) for k, v in self.tar_at_far.items()},
            "false_accepts": listed(self.false_accepts()),
            "false_rejects": listed(self.false_rejects()),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def score_pairs(
    pairs: Sequence[Pair], embeddings: dict[str, Embeddings | None], scoring: Scoring, model: str
) -> PairsReport:
    """Metrics over the pairs whose two images both have a face, with ``model``'s scoring."""
    no_face = sorted(name for name, vector in embeddings.items() if vector is None)
    scored = []
    for pair in pairs:
        a, b = embeddings[pair.first], embeddings[pair.second]
        if a is not None and b is not None:
            scored.append(ScoredPair(pair, pair_distance(a, b, scoring.metric)))
    threshold = scoring.threshold
    report = PairsReport(model, len(pairs), no_face, scored, threshold)
    if not scored:
        return report
    distances = np.array([s.distance for s in scored])
    same = np.array([s.pair.same for s in scored])
    report.same_pairs, report.different_pairs = int(same.sum()), int((~same).sum())
    report.accuracy = accuracy_at(distances, same, threshold)
    report.best_threshold, report.best_accuracy = best_threshold(distances, same)
    report.auc = roc_auc(distances, same)
    report.tar_at_far = {f"{far:g}": tar_at_far(distances, same, far) for far in FAR_TARGETS}
    return report


def embed_largest(
    paths: dict[str, Path],
    engine: Engine,
    on_file: Callable[[FileResult[Analysis]], None] | None = None,
) -> dict[str, Embeddings | None]:
    """The largest face's embedding of each image (None: no face or unreadable)."""
    by_path = {path: name for name, path in paths.items()}
    found: dict[str, Embeddings | None] = {}
    for result in analyze_files(list(by_path), engine.settings, engine):
        analysis = result.value
        found[by_path[result.path]] = (
            analysis.largest().embedding if analysis is not None and analysis.faces else None
        )
        if on_file is not None:
            on_file(result)
    return found


ROC_PLOT = "The ROC plot (--plot)"  # what needs the 'plots' extra, as its error names it


def save_roc_plot(report: PairsReport, path: Path) -> None:
    """The ROC curve as a PNG, with the configured threshold marked."""
    matplotlib = extras.load("plots", "matplotlib", ROC_PLOT)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not report.scored or report.auc is None:
        raise InvalidValue("A ROC curve needs both same-person and different-person pairs.")
    distances = np.array([s.distance for s in report.scored])
    same = np.array([s.pair.same for s in report.scored])
    far, tar = roc_curve(distances, same)
    figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
    axes.plot(far, tar, drawstyle="steps-post", label=f"AUC {report.auc:.4f}")
    at = distances <= report.threshold
    axes.scatter(
        [np.mean(at[~same])],
        [np.mean(at[same])],
        color="red",
        zorder=3,
        label=f"threshold {report.threshold}",
    )
    axes.set(xlabel="false accept rate", ylabel="true accept rate", xlim=(0, 1), ylim=(0, 1.02))
    axes.set_title(f"ROC: {len(report.scored)} pairs")
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    except OSError as exc:
        raise InputPathError(f"{path}: cannot write the plot ({exc.strerror or exc}).") from None
    finally:
        plt.close(figure)


# -- identification -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    file: str
    expected: list[str]
    found: list[str]
    error: str | None

    @property
    def hit(self) -> bool:
        return self.error is None and self.found == self.expected


@dataclass(frozen=True, slots=True)
class IdentifyReport:
    model: str
    probes: list[ProbeOutcome]
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        known = correct = unknown = unknown_correct = wrong = 0
        for p in self.probes:
            expected, found = Counter(p.expected), Counter(p.found)
            known += sum(n for name, n in expected.items() if name != UNKNOWN)
            correct += sum((expected & found)[name] for name in expected if name != UNKNOWN)
            unknown += expected[UNKNOWN]
            unknown_correct += min(expected[UNKNOWN], found[UNKNOWN])
            wrong += sum(n for name, n in (found - expected).items() if name != UNKNOWN)
        return {
            "model": self.model,
            "probes": [
                {
                    "file": p.file,
                    "expected": p.expected,
                    "found": p.found,
                    "hit": p.hit,
                    "error": p.error,
                }
                for p in self.probes
            ],
            "threshold": self.threshold,
            "probe_accuracy": _round(sum(p.hit for p in self.probes) / len(self.probes)),
            "top1_accuracy": _round(correct / known) if known else None,
            "known_faces": known,
            "known_named_correctly": correct,
            "unknown_faces": unknown,
            "unknown_left_unknown": unknown_correct,
            "strangers_named": unknown - unknown_correct,
            "wrong_names": wrong,
        }


def identify_probes(
    people_dir: Path,
    probes_dir: Path,
    labels_path: Path,
    load_engine: Callable[[], Engine],
    *,
    take_largest: bool = False,
) -> IdentifyReport:
    """Enrol ``people_dir`` into a temporary gallery and recognise every labelled probe.

    Every path is checked before ``load_engine`` is called and the long work starts.
    """
    labels = read_labels(labels_path)
    paths = resolve_images(list(labels), probes_dir)
    plan = plan_enrolment(people_dir)
    engine = load_engine()
    with tempfile.TemporaryDirectory(prefix="facelens-eval-") as tmp:
        gallery = SQLiteGallery(Path(tmp) / "gallery.sqlite3", engine.profile.name)
        try:
            enrol_folder(plan, gallery, engine.settings, engine=engine, take_largest=take_largest)
            index = gallery.index()
        finally:
            gallery.close()
    by_path = {path: name for name, path in paths.items()}
    outcomes = {}
    job = functools.partial(recognize_bytes, engine, index=index)
    for result in run_batch(list(by_path), engine.settings, job):
        name = by_path[result.path]
        if result.value is None:
            outcomes[name] = ProbeOutcome(name, labels[name], [], str(result.error))
            continue
        found = sorted(f.match.name for f in result.value.faces)
        outcomes[name] = ProbeOutcome(name, labels[name], found, None)
    return IdentifyReport(
        engine.profile.name, [outcomes[name] for name in labels], engine.scoring.threshold
    )
