"""Inside one of the server's worker processes: load the models once, then do one task at a time
for the server, over a pipe, until the server closes it.

The server side (``workers/pool.py``) starts these processes with *spawn*, sends a task
(``workers/tasks.py``: one frozen dataclass per kind) and reads back ``("ok", result)`` or
``("error", FaceLensError)``; an unforeseen exception comes back as ``("crash", text)`` and the
process goes on. Nothing here knows about HTTP.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
from multiprocessing.connection import Connection

import cv2
import numpy as np

from facelens.core.annotate import UNKNOWN_COLOUR, Label, draw_labels
from facelens.core.imaging import DecodedImage
from facelens.core.matching import UNKNOWN, Candidate, Match, identify_ranked
from facelens.core.pipeline import Engine
from facelens.core.recognition import analyze_bytes, recognize_bytes
from facelens.errors import FaceLensError
from facelens.gallery import StoredGallery, open_gallery
from facelens.models.base import Box, Embeddings
from facelens.settings import Settings
from facelens.system.lifetime import die_with_parent
from facelens.workers.tasks import Analyze, NameVectors, Recognize, Task

log = logging.getLogger(__name__)


def _warm_up(engine: Engine) -> None:
    """Run each stage once so the first request does not pay for loading fonts (~0.4 s)."""
    blank = np.full((64, 64, 3), 127, dtype=np.uint8)  # grey
    engine.analyze(DecodedImage(blank, "warm-up", "PNG"))
    draw_labels(blank, [Label(Box(8, 8, 40, 40), UNKNOWN, UNKNOWN_COLOUR)])


def _use_threads(threads: int) -> None:
    # OpenCV's thread pool (YuNet, SFace, resizing) is per process; dlib's models use one
    # thread whatever this says. Spawned workers never fork, so a pool with threads is safe.
    if cv2.getNumThreads() != threads:
        cv2.setNumThreads(threads)


class Tasks:
    """What a worker does for the server (``tasks.py``), with the OpenCV threads each names."""

    def __init__(self, engine: Engine, gallery: StoredGallery) -> None:
        self.engine = engine
        self.gallery = gallery

    def run(self, task: Task) -> object:
        _use_threads(task.threads)
        match task:
            case Analyze(data, source, enrolment):
                return analyze_bytes(self.engine, data, source, enrolment=enrolment)
            case Recognize(data, source, annotate, naming):
                return recognize_bytes(
                    self.engine,
                    data,
                    source,
                    self.gallery.index(),
                    annotate="jpeg" if annotate else None,
                    naming=naming,
                )
            case NameVectors(vectors, top):
                return self.name_vectors(vectors, top)

    def name_vectors(
        self, vectors: Embeddings, top: int
    ) -> list[tuple[Match, tuple[Candidate, ...]]]:
        index, scoring = self.gallery.index(), self.engine.scoring
        # Each on its own, not jointly: they may come from different photos.
        return [identify_ranked(row[None, :], index, scoring, top)[0] for row in vectors]


def serve(conn: Connection, settings: Settings) -> None:
    """The process's whole life: load, say ready (or why not), then answer tasks."""
    if multiprocessing.parent_process() is not None:  # a child process, not a test's thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the server decides how to stop
        die_with_parent()
    try:
        gallery = open_gallery(settings, follow=True)
    except FaceLensError as exc:
        conn.send(("error", exc))
        return
    # Closed when the worker ends: in the fast test tier it is a thread of a process that
    # goes on, where the gallery's connections would stay open for good.
    with contextlib.closing(gallery):
        try:
            engine = Engine.load(settings.with_model(gallery.profile.name))
            _warm_up(engine)
            # The stored faces are read now: no request waits for them, and recognition goes
            # on from memory if the file is found damaged later.
            gallery.index()
        except FaceLensError as exc:
            conn.send(("error", exc))
            return
        conn.send(("ok", engine.model_id))
        tasks = Tasks(engine, gallery)
        while True:
            try:
                task = conn.recv()
            except (EOFError, OSError):  # the server closed the pipe or went away
                return
            if task is None:  # the server's "stop"
                return
            try:
                conn.send(("ok", tasks.run(task)))
            except FaceLensError as exc:
                conn.send(("error", exc))
            except Exception as exc:  # answered as a crash (500); the worker stays usable
                log.exception("worker task %s failed", type(task).__name__)
                conn.send(("crash", f"{type(exc).__name__}: {exc}"))
