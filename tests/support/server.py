"""A real ``facelens serve`` process on a free port, for the integration tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from facelens.models.profiles import PROFILES, ModelProfile

FACELENS = str(Path(sys.executable).with_name("facelens"))
_LISTENING = re.compile(r"serving on (http://\S+) ")


def enrolled(folder: Path, people: Path) -> Path:
    """A data directory ``folder`` with the people of ``people`` enrolled by ``facelens``."""
    done = subprocess.run(
        [FACELENS, "--data-dir", str(folder), "enroll", str(people)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return folder


class Server:
    """Starts ``facelens serve --port 0`` and reads the real address from its log."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                FACELENS,
                "--data-dir",
                str(data_dir),
                "serve",
                "--port",
                "0",
                "--workers",
                "2",
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self.url = self._wait_for_address()
        self.client = httpx.Client(base_url=self.url, timeout=60)
        # The model the server runs, as it says itself.
        self.profile: ModelProfile = PROFILES[self.client.get("/readyz").json()["profile"]]

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = _LISTENING.search(self.log())
            if found:
                url = found.group(1)
                while time.monotonic() < deadline:  # uvicorn accepts right after the line
                    try:
                        if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                            return url
                    except httpx.TransportError:
                        time.sleep(0.05)
            if self.process.poll() is not None:
                raise AssertionError(f"server exited {self.process.returncode}:\n{self.log()}")
            time.sleep(0.1)
        raise AssertionError(f"server did not start in time:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 10) -> None:
        """Until the server's log holds ``text`` (a log line is written after the answer)."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert time.monotonic() < deadline, f"{text!r} never logged:\n{self.log()}"
            time.sleep(0.01)

    def worker_pids(self) -> list[int]:
        """The server's worker processes (children started by spawn), from /proc."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid and b"spawn_main" in cmdline:
                children.append(int(stat.parent.name))
        return sorted(children)

    def stop(self) -> int:
        """SIGTERM (graceful), then the exit code."""
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
