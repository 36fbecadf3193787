"""CLI batches: one job per image file, spread over processes *forked* from this one.

The command has already loaded the models (and, for recognition, the gallery index); forked
workers inherit them copy-on-write and start in milliseconds, instead of each importing and
loading everything again as spawned processes must (~2.5 s each here). Processes, not threads,
because dlib's descriptor holds the GIL and OpenCV runs one thread per process here.
(The server's workers are the other pool: spawned, long-lived, see ``workers/pool.py``.)
"""

from __future__ import annotations

import functools
import hashlib
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from facelens.core.imaging import read_file_bytes
from facelens.core.pipeline import Analysis, Engine
from facelens.core.recognition import analyze_bytes
from facelens.errors import FaceLensError
from facelens.settings import Settings

T = TypeVar("T")

Job = Callable[[bytes, str], T]
"""Work on one file: its bytes and its name for messages → a result (raises FaceLensError)."""

# A forked worker pays off from about two files on; fewer run in this process.
MIN_FILES_PER_WORKER = 2


@dataclass(frozen=True, slots=True)
class FileResult(Generic[T]):
    """One file's outcome: its content hash and the job's result, or the error that stopped it."""

    path: Path
    sha256: str | None
    value: T | None
    error: FaceLensError | None


def run_job(job: Job[T], path: Path, max_pixels: int) -> FileResult[T]:
    """Read and hash one file, then run ``job`` on it; a foreseen failure is returned."""
    try:
        data = read_file_bytes(path, max_pixels=max_pixels)
    except FaceLensError as exc:
        return FileResult(path, None, None, exc)
    digest = hashlib.sha256(data).hexdigest()
    try:
        return FileResult(path, digest, job(data, str(path)), None)
    except FaceLensError as exc:
        return FileResult(path, digest, None, exc)


def worker_count(files: int, settings: Settings) -> int:
    """How many worker processes ``files`` files are worth (1 means: work in this process)."""
    return max(1, min(settings.workers, files // MIN_FILES_PER_WORKER))


# The job a forked worker inherits from its parent: set just before the fork, read only.
_inherited_job: Job[Any] | None = None
_inherited_max_pixels = 0


def _worker_init(die_with_parent: Callable[[], None]) -> None:
    # Ctrl-C goes to the whole process group: the parent alone decides how to stop. And a
    # worker must not outlive its parent (kill -9 of 'facelens enroll' left them running).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()


def _work(path: Path) -> FileResult[Any]:
    assert _inherited_job is not None, "worker forked without a job"
    return run_job(_inherited_job, path, _inherited_max_pixels)


def run_batch(paths: Sequence[Path], settings: Settings, job: Job[T]) -> Iterator[FileResult[T]]:
    """Yield a :class:`FileResult` per path as each finishes (not in input order)."""
    global _inherited_job, _inherited_max_pixels
    if not paths:
        return
    workers = worker_count(len(paths), settings)
    if workers == 1:
        for path in paths:
            yield run_job(job, path, settings.max_pixels)
        return
    # Imported here only: one photo (a recognize of one file) needs no pool.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from facelens.system.lifetime import die_with_parent

    _inherited_job, _inherited_max_pixels = job, settings.max_pixels
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_worker_init,
        initargs=(die_with_parent,),
    )
    try:
        futures = [pool.submit(_work, path) for path in paths]
        for future in as_completed(futures):
            yield future.result()
    finally:
        # On an interruption, queued files are dropped; results already yielded are kept.
        pool.shutdown(wait=True, cancel_futures=True)
        _inherited_job = None


def analyze_files(
    paths: Sequence[Path],
    settings: Settings,
    engine: Engine | None = None,
    *,
    enrolment: bool = False,
) -> Iterator[FileResult[Analysis]]:
    """Every face of each file, analysed on every core (``enrolment``: see Engine.analyze)."""
    engine = engine or Engine.load(settings)
    return run_batch(paths, settings, functools.partial(analyze_bytes, engine, enrolment=enrolment))
