"""What the server asks of a worker process: one frozen dataclass per task, sent whole over the
worker's pipe (``pool.py`` sends, ``worker.py`` answers with a ``match`` on the type).

``threads`` is set by the pool as it hands the task over: OpenCV's threads for it (every core
for a request alone in the server, one when others are in flight)."""

from __future__ import annotations

from dataclasses import dataclass

from facelens.core.recognition import DEFAULT_NAMING, Naming
from facelens.models.base import Embeddings


@dataclass(frozen=True, slots=True)
class Analyze:
    """Every face of one image, found and described (``enrolment``: see Engine.analyze)."""

    data: bytes
    source: str
    enrolment: bool = False
    threads: int = 1


@dataclass(frozen=True, slots=True)
class Recognize:
    """Every face of one image, named against the worker's gallery as ``naming`` says; drawn
    on the image (JPEG) if ``annotate``. Every API that names faces in a photo asks this."""

    data: bytes
    source: str
    annotate: bool = False
    naming: Naming = DEFAULT_NAMING
    threads: int = 1


@dataclass(frozen=True, slots=True)
class NameVectors:
    """Bare embeddings (sent by a client), each named on its own against the worker's gallery,
    with up to ``candidates`` people."""

    vectors: Embeddings
    candidates: int = 1
    threads: int = 1


Task = Analyze | Recognize | NameVectors
