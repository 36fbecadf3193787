"""The server's worker processes (*spawned*): each loads the models once and does all image work.

Why processes: measured on these 2-core machines, two threads give 2.1x the throughput of one
for dlib's HOG detector (it releases the GIL) but only 1.1x for the ResNet descriptor (it holds
it), so threads cannot use the second core for embedding. OpenCV's models (sface) run one
thread per worker while other requests are in flight, and every core for a request that is
alone in the server (SFace: 30 ms per face on one thread, 17 ms on two, measured here). The
HTTP process keeps the event loop free and hands every
decode → detect → embed → match → draw to a pool of N processes (N = the ``workers`` setting,
the cores by default); a request's bytes go in, a small result comes out.

Workers are started with *spawn*, not fork (unlike CLI batches, ``batch.py``): the server
process runs an event loop and threads, and forking those is unsafe. Each worker pays a few
seconds once to import and load the models. Each worker opens the gallery itself and caches its
index until the gallery's revision changes, so enrolments made through the HTTP process are
seen by the next request.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

import cv2
import numpy as np

from facelens.annotate import UNKNOWN_COLOUR, Label, draw_labels
from facelens.errors import FaceLensError, Unavailable
from facelens.gallery.sqlite import SQLiteGallery
from facelens.imaging import DecodedImage
from facelens.matching import UNKNOWN
from facelens.models.base import Box
from facelens.pipeline import Analysis, Engine
from facelens.recognition import Recognition, analyze_bytes, recognize_bytes
from facelens.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


# -- inside a worker process ------------------------------------------------------------------


@dataclass(slots=True)
class _Worker:
    engine: Engine | None
    gallery: SQLiteGallery | None
    error: FaceLensError | None


_worker: _Worker | None = None


def _die_with_parent() -> None:
    # Linux: if the server is killed outright, its workers go too instead of lingering.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        log.debug("prctl(PR_SET_PDEATHSIG) unavailable; workers may outlive a killed server")


def _init(settings: Settings) -> None:
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the server decides how to stop
    _die_with_parent()
    try:
        gallery = SQLiteGallery(settings.gallery_path, settings.model)
        _worker = _Worker(Engine.load(settings.with_model(gallery.profile.name)), gallery, None)
    except FaceLensError as exc:  # reported by every task, so the server can say why
        _worker = _Worker(None, None, exc)
        return
    assert _worker.engine is not None
    _warm_up(_worker.engine)


def _warm_up(engine: Engine) -> None:
    """Run each stage once so the first request does not pay for loading fonts (~0.4 s)."""
    blank = np.full((64, 64, 3), 127, dtype=np.uint8)  # grey
    engine.analyze(DecodedImage(blank, "warm-up", "PNG"))
    draw_labels(blank, [Label(Box(8, 8, 40, 40), UNKNOWN, UNKNOWN_COLOUR)])


def _state() -> tuple[Engine, SQLiteGallery]:
    assert _worker is not None, "task ran outside a worker"
    if _worker.error is not None:
        raise _worker.error
    assert _worker.engine is not None and _worker.gallery is not None
    return _worker.engine, _worker.gallery


def _ping(hold_s: float) -> tuple[int, str]:
    engine, _ = _state()
    time.sleep(hold_s)  # keeps this worker busy so the next ping goes to another one
    return os.getpid(), engine.model_id


def _use_threads(threads: int) -> None:
    # OpenCV's thread pool (YuNet, SFace, resizing) is per process; dlib's models use one
    # thread whatever this says. Spawned workers never fork, so a pool with threads is safe.
    if cv2.getNumThreads() != threads:
        cv2.setNumThreads(threads)


def _analyze(data: bytes, source: str, threads: int) -> Analysis:
    engine, _ = _state()
    _use_threads(threads)
    return analyze_bytes(engine, data, source)


def _recognize(data: bytes, source: str, annotate: bool, threads: int) -> Recognition:
    engine, gallery = _state()
    _use_threads(threads)
    return recognize_bytes(
        engine, data, source, gallery.index(), annotate="jpeg" if annotate else None
    )


# -- in the server process --------------------------------------------------------------------


class SpawnedWorkerPool:
    """N spawned worker processes behind an asyncio API, with a bounded queue and self-repair."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.size = settings.workers
        self.model_id = ""
        self.pids: list[int] = []
        self._pool: ProcessPoolExecutor | None = None
        self._pending = 0

    @property
    def pending(self) -> int:
        """Requests handed to the workers and not yet answered."""
        return self._pending

    @property
    def alive(self) -> bool:
        return self._pool is not None

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.size,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init,
            initargs=(self.settings,),
        )

    def start(self) -> None:
        """Start every worker and wait until each has loaded the models (raises their error)."""
        self._pool = self._new_pool()
        pids: set[int] = set()
        for hold_s in (0.0, 0.5, 2.0):  # until every worker has answered once
            futures = [self._pool.submit(_ping, hold_s) for _ in range(self.size)]
            answers = [f.result() for f in futures]
            pids |= {pid for pid, _ in answers}
            if len(pids) == self.size:
                break
        self.pids = sorted(pids)
        self.model_id = answers[0][1]
        log.info("%d worker processes ready (model %s)", len(self.pids), self.model_id)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _threads(self) -> int:
        """OpenCV threads for the next request: every core when it is the only request in the
        server (a lone camera's frame is answered sooner), one when others are in flight (each
        worker process then keeps one core busy, the best throughput)."""
        return (os.cpu_count() or 1) if self._pending == 0 else 1

    async def _submit(self, fn: Any, *args: Any) -> Any:
        if self._pool is None:
            raise Unavailable("The workers are not running; the server is starting or stopping.")
        if self._pending >= self.settings.max_queue:
            raise Unavailable(
                f"The server is busy ({self._pending} requests waiting for a worker); "
                "retry in a moment."
            )
        pool = self._pool
        self._pending += 1
        try:
            return await asyncio.wrap_future(pool.submit(fn, *args))
        except BrokenProcessPool:
            self._replace(pool)
            raise Unavailable(
                "A worker process died while handling the request (out of memory?); "
                "the workers are restarting, retry in a few seconds."
            ) from None
        finally:
            self._pending -= 1

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if self._pool is not broken:
            return  # another request already replaced it
        log.error("a worker process died; starting a new pool of %d workers", self.size)
        broken.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()
        self.pids = []

    async def analyze(self, data: bytes, source: str) -> Analysis:
        result: Analysis = await self._submit(_analyze, data, source, self._threads())
        return result

    async def recognize(self, data: bytes, source: str, *, annotate: bool) -> Recognition:
        result: Recognition = await self._submit(
            _recognize, data, source, annotate, self._threads()
        )
        return result
