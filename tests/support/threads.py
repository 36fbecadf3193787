"""Worker "processes" as threads, for the fast test tier: the pool's own code (its pipe, its
tasks, its answers) runs, without spawning an interpreter per server (~0.6 s each). A thread
cannot be killed: it ends when the pool closes its end of the pipe (which it does right after
"killing" a worker), so the timeouts and deaths of workers are tested with real processes."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any


@dataclass(eq=False)
class ThreadChild:
    thread: threading.Thread

    @classmethod
    def spawn(cls, target: Callable[..., object], args: tuple[Any, ...], name: str) -> ThreadChild:
        # A child process gets its own copy of a pipe's end (the pool then closes the one it
        # holds): so does the thread.
        args = tuple(
            Connection(os.dup(arg.fileno())) if isinstance(arg, Connection) else arg for arg in args
        )
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        return cls(thread)

    @property
    def name(self) -> str:
        return self.thread.name

    @property
    def pid(self) -> int:
        return int(self.thread.native_id or 0)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    @property
    def exitcode(self) -> int | None:
        return None if self.thread.is_alive() else 0

    def terminate(self) -> None:
        pass  # a worker thread stops when its pipe is closed or told to stop

    def kill(self) -> None:
        pass  # see the module's docstring

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
