"""The worker pool's choices that need no process: OpenCV threads per request."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_a_lone_request_gets_every_core_and_a_busy_server_one_per_worker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from facelens.settings import Settings
    from facelens.workers.pool import SpawnedWorkerPool

    monkeypatch.setattr("os.cpu_count", lambda: 4)
    pool = SpawnedWorkerPool(Settings(data_dir=tmp_path, workers=2))
    assert pool._threads() == 4
    pool._pending = 1  # another request in flight
    assert pool._threads() == 1
