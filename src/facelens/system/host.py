"""The machine facelens runs on: its system, CPU and memory, as far as this process may use them
(a container's or a service's cgroup limits included), for ``facelens info`` and for sizing
the worker processes on a small box."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

# Memory of the server's processes, VmRSS measured with the sface model (docs/small-boxes.md):
# the HTTP process ~100 MB; a worker ~165 MB once its models are loaded, up to ~270 MB after
# photos from 720p to 12 MP (OpenCV keeps its buffers). dlib's workers took less (158-183 MB).
SERVER_RSS_MB = 100
WORKER_RSS_MB = 270

_CGROUP = Path("/sys/fs/cgroup")
_NO_LIMIT = 1 << 60  # cgroup v1 writes "no limit" as a number near 2**63


@dataclass(frozen=True, slots=True)
class Host:
    system: str  # "Linux 6.1.0-18-arm64"
    distribution: str | None  # "Debian GNU/Linux 12 (bookworm)", when the OS says
    machine: str  # x86_64, aarch64
    python: str  # "CPython 3.11.7"
    cores: int  # the machine's
    usable_cores: float  # this process's: CPU affinity and a cgroup's CPU quota
    memory_bytes: int | None  # the machine's (MemTotal)
    available_bytes: int | None  # free for new work now (MemAvailable)
    memory_limit_bytes: int | None  # a cgroup's limit (a container, a systemd MemoryMax=)

    @property
    def usable_memory_bytes(self) -> int | None:
        """What this process may still use: the machine's available memory, or less when a
        cgroup limits it."""
        known = [b for b in (self.available_bytes, self.memory_limit_bytes) if b is not None]
        return min(known) if known else None


def _meminfo() -> dict[str, int]:
    found: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            parts = value.split()
            if parts and parts[0].isdigit():
                found[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except OSError:
        pass
    return found


def _cgroup_file(name: str, v1_controller: str | None = None) -> str | None:
    """A file of this process's cgroup (v2, or with ``v1_controller`` v1), as the cgroup is
    seen from here: inside a container its own cgroup is the root. None if there is none."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, where = line.split(":", 2)
        if v1_controller is None and controllers == "":
            root = _CGROUP
        elif v1_controller is not None and v1_controller in controllers.split(","):
            root = _CGROUP / controllers
        else:
            continue
        for path in (root / where.lstrip("/") / name, root / name):
            try:
                return path.read_text().strip()
            except OSError:
                continue
    return None


def _memory_limit() -> int | None:
    text = _cgroup_file("memory.max") or _cgroup_file("memory.limit_in_bytes", "memory")
    if text is None or not text.isdigit():  # "max": none
        return None
    limit = int(text)
    return None if limit >= _NO_LIMIT else limit


def _cpu_quota() -> float | None:
    """Cores' worth of CPU time the cgroup allows, None if unlimited."""
    v2 = (_cgroup_file("cpu.max") or "").split()  # "QUOTA PERIOD", or "max PERIOD"
    if len(v2) == 2:
        quota, period = v2
    else:
        quota = _cgroup_file("cpu.cfs_quota_us", "cpu") or ""  # -1: none
        period = _cgroup_file("cpu.cfs_period_us", "cpu") or ""
    if not (quota.isdigit() and period.isdigit()) or int(period) == 0:
        return None
    return int(quota) / int(period)


def describe() -> Host:
    """This machine, as this process sees it."""
    try:
        distribution = platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        distribution = None
    cores = os.cpu_count() or 1
    usable: float = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    quota = _cpu_quota()
    if quota is not None:
        usable = min(usable, quota)
    meminfo = _meminfo()
    return Host(
        system=f"{platform.system()} {platform.release()}",
        distribution=distribution,
        machine=platform.machine(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        cores=cores,
        usable_cores=usable,
        memory_bytes=meminfo.get("MemTotal"),
        available_bytes=meminfo.get("MemAvailable"),
        memory_limit_bytes=_memory_limit(),
    )


def server_memory_mb(workers: int) -> int:
    """About what ``facelens serve`` with ``workers`` workers holds, streams not included."""
    return SERVER_RSS_MB + workers * WORKER_RSS_MB
