"""The README is the front door: what it says about settings must be true (docs/settings.md,
the page of every setting: tests/unit/test_settings_doc.py), and every page of docs/ is
reachable from it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def section(text: str, heading: str) -> str:
    """From heading to the next heading of the same level or higher (or the end)."""
    start = text.index(heading + "\n")
    level = heading.split(" ")[0]
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", text, re.MULTILINE)]
    return text[start : min([e for e in ends if e > start] or [len(text)])]


def test_the_settings_section_sends_to_the_page_of_every_setting() -> None:
    settings = section(README, "## Settings")
    assert "(docs/settings.md)" in settings
    assert not re.findall(r"^\| `FACELENS_", settings, re.MULTILINE)  # no second list to drift


def test_every_page_of_the_docs_is_linked_from_the_readme() -> None:
    linked = set(re.findall(r"\]\((docs/[^)#\s]+\.md)", README))
    pages = {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")} - {"docs/README.md"}
    assert pages - linked == set()
