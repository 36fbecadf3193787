"""facelens's optional parts (``pip install 'facelens[NAME]'``), asked for where they are used.

The default install (and the default image) carries what the default model, the server and the
cameras need; dlib's models and the plots are extras. A command that needs a missing one stops
with a :class:`~facelens.errors.MissingExtra` naming the extra and how to install it, instead of
an ``ImportError`` deep inside.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from facelens.errors import MissingExtra

# Each extra of pyproject.toml and the top-level modules it brings.
EXTRAS: dict[str, tuple[str, ...]] = {
    "dlib": ("dlib", "face_recognition_models"),
    "plots": ("matplotlib",),
}


def installed(extra: str) -> bool:
    """Whether every module of ``extra`` can be imported (found, not imported: that is cheap)."""
    return all(importlib.util.find_spec(module) is not None for module in EXTRAS[extra])


def require(extra: str, what: str) -> None:
    """Stop with :class:`MissingExtra` unless ``extra`` is installed; ``what`` needs it."""
    if not installed(extra):
        raise MissingExtra(
            f"{what} needs facelens's optional part '{extra}', which is not installed here. "
            f"Install it: pip install 'facelens[{extra}]' (a checkout's scripts/setup installs "
            f"every part; the container image: build it with --build-arg EXTRAS={extra}).",
            api_message=f"{what} needs the optional part '{extra}', which this server does not "
            "have installed; ask its operator.",
        )


def load(extra: str, module: str, what: str) -> ModuleType:
    """``module`` of ``extra``, imported, or :class:`MissingExtra`."""
    require(extra, what)
    return importlib.import_module(module)
