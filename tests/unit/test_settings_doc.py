"""docs/settings.md is written from the Settings class and must say what facelens reads."""

from __future__ import annotations

import re
from pathlib import Path

from facelens.cli.settings_doc import markdown
from facelens.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_the_settings_page_is_the_one_the_settings_class_writes() -> None:
    assert DOC.read_text() == markdown(), (
        "docs/settings.md is out of date: run "
        "'.venv/bin/python -m facelens.cli.settings_doc > docs/settings.md'"
    )


def test_every_setting_has_a_row_with_a_default_and_a_description() -> None:
    rows = re.findall(r"^\| `(FACELENS_[A-Z_0-9]+)` \| ([^|]+) \| (.+) \|$", markdown(), re.M)
    assert [name for name, _, _ in rows] == [f"FACELENS_{n.upper()}" for n in Settings.model_fields]
    assert all(default.strip() and len(what) > 20 for _, default, what in rows)


def test_a_default_computed_at_run_time_is_shown_in_words_not_as_this_machines_value() -> None:
    rows = dict(re.findall(r"^\| `(FACELENS_[A-Z_0-9]+)` \| ([^|]+) \|", markdown(), re.M))
    assert rows["FACELENS_WORKERS"] == rows["FACELENS_MAX_STREAMS"] == "the CPU count"
    assert "~/.local/share/facelens" in rows["FACELENS_DATA_DIR"]
    assert rows["FACELENS_PORT"] == "`5000`" and rows["FACELENS_EVENT_CROPS"] == "`false`"
