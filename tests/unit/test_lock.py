"""The lock serves every box facelens supports: Linux x86_64 and aarch64, CPython 3.11 to 3.13.

A package without a wheel for one of them would send that box to a compiler (or fail), so each
package of ``uv.lock`` must carry a wheel installable there: glibc 2.36 (Debian 12, Raspberry Pi
OS bookworm; older manylinux tags are installable on newer glibc), never musl.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename

ROOT = Path(__file__).resolve().parents[2]
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

ARCHES = ("x86_64", "aarch64")
PYTHONS = ((3, 11), (3, 12), (3, 13))
# Shipped as source only, pure Python (data files and a setup.py): installs without a compiler.
PURE_SOURCE = {"face-recognition-models", "facelens"}


def _platforms(arch: str) -> list[str]:
    manylinux = [f"manylinux_2_{minor}_{arch}" for minor in range(36, 4, -1)]
    return [*manylinux, f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]


def _installable(python: tuple[int, int], arch: str) -> set[Tag]:
    platforms = _platforms(arch)
    return set(cpython_tags(python, platforms=platforms)) | set(
        compatible_tags(python, platforms=platforms)
    )


def _wheel_tags(package: dict[str, object]) -> set[Tag]:
    tags: set[Tag] = set()
    for wheel in package.get("wheels", []):  # type: ignore[attr-defined]
        tags |= parse_wheel_filename(wheel["url"].rsplit("/", 1)[1])[3]
    return tags


def test_the_lock_is_for_both_architectures_and_three_pythons() -> None:
    assert PYPROJECT["project"]["requires-python"] == ">=3.11,<3.14"
    environments = " ".join(PYPROJECT["tool"]["uv"]["environments"])
    for arch in ARCHES:
        assert f"platform_machine == '{arch}'" in environments
    assert LOCK["requires-python"] == ">=3.11, <3.14"


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("python", PYTHONS, ids=lambda v: f"cp3{v[1]}")
def test_every_locked_package_has_a_wheel_for(arch: str, python: tuple[int, int]) -> None:
    installable = _installable(python, arch)
    missing = [
        f"{package['name']} {package['version']}"
        for package in LOCK["package"]
        if package["name"] not in PURE_SOURCE and not (_wheel_tags(package) & installable)
    ]
    assert missing == []


def test_the_packages_installed_from_source_are_the_known_pure_ones() -> None:
    source_only = {p["name"] for p in LOCK["package"] if not p.get("wheels")}
    assert source_only == PURE_SOURCE


def test_a_missing_wheel_would_be_seen() -> None:
    # The check above sees a package with wheels for x86_64 only (dlib-bin before 20.0 had none
    # for aarch64): without this, a tag mix-up could let every package pass.
    x86_only = {"wheels": [{"url": "https://x/pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"}]}
    assert _wheel_tags(x86_only) & _installable((3, 11), "x86_64")
    assert not _wheel_tags(x86_only) & _installable((3, 11), "aarch64")
    assert not _wheel_tags(x86_only) & _installable((3, 12), "x86_64")
