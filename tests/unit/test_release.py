"""What a release carries besides the code: its licence and what it holds, for this version."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import facelens

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_licence_is_the_one_pyproject_declares() -> None:
    assert PROJECT["license"] == {"text": "MIT"}
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) \d{4} the facelens authors$", licence, re.MULTILINE)
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in licence


def test_the_changelog_says_what_this_version_holds() -> None:
    version = PROJECT["version"]
    assert facelens.__version__ == version == importlib.metadata.version("facelens")
    changelog = (ROOT / "CHANGELOG.md").read_text()
    sections = re.findall(r"^## (\S+)", changelog, re.MULTILINE)
    assert sections and sections[0] == version  # the newest first
    this = changelog.split(f"## {version}", 1)[1].split("\n## ", 1)[0]
    assert len(re.findall(r"^- \*\*", this, re.MULTILINE)) >= 5  # a few lines per area
