"""facelens: self-hosted face recognition for the edge.

The public API is the engine and its result types; everything else is reached through them.
"""

from facelens.errors import FaceLensError
from facelens.pipeline import Analysis, Engine, Face, RecognizedFace, Verification
from facelens.settings import Settings

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
