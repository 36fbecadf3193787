"""The command-line contract in-process (typer's CliRunner) with the stand-in colour model:
JSON shapes and exit codes in seconds. Real recognition and signals: tests/integration."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facelens.cli import app
from facelens.models.base import Box
from tests.support import fake_model
from tests.support.fake_model import photo

RED, BLUE = (200, 30, 30), (30, 30, 200)


@pytest.fixture(autouse=True)
def fake() -> Iterator[None]:
    with fake_model.installed():
        yield


def facelens(data: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--data-dir", str(data), *args])
    return result.exit_code, result.output


def test_enrol_recognise_and_list_as_json(tmp_path: Path) -> None:
    people = tmp_path / "people"
    (people / "ruby").mkdir(parents=True)
    (people / "ruby" / "a.png").write_bytes(photo((RED, Box(10, 10, 60, 60))))
    (people / "ruby" / "b.png").write_bytes(photo((RED, Box(100, 50, 160, 110))))
    code, out = facelens(tmp_path / "data", "enroll", str(people), "--json")
    assert code == 0, out
    assert json.loads(out)["people"][0] | {"skipped": []} == {
        "name": "ruby",
        "folder": "ruby",
        "enrolled": 2,
        "faces": 2,
        "unchanged": 0,
        "pruned": 0,
        "skipped": [],
    }
    probe = tmp_path / "probe.png"
    probe.write_bytes(photo((RED, Box(10, 10, 60, 60)), (BLUE, Box(200, 20, 260, 80))))
    code, out = facelens(tmp_path / "data", "recognize", str(probe), "--json")
    assert code == 0, out
    (entry,) = json.loads(out)
    assert sorted(f["name"] for f in entry["faces"]) == ["ruby", "unknown"]
    assert set(entry["faces"][0]) == {
        "name",
        "distance",
        "confidence",
        "box",
        "ambiguous",
        "runner_up",
        "margin",
    }
    code, out = facelens(tmp_path / "data", "people", "list", "--json")
    assert json.loads(out) == [{"name": "ruby", "faces": 2}]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("enroll", "/no/such/folder"), 3),
        (("people", "rename", "nobody", "x"), 7),
        (("--threshold", "-1", "people", "list"), 2),
        (("gallery", "migrate", "--model", "nonsense"), 2),
    ],
)
def test_exit_codes_say_what_kind_of_failure(
    tmp_path: Path, args: tuple[str, ...], code: int
) -> None:
    assert facelens(tmp_path / "data", *args)[0] == code


@pytest.mark.parametrize("command", ["watch", "frigate"])
def test_broker_url_help_keeps_its_brackets(command: str) -> None:
    # Help is rich markup: "[s]" would be read as a style (strike) and vanish unescaped.
    shown = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "300"}).output
    assert "mqtt[s]://[user:pass@]host[:port]" in shown


def test_the_enrolment_report_shows_names_and_paths_as_they_are_never_reordered(
    tmp_path: Path,
) -> None:
    """A folder or file named with markup ('[red]') or a right-to-left override (U+202E, which
    makes a terminal show what follows backwards) is printed visibly, as written; joiners,
    which names need, are printed as they are."""
    root = tmp_path / "[red]ro\u202eot"
    (root / "ok\u200dx").mkdir(parents=True)
    (root / "ok\u200dx" / "a.png").write_bytes(photo((RED, Box(10, 10, 60, 60))))
    (root / "ok\u200dx" / "x\u202egnp.png").write_bytes(photo())  # no face: skipped
    (root / "a\u202eb").mkdir()
    (root / "a\u202eb" / "a.png").write_bytes(photo((BLUE, Box(10, 10, 60, 60))))
    code, out = facelens(tmp_path / "data", "enroll", str(root))
    assert code == 0, out
    assert "\u202e" not in out
    lines = out.splitlines()
    assert lines[0] == f"Enrolment of {tmp_path}/[red]ro\\u202eot"
    assert "skipped ok\u200dx: x\\u202egnp.png: no face found" in lines
    assert any(
        line.startswith(f"ignored {tmp_path}/[red]ro\\u202eot/a\\u202eb: ") for line in lines
    )


def test_merge_moves_every_face_and_the_next_enrolment_follows_it(tmp_path: Path) -> None:
    people = tmp_path / "people"
    for folder, box in (("ruby", Box(10, 10, 60, 60)), ("Ruby R", Box(100, 50, 160, 110))):
        (people / folder).mkdir(parents=True)
        (people / folder / "a.png").write_bytes(photo((RED, box)))
    data = tmp_path / "data"
    assert facelens(data, "enroll", str(people))[0] == 0
    code, out = facelens(data, "people", "merge", "Ruby R", "ruby")
    assert code == 0, out
    assert "merged 'Ruby R' into 'ruby': 1 face moved; 'Ruby R' is removed" in out
    assert json.loads(facelens(data, "people", "list", "--json")[1]) == [
        {"name": "ruby", "faces": 2}
    ]
    # The folder 'Ruby R' now belongs to ruby: not enrolled again as a person of its own.
    code, out = facelens(data, "enroll", str(people), "--json")
    assert code == 0, out
    (person,) = json.loads(out)["people"]
    assert (person["name"], person["unchanged"], person["enrolled"]) == ("ruby", 2, 0)
    assert json.loads(facelens(data, "people", "list", "--json")[1]) == [
        {"name": "ruby", "faces": 2}
    ]
    assert facelens(data, "people", "merge", "ruby", "ruby")[0] == 9  # an unusable value
    assert facelens(data, "people", "merge", "nobody", "ruby")[0] == 7


def test_folders_and_renames_that_differ_only_in_spacing_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = tmp_path / "first"
    (first / "Tom Cruise").mkdir(parents=True)
    (first / "Tom Cruise" / "a.png").write_bytes(photo((RED, Box(10, 10, 60, 60))))
    assert facelens(data, "enroll", str(first))[0] == 0
    spaced = tmp_path / "spaced"
    (spaced / "Tom  Cruise").mkdir(parents=True)
    (spaced / "Tom  Cruise" / "b.png").write_bytes(photo((RED, Box(100, 50, 160, 110))))
    code, out = facelens(data, "enroll", str(spaced))
    assert code == 8 and "same name as 'Tom Cruise'" in out and "spacing" in out, out
    both = tmp_path / "both"
    shutil.copytree(first / "Tom Cruise", both / "Tom Cruise")
    shutil.copytree(spaced / "Tom  Cruise", both / "Tom  Cruise")
    code, out = facelens(tmp_path / "other", "enroll", str(both))
    assert code == 3 and "name the same person" in out, out
    (first / "Ann").mkdir()
    (first / "Ann" / "c.png").write_bytes(photo((BLUE, Box(10, 10, 60, 60))))
    assert facelens(data, "enroll", str(first))[0] == 0
    code, out = facelens(data, "people", "rename", "Ann", "Tom\u00a0 Cruise")
    assert code == 8 and "'Tom Cruise' already exists" in out, out
    assert json.loads(facelens(data, "people", "list", "--json")[1]) == [
        {"name": "Ann", "faces": 1},
        {"name": "Tom Cruise", "faces": 1},
    ]
