"""Shared fixtures: the real photos in ../shared/data (faces, lfw-dev), failing loudly if absent."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from facelens.system.redact import MaskSecrets
from tests.support.helpers import Probe, read_probes
from tests.support.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[1]


def shared_data(name: str, variable: str, marker_file: str, marker_dir: str) -> Path:
    """``../shared/data/<name>`` beside the repository (or ``$<variable>``); fails, saying where
    it looked, if it is not there."""
    candidates = (
        [Path(os.environ[variable])]
        if variable in os.environ
        else [REPO.parent / "shared" / "data" / name, REPO / "shared" / "data" / name]
    )
    for path in candidates:
        if (path / marker_file).is_file() and (path / marker_dir).is_dir():
            return path
    pytest.fail(
        f"The {name} photos are missing: looked for {marker_dir}/ and {marker_file} in "
        + ", ".join(str(c) for c in candidates)
        + f". Put the shared data beside the repository or set {variable}."
    )


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """``../shared/data/faces`` (or $FACELENS_TEST_FACES)."""
    return shared_data("faces", "FACELENS_TEST_FACES", "probes.csv", "people")


@pytest.fixture(scope="session")
def people_dir(faces_dir: Path) -> Path:
    return faces_dir / "people"


@pytest.fixture(scope="session")
def probes(faces_dir: Path) -> list[Probe]:
    return read_probes(faces_dir)


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """``../shared/data/lfw-dev`` (or $FACELENS_TEST_LFW)."""
    return shared_data("lfw-dev", "FACELENS_TEST_LFW", "probes.csv", "gallery")


@pytest.fixture
def guarded() -> Iterator[None]:
    """guard_logs() as the CLI and the server call it; undone after the test."""
    httpx_logger = logging.getLogger("httpx")
    level = httpx_logger.level
    yield
    httpx_logger.setLevel(level)
    for logger in (logging.getLogger(), httpx_logger):
        for target in [logger, *logger.handlers]:
            for f in [f for f in target.filters if isinstance(f, MaskSecrets)]:
                target.removeFilter(f)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL 15 server on a free loopback port, for the whole session."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty PostgreSQL database (password authentication over TCP)."""
    return postgres_server.database()
