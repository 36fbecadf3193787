"""The ``facelens`` command: parse, call the engine or gallery, print. No model work here."""

from __future__ import annotations

from facelens.cli import (  # noqa: F401  (registers commands)
    backup,
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
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
