"""The server's children, supervised one way (the request workers and the streams): spawned
with a name, asked to stop, given a time limit, then killed."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from facelens.system.lifetime import Child, stop_children

pytestmark = pytest.mark.integration  # starts processes (see docs/development.md's tiers)


def _polite(said: str) -> None:
    """A child that stores its last word when asked to stop (as a stream stores its events)."""

    def stop(*_: object) -> None:
        Path(said).write_text("stored")
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    Path(said + ".ready").write_text("ready")
    while True:
        time.sleep(0.05)


def _stubborn(ready: str) -> None:
    """A child that ignores SIGTERM (a worker stuck in native code)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(ready).write_text("ready")
    while True:
        time.sleep(0.05)


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never came"
        time.sleep(0.05)


def test_a_child_asked_to_stop_ends_on_its_own_and_is_not_killed(tmp_path: Path) -> None:
    said = tmp_path / "said"
    child = Child.spawn(_polite, (str(said),), "polite child")
    assert child.process.name == "polite child" and child.pid > 0
    _wait_for(tmp_path / "said.ready")  # its handler set (before, SIGTERM itself would end it)
    assert stop_children([child], grace_s=60) == []
    assert said.read_text() == "stored" and child.exitcode == 0


def test_children_that_do_not_stop_are_killed_after_the_grace(tmp_path: Path) -> None:
    ready = [tmp_path / "a", tmp_path / "b"]
    children = [Child.spawn(_stubborn, (str(path),), f"stubborn {path.name}") for path in ready]
    for path in ready:
        _wait_for(path)  # SIGTERM ignored from now on
    killed = stop_children(children, grace_s=0.5)
    assert killed == children
    assert not any(child.alive for child in children)
    assert [child.exitcode for child in children] == [-signal.SIGKILL] * 2


def test_a_child_is_started_by_the_starter_given(tmp_path: Path) -> None:
    starts: list[Callable[[], None]] = []

    def starter(start: Callable[[], None]) -> None:
        starts.append(start)
        start()

    child = Child.spawn(_polite, (str(tmp_path / "said"),), "started", starter=starter)
    assert len(starts) == 1 and child.alive
    stop_children([child], grace_s=60)


def test_children_gone_already_are_left_alone(tmp_path: Path) -> None:
    child = Child.spawn(_polite, (str(tmp_path / "said"),), "gone")
    child.kill()
    assert stop_children([child], grace_s=0.1) == []  # nothing to ask, nothing to kill
