"""facelens: self-hosted face recognition for the edge.

The public API is the engine and its result types; everything else is reached through them.
They are imported on first use, so that ``facelens --help`` does not load numpy and OpenCV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facelens.core.pipeline import Analysis, Engine, Face, RecognizedFace, Verification
    from facelens.errors import FaceLensError
    from facelens.settings import Settings

_EXPORTS = {
    "Analysis": "facelens.core.pipeline",
    "Engine": "facelens.core.pipeline",
    "Face": "facelens.core.pipeline",
    "FaceLensError": "facelens.errors",
    "RecognizedFace": "facelens.core.pipeline",
    "Settings": "facelens.settings",
    "Verification": "facelens.core.pipeline",
}
__all__ = [
    "Analysis",
    "Engine",
    "Face",
    "FaceLensError",
    "RecognizedFace",
    "Settings",
    "Verification",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'facelens' has no attribute {name!r}")
