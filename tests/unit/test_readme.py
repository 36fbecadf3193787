"""The README is the front door: what it says about settings and exit codes must be true
(docs/settings.md, the page of every setting: tests/unit/test_settings_doc.py)."""

from __future__ import annotations

import re
from pathlib import Path

from facelens.cli.app import EXIT_CODES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_settings_section_sends_to_the_page_of_every_setting() -> None:
    section = README[README.index("## Settings") : README.index("## How it works")]
    assert "(docs/settings.md)" in section
    assert not re.findall(r"^\| `FACELENS_", section, re.MULTILINE)  # no second list to drift


def test_every_exit_code_is_in_the_exit_code_table() -> None:
    table = README[README.index("### Exit codes") : README.index("## Models")]
    listed = {int(code) for code in re.findall(r"^\| +(\d+) \|", table, re.MULTILINE)}
    assert set(EXIT_CODES.values()) <= listed
