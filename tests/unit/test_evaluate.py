"""Accuracy metrics and the pairs/labels file formats of ``facelens eval``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelens.errors import InputPathError, InvalidValue
from facelens.jobs.evaluate import (
    Pair,
    best_threshold,
    read_labels,
    read_pairs,
    resolve_images,
    roc_auc,
    score_pairs,
    tar_at_far,
)
from facelens.models.scoring import Scoring


def test_pairs_files_accept_every_label_spelling_crlf_bom_and_extra_columns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pairs.csv"
    path.write_bytes(
        "\ufefffirst,second,label,comment\r\n"
        "a.jpg,b.jpg, YES ,x\r\n"
        "a.jpg,c.jpg,no\r\n"
        "\r\n"
        "b.jpg,c.jpg,True\r\n"
        "c.jpg,d.jpg,FALSE\r\n"
        "d.jpg,e.jpg,1\r\n"
        "e.jpg,a.jpg,0\r\n".encode()
    )
    assert [p.same for p in read_pairs(path)] == [True, False, True, False, True, False]
    assert read_pairs(path)[0] == Pair("a.jpg", "b.jpg", True)


@pytest.mark.parametrize(
    ("content", "error", "words"),
    [
        ("a,b,label\nx.jpg,y.jpg,maybe\n", InvalidValue, "pairs.csv:2: label 'maybe'"),
        ("a,b,label\nx.jpg,y.jpg\n", InvalidValue, "needs 3 columns"),
        ("a,b,label\n", InputPathError, "holds no pairs"),
    ],
)
def test_bad_pairs_files_say_where(
    tmp_path: Path, content: str, error: type[Exception], words: str
) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(content)
    with pytest.raises(error, match=words):
        read_pairs(path)


def test_missing_files_are_all_reported_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(InputPathError, match="2 image"):
        resolve_images(["a.jpg", "b.jpg", "c.jpg", "a.jpg"], tmp_path)
    with pytest.raises(InputPathError, match="no such pairs file"):
        read_pairs(tmp_path / "absent.csv")


def test_labels_split_names(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("file,expected\ngroup.jpg, obama;biden ;unknown\n")
    assert read_labels(path) == {"group.jpg": ["biden", "obama", "unknown"]}


def test_metrics_on_known_distances() -> None:
    # same pairs at 0.3, 0.5, 0.7; different pairs at 0.55, 0.8, 0.9, 1.0
    distances = np.array([0.3, 0.5, 0.7, 0.55, 0.8, 0.9, 1.0])
    same = np.array([True, True, True, False, False, False, False])
    threshold, accuracy = best_threshold(distances, same)
    # 0.525 and 0.75 both get 6 of 7 right; the stricter one is chosen.
    assert accuracy == pytest.approx(6 / 7) and 0.5 < threshold < 0.55
    # Of the 12 (same, different) combinations the same pair is closer in all but 0.7 vs 0.55.
    assert roc_auc(distances, same) == pytest.approx(11 / 12)
    assert tar_at_far(distances, same, 1e-2) is None  # 4 different pairs cannot measure 1%


def test_tar_at_far_uses_the_loosest_threshold_within_the_rate() -> None:
    impostor = np.linspace(0.5, 1.5, 200)  # 1% of 200 = 2 may be accepted: 0.5 and ~0.505
    genuine = np.array([0.2, 0.4, 0.506, 0.51, 0.7])
    distances = np.concatenate([genuine, impostor])
    same = np.concatenate([np.ones(5, bool), np.zeros(200, bool)])
    # third impostor is at 0.5101; accepting < 0.5101 takes 0.2, 0.4, 0.506 and 0.51
    assert tar_at_far(distances, same, 1e-2) == pytest.approx(4 / 5)


def test_pairs_without_a_face_are_left_out_and_listed() -> None:
    vectors = {"a": np.zeros(2, np.float32), "b": np.array([0.3, 0.4], np.float32), "c": None}
    pairs = [Pair("a", "b", True), Pair("a", "c", False), Pair("b", "c", True)]
    scoring = Scoring("euclidean", 0.6, 12.0, 0.05)
    report = score_pairs(pairs, vectors, scoring, "test-model").as_dict()
    assert report["pairs"] == 3 and report["scored_pairs"] == 1 and report["model"] == "test-model"
    assert report["no_face"] == ["c"]
    assert report["accuracy"] == 1.0 and report["auc"] is None
    assert {
        "accuracy",
        "threshold",
        "best_threshold",
        "best_accuracy",
        "auc",
        "no_face",
        "pairs",
    } <= set(report)
