"""The server's worker processes (*spawned*): each loads the models once and does all image work.

Why processes: measured on these 2-core machines, two threads give 2.1x the throughput of one
for dlib's HOG detector (it releases the GIL) but only 1.1x for the ResNet descriptor (it holds
it), so threads cannot use the second core for embedding. OpenCV's models (sface) run one
thread per worker while other requests are in flight, and every core for a request that is
alone in the server (SFace: 30 ms per face on one thread, 17 ms on two, measured here). The
HTTP process keeps the event loop free and hands every decode → detect → embed → match → draw
to one of N processes (N = the ``workers`` setting, the cores by default).

Each worker is one process with its own pipe and does one request at a time, so the server
knows which process holds which request: a request that runs past ``request_timeout_s``, or
whose client has gone (after a short grace), has its process killed and replaced; a process
that dies fails only its own request. Workers are started with *spawn*, not fork (unlike CLI
batches, ``batch.py``): the server runs an event loop and threads, and forking those is
unsafe. Each worker opens the gallery itself and caches its index until the gallery's revision
changes, so enrolments made through the HTTP process are seen by the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

from facelens.core.matching import Candidate, Match
from facelens.core.pipeline import Analysis
from facelens.core.recognition import DEFAULT_NAMING, Naming, Recognition
from facelens.errors import ClientGone, FaceLensError, Unavailable, WorkTimeout
from facelens.models.base import Embeddings
from facelens.settings import Settings
from facelens.system.lifetime import Child, Spawn, Supervised, stop_children
from facelens.workers.tasks import Analyze, NameVectors, Recognize, Task
from facelens.workers.worker import serve

log = logging.getLogger(__name__)

Gone = Callable[[], Awaitable[bool]]
"""Asks whether the client of a request has gone away (Starlette's ``is_disconnected``)."""

LOAD_TIMEOUT_S = 120  # loading the models; seconds here, more on a slow disk
CHECK_EVERY_S = 0.25  # how often a running request looks at its deadline and its client
GONE_GRACE_S = 2.0  # work for a client that left is finished if it ends this soon
# At a stop, how long requests already waiting may still get a worker: well inside uvicorn's
# graceful 15 s and Docker's 10 s before it kills.
DRAIN_S = 5.0


@dataclass(slots=True, eq=False)  # compared and hashed by identity: one process each
class _Process:
    child: Supervised
    conn: Connection  # the pool's end of its pipe

    @property
    def pid(self) -> int:
        return self.child.pid

    def kill(self) -> None:
        self.child.kill()
        self.conn.close()


class SpawnedWorkerPool:
    """N spawned worker processes behind an asyncio API: a bounded queue, one request per
    process, time limits, abandoned work stopped, dead or killed workers replaced."""

    def __init__(
        self,
        settings: Settings,
        target: Callable[[Connection, Settings], None] = serve,
        spawn: Spawn = Child.spawn,
    ) -> None:
        self.settings = settings
        self.target = target  # what a worker process runs (tests give a stand-in)
        self.spawn = spawn  # how (the fast test tier: a thread per worker, no process)
        self.gone_grace_s = GONE_GRACE_S
        self.size = settings.workers
        self.model_id = ""
        self._idle: asyncio.Queue[_Process] = asyncio.Queue()
        self._live: set[_Process] = set()
        self._pending = 0
        self._starting = 0
        self._closed = False
        self._drain_until: float | None = None  # set when the server begins to stop

    # -- state ---------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Requests handed to the pool and not yet answered (waiting or running)."""
        return self._pending

    @property
    def ready(self) -> int:
        """Worker processes that have loaded the models and are alive."""
        return sum(1 for p in list(self._live) if p.child.alive)

    @property
    def pids(self) -> list[int]:
        return sorted(p.pid for p in list(self._live))

    # -- starting and stopping ----------------------------------------------------------

    def _start_process(self) -> _Process:
        """Start one worker process. Called from the main thread only: a worker asks the
        kernel to stop it when its parent *thread* ends (PR_SET_PDEATHSIG), so it must be
        started by a thread that lives as long as the server."""
        ours, theirs = multiprocessing.Pipe()
        child = self.spawn(self.target, (theirs, self.settings), "facelens-worker")
        theirs.close()
        return _Process(child, ours)

    def _await_ready(self, worker: _Process) -> _Process:
        """Wait until ``worker`` has loaded the models (any thread); raises its error."""
        if not worker.conn.poll(LOAD_TIMEOUT_S):
            worker.kill()
            raise Unavailable(f"A worker did not load the models in {LOAD_TIMEOUT_S} s.")
        try:
            status, value = worker.conn.recv()
        except (EOFError, OSError):
            worker.kill()
            raise Unavailable(
                "A worker process died while loading the models (out of memory?)."
            ) from None
        if status != "ok":
            worker.kill()
            raise value if isinstance(value, FaceLensError) else Unavailable(str(value))
        self.model_id = str(value)
        return worker

    def start(self) -> None:
        """Start every worker and wait until each has loaded the models (in parallel)."""
        started = [self._start_process() for _ in range(self.size)]
        failures = []
        for worker in started:
            try:
                self._await_ready(worker)
            except FaceLensError as exc:
                failures.append(exc)
        if failures:
            for worker in started:
                worker.kill()
            raise failures[0]
        for worker in started:
            self._live.add(worker)
            self._idle.put_nowait(worker)
        log.info("%d worker processes ready (model %s)", len(started), self.model_id)

    @property
    def _draining(self) -> bool:
        return self._drain_until is not None

    def drain(self) -> None:
        """The server is stopping: no new request is taken, those waiting for a worker get
        one for DRAIN_S more and are then answered 503 (another replica, or this one
        restarted, will take them), those running finish, and no worker is replaced. Only sets
        a value: safe from a signal handler."""
        self._drain_until = time.monotonic() + DRAIN_S

    def close(self) -> None:
        """Ask every worker to stop; kill those still busy after 2 s."""
        self._closed = True
        workers = list(self._live)
        self._live.clear()
        for worker in workers:
            with contextlib.suppress(OSError):
                worker.conn.send(None)  # "stop", read when the worker is idle
        stop_children([worker.child for worker in workers], 2.0, ask=None)  # asked above
        for worker in workers:
            worker.conn.close()

    def _retire(self, worker: _Process, why: str) -> None:
        """Kill ``worker`` (if still alive) and start a replacement; it takes requests once
        it has loaded the models. Runs in the event loop (the main thread)."""
        log.warning("worker %d stopped: %s; starting a replacement", worker.pid, why)
        self._live.discard(worker)
        worker.kill()
        if self._closed or self._draining:
            return
        loop = asyncio.get_running_loop()
        fresh = self._start_process()
        self._starting += 1

        def wait() -> None:
            try:
                self._await_ready(fresh)
            except FaceLensError as exc:
                log.error("a replacement worker failed to start: %s", exc.message)
                ready = None
            else:
                ready = fresh
            try:
                loop.call_soon_threadsafe(self._settle, ready)
            except RuntimeError:  # the server stopped meanwhile: its loop is closed
                fresh.kill()

        threading.Thread(target=wait, name="facelens-respawn", daemon=True).start()

    def _settle(self, fresh: _Process | None) -> None:
        """A replacement has loaded its models (or failed to): in the event loop."""
        self._starting -= 1
        if fresh is None:
            return
        if self._closed:
            fresh.kill()
            return
        self._live.add(fresh)
        self._idle.put_nowait(fresh)

    # -- running requests ---------------------------------------------------------------

    def _threads(self) -> int:
        """OpenCV threads for the next request: every core when it is the only request in the
        server (a lone camera's frame is answered sooner), one when others are in flight (each
        worker process then keeps one core busy, the best throughput)."""
        return (os.cpu_count() or 1) if self._pending == 0 else 1

    def check_capacity(self) -> None:
        """:class:`Unavailable` if the queue is full or no worker runs (before any work)."""
        if self._draining:
            raise self._stopping()
        if self._closed or (not self._live and not self._starting):
            raise Unavailable("The workers are not running; the server is starting or stopping.")
        if self._pending >= self.settings.max_queue:
            raise Unavailable(
                f"The server is busy ({self._pending} requests waiting for a worker); "
                "retry in a moment."
            )

    async def _submit(self, task: Task, gone: Gone | None, *, queued: bool = True) -> Any:
        if queued:
            self.check_capacity()
        task = replace(task, threads=self._threads())
        self._pending += 1
        try:
            worker = await self._next_worker(refusable=queued)
            try:
                result = await self._run(worker, task, gone)
            except asyncio.CancelledError:
                # Its answer may still come and would be read as the next request's: retire it.
                if worker in self._live:
                    self._retire(worker, "its request was cancelled")
                raise
            except BaseException:
                if worker in self._live:  # it answered (an error): it takes the next request
                    self._idle.put_nowait(worker)
                raise
            self._idle.put_nowait(worker)
            return result
        finally:
            self._pending -= 1

    async def _next_worker(self, *, refusable: bool) -> _Process:
        """An idle worker, when one is free, first come first served. A request that has not
        started yet is refused once the server has drained for DRAIN_S; further images of a
        running request still get theirs."""
        # One wait in the queue's line for the whole time (a wait_for that timed out would
        # leave the line and join it again at the end: requests overtook each other).
        taking = asyncio.ensure_future(self._idle.get())
        handed = False
        try:
            while True:
                done, _ = await asyncio.wait({taking}, timeout=CHECK_EVERY_S)
                if done:
                    handed = True
                    return taking.result()
                if refusable and self._drain_until and time.monotonic() > self._drain_until:
                    raise self._stopping()
        finally:
            if not taking.done():
                taking.cancel()
            elif not handed and not taking.cancelled() and taking.exception() is None:
                self._idle.put_nowait(taking.result())  # taken as we gave up: back it goes

    @staticmethod
    def _stopping() -> Unavailable:
        return Unavailable(
            "The server is stopping (restarted or scaled down) and took no new work; retry "
            "in a moment."
        )

    async def _run(self, worker: _Process, task: Task, gone: Gone | None) -> Any:
        """Send one task to ``worker`` and wait for its answer, its death, the time limit or
        the client leaving; in the last three cases ``worker`` is retired."""
        try:
            await asyncio.to_thread(worker.conn.send, task)
        except OSError:
            self._retire(worker, "its pipe is closed")
            raise self._died() from None
        answered = await self._wait(worker, gone)
        if answered is not None:
            self._retire(worker, answered.message)
            raise answered
        try:
            status, value = await asyncio.to_thread(worker.conn.recv)
        except (EOFError, OSError):
            self._retire(worker, "it died")
            raise self._died() from None
        if status == "ok":
            return value
        if status == "error":
            raise value
        raise RuntimeError(f"worker task {type(task).__name__} failed: {value}")

    async def _wait(self, worker: _Process, gone: Gone | None) -> FaceLensError | None:
        """Until ``worker`` has something to read (an answer, or end of file if it died):
        None; or the error that ends the wait instead (time limit, client gone)."""
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        fd = worker.conn.fileno()
        loop.add_reader(fd, readable.set)
        try:
            deadline = time.monotonic() + self.settings.request_timeout_s
            gone_at: float | None = None
            while True:
                wait_s = min(CHECK_EVERY_S, max(deadline - time.monotonic(), 0.001))
                try:
                    await asyncio.wait_for(readable.wait(), wait_s)
                    return None
                except TimeoutError:
                    pass
                now = time.monotonic()
                if now > deadline:
                    return WorkTimeout(
                        f"The image took longer than {self.settings.request_timeout_s:g} s to "
                        "process and was given up (FACELENS_REQUEST_TIMEOUT_S)."
                    )
                if gone is not None and gone_at is None and await gone():
                    gone_at = now
                if gone_at is not None and now - gone_at > self.gone_grace_s:
                    return ClientGone("The client closed the connection; its work was stopped.")
        finally:
            loop.remove_reader(fd)

    @staticmethod
    def _died() -> Unavailable:
        return Unavailable(
            "The worker process handling this request died (out of memory?); it is being "
            "replaced, retry in a few seconds."
        )

    async def analyze(
        self,
        data: bytes,
        source: str,
        gone: Gone | None = None,
        *,
        queued: bool = True,
        enrolment: bool = False,
    ) -> Analysis:
        """Every face of one image (``enrolment``: see Engine.analyze). ``queued=False`` is for
        the further images of a request that passed :meth:`check_capacity` already: they wait
        for a worker, never refused."""
        result: Analysis = await self._submit(Analyze(data, source, enrolment), gone, queued=queued)
        return result

    async def recognize(
        self,
        data: bytes,
        source: str,
        *,
        annotate: bool = False,
        naming: Naming = DEFAULT_NAMING,
        gone: Gone | None = None,
        queued: bool = True,
    ) -> Recognition:
        """Every face of one image, named by the worker against its gallery (the one way every
        API names the faces of a photo); ``queued`` as for :meth:`analyze`."""
        result: Recognition = await self._submit(
            Recognize(data, source, annotate, naming), gone, queued=queued
        )
        return result

    async def name_vectors(
        self, vectors: Embeddings, candidates: int = 1
    ) -> list[tuple[Match, tuple[Candidate, ...]]]:
        """Each of ``vectors`` named on its own against the worker's gallery."""
        result: list[tuple[Match, tuple[Candidate, ...]]] = await self._submit(
            NameVectors(vectors, candidates), None
        )
        return result
