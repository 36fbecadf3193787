"""Analysing many image files on every core.

dlib's ResNet descriptor holds the GIL, so threads cannot use a second core for embedding:
files are spread over worker processes. Workers are forked from a parent that has already
loaded the models, so they start in milliseconds and share the weights copy-on-write instead of
each importing and loading everything again (spawn cost ~2.5 s per worker on these machines).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import signal
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from facelens.errors import FaceLensError, InputPathError
from facelens.imaging import decode_image, read_image_file
from facelens.pipeline import Analysis, Engine
from facelens.settings import Settings

# A forked worker pays off from about two files on; fewer run in this process.
MIN_FILES_PER_WORKER = 2


@dataclass(frozen=True, slots=True)
class FileResult:
    """One file's outcome: its content hash and analysis, or the error that stopped it."""

    path: Path
    sha256: str | None
    analysis: Analysis | None
    error: FaceLensError | None


def analyze_file(engine: Engine, path: Path) -> FileResult:
    """Read, hash, decode and analyse one file; a foreseen failure is returned, not raised."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = "no such file" if isinstance(exc, FileNotFoundError) else exc.strerror or str(exc)
        return FileResult(path, None, None, InputPathError(f"{path}: cannot be read ({reason})."))
    digest = hashlib.sha256(data).hexdigest()
    try:
        image = decode_image(data, source=str(path), max_pixels=engine.settings.max_pixels)
        return FileResult(path, digest, engine.analyze(image), None)
    except FaceLensError as exc:
        return FileResult(path, digest, None, exc)


def worker_count(files: int, settings: Settings) -> int:
    """How many worker processes ``files`` files are worth (1 means: work in this process)."""
    return max(1, min(settings.workers, files // MIN_FILES_PER_WORKER))


# The engine a forked worker inherits from its parent: set just before the fork, read only.
_inherited_engine: Engine | None = None


def _ignore_sigint() -> None:
    # Ctrl-C goes to the whole process group: the parent alone decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _work(path: Path) -> FileResult:
    assert _inherited_engine is not None, "worker forked without an engine"
    return analyze_file(_inherited_engine, path)


def analyze_files(
    paths: Sequence[Path], settings: Settings, engine: Engine | None = None
) -> Iterator[FileResult]:
    """Yield a :class:`FileResult` per path as each finishes (not in input order)."""
    global _inherited_engine
    if not paths:
        return
    engine = engine or Engine.load(settings)
    workers = worker_count(len(paths), settings)
    if workers == 1:
        for path in paths:
            yield analyze_file(engine, path)
        return
    _inherited_engine = engine
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=_ignore_sigint
    )
    try:
        futures = [pool.submit(_work, path) for path in paths]
        for future in as_completed(futures):
            yield future.result()
    finally:
        # On an interruption, queued files are dropped; results already yielded are kept.
        pool.shutdown(wait=True, cancel_futures=True)
        _inherited_engine = None


def read_and_analyze(engine: Engine, path: Path) -> Analysis:
    """Analyse one file in this process, raising its error (for single-image commands)."""
    image = read_image_file(path, max_pixels=engine.settings.max_pixels)
    return engine.analyze(image)
