"""A profile's aligner and embedder, loading on a thread of their own.

SFace's 10 MB network takes ~150 ms to parse (and its file ~6 ms to check), and OpenCV, like
hashlib, releases the GIL while it works. Started before the command's own imports, the load
runs on the second core beside them, the settings, the gallery and the photo's decoding,
instead of after them (``facelens/__main__.py`` starts it; the CLI's engine helpers take it).
"""

from __future__ import annotations

import threading

from facelens.models.base import Aligner, Embedder
from facelens.models.profiles import ModelProfile


class EmbeddingLoad:
    """``profile.load_embedding()``, started now on a thread; :meth:`models` waits for it."""

    def __init__(self, profile: ModelProfile) -> None:
        self.profile = profile
        self._models: tuple[Aligner, Embedder] | None = None
        self._error: Exception | None = None
        # Not a daemon: should the command end first (a usage error), the interpreter waits
        # for the load to finish instead of unloading OpenCV while it still runs.
        self._thread = threading.Thread(
            target=self._load, name=f"load-{profile.name}", daemon=False
        )
        self._thread.start()

    def _load(self) -> None:
        try:
            self._models = self.profile.load_embedding()
        except Exception as exc:  # raised where the models are asked for, as a load would
            self._error = exc

    def wait(self) -> None:
        """Until the load has ended, well or not (no thread may run while a process forks)."""
        self._thread.join()

    def models(self) -> tuple[Aligner, Embedder]:
        """The loaded aligner and embedder; the load's own error (a ModelError) if it failed."""
        self.wait()
        if self._error is not None:
            raise self._error
        assert self._models is not None
        return self._models
