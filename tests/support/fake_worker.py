"""Stand-ins for a worker process's main function (``facelens.workers.worker.serve``): they speak
the same pipe protocol without loading a model, so the pool's own behaviour (time limits, dead
workers, abandoned work, queue) is tested in seconds. Module-level, so spawn can import them."""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection

from facelens.errors import ModelError, NoFaceFound
from facelens.settings import Settings


def serve(conn: Connection, settings: Settings) -> None:
    """Tasks are read from the image bytes: b"sleep:S", b"die", b"crash", b"noface", else echo
    (the answer is the worker's pid)."""
    conn.send(("ok", "fake-model"))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        data = message.data  # an Analyze or Recognize task (facelens.workers.tasks)
        if data.startswith(b"sleep:"):
            time.sleep(float(data[6:]))
        elif data == b"die":
            os._exit(1)
        elif data == b"crash":
            conn.send(("crash", "ValueError: boom"))
            continue
        elif data == b"noface":
            conn.send(("error", NoFaceFound("No face was found in the image.")))
            continue
        conn.send(("ok", os.getpid()))


def serve_without_models(conn: Connection, settings: Settings) -> None:
    conn.send(("error", ModelError("Model file x.onnx is missing. Reinstall it.")))
