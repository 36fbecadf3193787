"""The ``facelens`` command: parse, call the engine or gallery, print. No model work here."""

from __future__ import annotations

from facelens.cli import (  # noqa: F401  (registers commands)
    backup,
    db,
    evaluation,
    frigate,
    gallery,
    people,
    photos,
    remote,
    system,
    watch,
)
from facelens.cli.app import app


def main() -> None:
    """The entry point of installs made before ``facelens.__main__:main`` was (which starts
    the model loading before this package is imported): the same command, run as ``python
    -m facelens`` runs it (the package's main module is the layer above this one)."""
    import runpy

    runpy.run_module("facelens", run_name="__main__", alter_sys=False)


__all__ = ["app", "main"]
