"""Processes that do not outlive the process that started them, and the one way the server
supervises its children (the request workers and the streams): spawned with a name, stopped by
asking, a time limit, then killing."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)


def die_with_parent() -> None:
    """Linux: if the parent is killed outright, this process goes too instead of lingering.
    The signal comes when the parent *thread* that started this process ends. A parent gone
    already (killed while this process was starting) sends none: this process ends at once."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        log.debug("prctl(PR_SET_PDEATHSIG) unavailable; workers may outlive a killed server")
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # adopted: the parent is gone
        log.warning("the process that started this one (pid %s) is gone; ending", parent.pid)
        raise SystemExit(1)


# Spawned, never forked: the server runs an event loop and threads, and forking those is unsafe.
_SPAWN = multiprocessing.get_context("spawn")


def _now(start: Callable[[], None]) -> None:
    start()


class Supervised(Protocol):
    """What supervising a child needs of it (a :class:`Child` process; the fast test tier
    runs workers as threads behind the same interface)."""

    @property
    def name(self) -> str: ...

    @property
    def pid(self) -> int: ...

    @property
    def alive(self) -> bool: ...

    @property
    def exitcode(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def join(self, timeout: float) -> None: ...


@dataclass(slots=True, eq=False)  # compared and hashed by identity: one process each
class Child:
    """One child process of the server."""

    process: BaseProcess

    @classmethod
    def spawn(
        cls,
        target: Callable[..., object],
        args: tuple[Any, ...],
        name: str,
        *,
        starter: Callable[[Callable[[], None]], None] = _now,
    ) -> Child:
        """Start ``target(*args)`` in a new process called ``name``. ``starter`` runs the start:
        in a thread that lives as long as the server, for a child that calls
        :func:`die_with_parent` (its signal comes when the *thread* that started it ends)."""
        process = _SPAWN.Process(target=target, args=args, name=name, daemon=True)
        starter(process.start)
        return cls(process)

    @property
    def name(self) -> str:
        return self.process.name

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    @property
    def exitcode(self) -> int | None:
        return self.process.exitcode

    def terminate(self) -> None:
        """Ask it to stop: SIGTERM (a stream stores its last events and ends)."""
        self.process.terminate()

    def kill(self) -> None:
        """Stop it now (SIGKILL) and reap it."""
        self.process.kill()
        self.process.join(5)

    def join(self, timeout: float) -> None:
        self.process.join(timeout)


Spawn = Callable[[Callable[..., object], tuple[Any, ...], str], Supervised]
"""Starts ``target(*args)`` as a child called ``name`` (:meth:`Child.spawn` in the server)."""


def _terminate(child: Supervised) -> None:
    child.terminate()


C = TypeVar("C", bound=Supervised)


def stop_children(
    children: Iterable[C], grace_s: float, ask: Callable[[C], None] | None = _terminate
) -> list[C]:
    """Stop ``children`` together: ``ask`` each (SIGTERM by default; None: asked already),
    give them ``grace_s`` seconds in all to end, then kill those still running; those killed."""
    children = [child for child in children if child.alive]
    if ask is not None:
        for child in children:
            with contextlib.suppress(OSError, ValueError):  # ended meanwhile, or its pipe broke
                ask(child)
    deadline = time.monotonic() + grace_s
    killed = []
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.alive:
            log.warning("%s (pid %d) did not stop in %g s: killed", child.name, child.pid, grace_s)
            child.kill()
            killed.append(child)
    return killed
