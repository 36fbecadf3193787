"""The ``facelens`` command's entry point (also ``python -m facelens``).

A command on photos needs its model loaded (SFace: ~150 ms to parse its 10 MB network), and
Python needs about as long again to import the CLI (typer, rich, pydantic). So the model
starts loading first, on a thread of its own (``models/background.py``), and the imports go
on beside it. Which command and model the command line names is guessed here from the raw
arguments, before typer parses them: a wrong guess costs only that work, never the answer,
as the command loads the profile it resolves (``--model``, ``FACELENS_MODEL``, the gallery's)
and uses what was loaded only if it is that profile.
"""

from __future__ import annotations

import copy
import gc
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

    from facelens.models.background import EmbeddingLoad

# Commands that load their model through the CLI's engine helpers (cli/app.py, load_engine).
PHOTO_COMMANDS = frozenset({"enroll", "recognize", "verify"})
# The options before the command that take a value (a test checks them against the app's).
VALUED_OPTIONS = frozenset({"--data-dir", "--model", "--detector", "--threshold", "--workers"})


def planned_command(argv: Sequence[str]) -> tuple[str, str] | None:
    """The photo command the command line ``argv`` (without the program) runs, and the model
    profile it will most likely load: its ``--model``, else "" for the default; None if its
    command is no photo command, or it asks for help or the version."""
    model = ""
    args = iter(argv)
    for arg in args:
        if arg in ("--help", "--version", "--"):
            return None
        if arg.startswith("-"):
            name, given, value = arg.partition("=")
            if name in VALUED_OPTIONS:
                value = value if given else next(args, "")
                if name == "--model":
                    model = value
            continue
        return (arg, model) if arg in PHOTO_COMMANDS and "--help" not in argv else None
    return None


def main() -> None:
    """Console-script entry point: start loading the planned model, then run the CLI."""
    # Importing the CLI makes ~85,000 objects that live as long as the process (modules,
    # classes, pydantic's validators), and the cyclic collector would scan them again and
    # again as they come (~145 collections, 40-90 ms of a recognize here): it waits until
    # they are in, then leaves them out of its scans for good (frozen: forked workers also
    # keep them shared).
    gc.disable()
    planned = planned_command(sys.argv[1:])
    early = None if planned is None else _start_loading(planned[1])
    from facelens.cli import app

    gc.freeze()
    gc.enable()
    if planned is not None:
        app = _only(app, planned[0])
    app(obj=early)


def _only(app: typer.Typer, command: str) -> typer.Typer:
    # typer builds the parser of every registered command before it parses (~20 ms for
    # facelens's 30, most of it reading their annotations); this run needs one. The
    # options before the command are the app's own, so parsing is the same.
    from typer.main import get_command_name

    one = copy.copy(app)
    one.registered_groups = []
    one.registered_commands = [
        info
        for info in app.registered_commands
        if info.callback is not None
        and (info.name or get_command_name(info.callback.__name__)) == command
    ]
    return one


def _start_loading(name: str) -> EmbeddingLoad | None:
    _import_numpy_with_one_blas_thread()
    # Every photo command uses OpenCV (imaging.py does). Imported here, before the thread
    # starts, the thread goes straight to the model file; imports on two threads would only
    # take turns on the GIL.
    import cv2  # noqa: F401

    from facelens.models.background import EmbeddingLoad
    from facelens.models.profiles import DEFAULT_MODEL, PROFILES

    name = name or DEFAULT_MODEL
    return next((EmbeddingLoad(p) for p in PROFILES.values() if p.name == name), None)


def _import_numpy_with_one_blas_thread() -> None:
    # numpy's OpenBLAS starts a thread per core as it loads, and each spins ~0.1 s waiting
    # for work, which costs ~35 ms of CPU and keeps a core busy while the model loads beside
    # the imports. A photo command's parallelism is forked processes (OpenCV runs one thread
    # per process too), and its one matrix product, the gallery search, was no faster on two
    # threads here (10^6 faces: 120 ms on one). One thread, in this process only: the
    # variable, unless the user set it, is gone again before anything else starts.
    if "OPENBLAS_NUM_THREADS" in os.environ:
        import numpy  # the user's choice stands

        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy  # noqa: F401
    finally:
        del os.environ["OPENBLAS_NUM_THREADS"]


if __name__ == "__main__":
    main()
