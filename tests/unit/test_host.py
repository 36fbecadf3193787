"""What ``facelens info`` says of the machine: cgroup limits read as a container sets them."""

from __future__ import annotations

import os

import pytest

from facelens.system import host


def cgroup(monkeypatch: pytest.MonkeyPatch, files: dict[tuple[str, str | None], str]) -> None:
    monkeypatch.setattr(host, "_cgroup_file", lambda name, v1=None: files.get((name, v1)))


def test_a_cgroup_v2_limit_caps_memory_and_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    cgroup(monkeypatch, {("memory.max", None): "2147483648", ("cpu.max", None): "150000 100000"})
    found = host.describe()
    assert found.memory_limit_bytes == 2 << 30
    assert found.usable_memory_bytes is not None and found.usable_memory_bytes <= 2 << 30
    assert found.usable_cores == min(1.5, found.cores)


def test_cgroup_v1_and_no_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    cgroup(
        monkeypatch,
        {
            ("memory.limit_in_bytes", "memory"): "1073741824",
            ("cpu.cfs_quota_us", "cpu"): "-1",
            ("cpu.cfs_period_us", "cpu"): "100000",
        },
    )
    found = host.describe()
    assert found.memory_limit_bytes == 1 << 30
    assert found.usable_cores == len(os.sched_getaffinity(0))  # quota -1: no limit
    cgroup(
        monkeypatch,
        {("memory.max", None): "max", ("cpu.max", None): "max 100000"},
    )
    assert host.describe().memory_limit_bytes is None
    cgroup(monkeypatch, {("memory.limit_in_bytes", "memory"): "9223372036854771712"})
    assert host.describe().memory_limit_bytes is None  # v1's "no limit"


def test_the_server_needs_memory_per_worker() -> None:
    assert host.server_memory_mb(2) == host.SERVER_RSS_MB + 2 * host.WORKER_RSS_MB
