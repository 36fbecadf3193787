"""The docs hold together: every relative link in README.md and docs/*.md reaches a file of the
repository and, when it names an anchor of a Markdown page, one of that page's headings."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from facelens.cli.app import EXIT_CODES

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks, inline code spans blanked."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(INLINE_CODE.sub("", line))
    return lines


def links(text: str) -> list[str]:
    return [target for line in prose_lines(text) for target in LINK.findall(line)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text (links as their words, code as its letters),
    lowercase, letters, digits, '_', '-' and spaces kept, spaces made '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    kept = (
        c
        for c in text
        if c in " -_" or unicodedata.category(c)[0] in "LMN" or unicodedata.category(c) == "Pc"
    )
    return "".join(kept).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated one gets -1, -2, ... as GitHub numbers them."""
    seen: dict[str, int] = {}
    found = set()
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """What is wrong with each relative link of page: a missing file or a missing heading."""
    problems = []
    for target in links(page.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # https:, mailto:, ...: not ours to check offline
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            problems.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            problems.append(f"{target}: no such heading in {file.name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_reaches_a_file_and_heading(page: Path) -> None:
    assert broken_links(page) == []


def test_a_link_to_a_missing_file_or_heading_is_reported(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Cameras and video: `facelens watch`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n"
        "[fine](other.md#cameras-and-video-facelens-watch) [self](#title) "
        "[web](https://example.com/x.md#nope) `[code](gone.md)`\n\n"
        "```\n[fenced](gone.md)\n```\n\n"
        "[gone](gone.md) [no heading](other.md#other) ![missing image](pic.png)\n"
    )
    assert broken_links(page) == [
        "gone.md: no such file",
        "other.md#other: no such heading in other.md",
        "pic.png: no such file",
    ]


def test_slugs_follow_github() -> None:
    assert slug("Use with Home Assistant, Double Take, Blue Iris…") == (
        "use-with-home-assistant-double-take-blue-iris"
    )
    assert slug("JSON API (`/v1`)") == "json-api-v1"
    assert slug("The original `/predictor` contract") == "the-original-predictor-contract"
    assert slug("Frigate NVR: `facelens frigate`") == "frigate-nvr-facelens-frigate"
    assert anchors("# A\n## A\n## A\n") == {"a", "a-1", "a-2"}


def test_every_exit_code_is_in_the_exit_code_table() -> None:
    cli = (ROOT / "docs" / "cli.md").read_text()
    start = cli.index("## Exit codes\n") + len("## Exit codes\n")
    after = re.search(r"^#{1,2} ", cli[start:], re.MULTILINE)  # to the next section, or the end
    table = cli[start : start + after.start()] if after else cli[start:]
    listed = {int(code) for code in re.findall(r"^\| +(\d+) \|", table, re.MULTILINE)}
    assert set(EXIT_CODES.values()) <= listed
