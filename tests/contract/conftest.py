"""The in-process API of the contract tests: a real app, gallery and worker pool running the
stand-in colour model, its workers as threads (no process spawned), behind FastAPI's
TestClient."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from facelens.api.app import create_app
from facelens.api.keys import KeyStore
from facelens.api.services import Services
from facelens.events.log import EventLog
from facelens.settings import Settings
from facelens.workers.worker import serve
from tests.support import fake_model
from tests.support.postgres import PostgresServer
from tests.support.threads import ThreadChild

# The PostgreSQL server the tests of a module using the ``backend`` fixture run on (None: the
# SQLite file in the data directory), and the database of each data directory served there.
_POSTGRES: list[PostgresServer | None] = [None]
_DATABASES: dict[Path, str] = {}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a module's tests once on each backend: on PostgreSQL, ``served`` gives each data
    directory a database of its own (a server started again on it finds what it stored)."""
    if request.param == "postgresql":
        _POSTGRES[0] = request.getfixturevalue("postgres_server")
    try:
        yield str(request.param)
    finally:
        _POSTGRES[0] = None


@contextmanager
def served(
    data_dir: Path, *, client: tuple[str, int] = ("testclient", 50000), **settings: Any
) -> Iterator[TestClient]:
    """A TestClient on a fresh app over ``data_dir``; ``client`` is the caller's address."""
    if _POSTGRES[0] is not None and "database_url" not in settings:
        settings["database_url"] = _database_for(data_dir)
    config = Settings(data_dir=data_dir, workers=1, **settings)
    with fake_model.installed():
        # The workers as threads of this process (the fake model installed here already).
        services = Services.open(config, worker=serve, spawn=ThreadChild.spawn)
        try:
            services.start(streams=False)
            with TestClient(
                create_app(services), base_url="http://127.0.0.1:5000", client=client
            ) as test_client:
                yield test_client
        finally:
            services.close()


def stored(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    """The rows ``sql`` reads from the gallery ``served`` keeps for ``data_dir``, on the backend
    it runs on (the SQLite file, or its PostgreSQL database)."""
    if data_dir in _DATABASES and _POSTGRES[0] is not None:
        with psycopg.connect(_DATABASES[data_dir]) as db:
            return list(db.execute(sql).fetchall())
    with contextlib.closing(sqlite3.connect(data_dir / "gallery.sqlite3")) as db:
        return list(db.execute(sql).fetchall())


def key_store(data_dir: Path) -> KeyStore:
    """The API keys of the server ``served`` runs for ``data_dir``, on its backend."""
    url = _database_for(data_dir) if _POSTGRES[0] is not None else None
    return KeyStore(data_dir / "gallery.sqlite3", url=url)


def _database_for(data_dir: Path) -> str:
    """The PostgreSQL database of ``data_dir`` (made on first use)."""
    server = _POSTGRES[0]
    assert server is not None
    if data_dir not in _DATABASES:
        _DATABASES[data_dir] = server.database()
    return _DATABASES[data_dir]


def event_log(data_dir: Path, targets: tuple[str, ...] = ()) -> EventLog:
    """The event log of the server ``served`` runs for ``data_dir``, on its backend."""
    url = _database_for(data_dir) if _POSTGRES[0] is not None else None
    return EventLog(data_dir / "events.sqlite3", targets=targets, url=url)


def cli_env(data_dir: Path) -> dict[str, str]:
    """The environment a command run on ``data_dir`` needs to find its backend."""
    return {} if _POSTGRES[0] is None else {"FACELENS_DATABASE_URL": _database_for(data_dir)}
