"""The README is the front door: what it says about settings and exit codes must be true."""

from __future__ import annotations

import re
from pathlib import Path

from facelens.cli.app import EXIT_CODES
from facelens.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_settings_table_and_no_other() -> None:
    table = README[README.index("## Settings") : README.index("## How it works")]
    listed = set(re.findall(r"^\| `(FACELENS_[A-Z_0-9]+)` \|", table, re.MULTILINE))
    assert listed == {f"FACELENS_{name.upper()}" for name in Settings.model_fields}


def test_every_exit_code_is_in_the_exit_code_table() -> None:
    table = README[README.index("### Exit codes") : README.index("## Models")]
    listed = {int(code) for code in re.findall(r"^\| +(\d+) \|", table, re.MULTILINE)}
    assert set(EXIT_CODES.values()) <= listed
