"""The in-process API of the contract tests: a real app, gallery and worker pool running the
stand-in colour model, its workers as threads (no process spawned), behind FastAPI's
TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from facelens.api.app import create_app
from facelens.api.services import Services
from facelens.settings import Settings
from facelens.workers.worker import serve
from tests.support import fake_model
from tests.support.threads import ThreadChild


@contextmanager
def served(
    data_dir: Path, *, client: tuple[str, int] = ("testclient", 50000), **settings: Any
) -> Iterator[TestClient]:
    """A TestClient on a fresh app over ``data_dir``; ``client`` is the caller's address."""
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
