"""Shared fixtures: the real face photos in ../shared/data/faces and a loaded engine."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from tests.helpers import Probe

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """``../shared/data/faces`` beside the repository (or $FACELENS_TEST_FACES); fails if absent."""
    candidates = (
        [Path(os.environ["FACELENS_TEST_FACES"])]
        if "FACELENS_TEST_FACES" in os.environ
        else [REPO.parent / "shared" / "data" / "faces", REPO / "shared" / "data" / "faces"]
    )
    for path in candidates:
        if (path / "probes.csv").is_file() and (path / "people").is_dir():
            return path
    pytest.fail(
        "The test photos are missing: looked for people/ and probes.csv in "
        + ", ".join(str(c) for c in candidates)
        + ". Put the shared data beside the repository or set FACELENS_TEST_FACES."
    )


@pytest.fixture(scope="session")
def people_dir(faces_dir: Path) -> Path:
    return faces_dir / "people"


@pytest.fixture(scope="session")
def probes(faces_dir: Path) -> list[Probe]:
    with (faces_dir / "probes.csv").open(newline="") as handle:
        return [
            Probe(faces_dir / "probes" / row["file"], sorted(row["expected"].split(";")))
            for row in csv.DictReader(handle)
        ]


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """``../shared/data/lfw-dev`` (or $FACELENS_TEST_LFW); fails, saying where it looked."""
    candidates = (
        [Path(os.environ["FACELENS_TEST_LFW"])]
        if "FACELENS_TEST_LFW" in os.environ
        else [REPO.parent / "shared" / "data" / "lfw-dev"]
    )
    for path in candidates:
        if (path / "probes.csv").is_file() and (path / "gallery").is_dir():
            return path
    pytest.fail(
        "The lfw-dev photos are missing: looked for gallery/ and probes.csv in "
        + ", ".join(str(c) for c in candidates)
        + ". Put the shared data beside the repository or set FACELENS_TEST_LFW."
    )
