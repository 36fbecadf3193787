"""The command's start: the model a command line will need is guessed before typer parses it
(facelens/__main__.py) and loads on a thread (models/background.py), and the CLI's engine uses
it only if it is the profile the command resolves."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from facelens.__main__ import PHOTO_COMMANDS, VALUED_OPTIONS, _only, planned_command
from facelens.cli import app
from facelens.errors import ModelError
from facelens.models import profiles
from facelens.models.background import EmbeddingLoad
from facelens.models.base import Aligner, Box, Embedder
from tests.support import fake_model
from tests.support.fake_model import photo

RED = (200, 30, 30)


@pytest.mark.parametrize(
    ("argv", "planned"),
    [
        (["recognize", "a.jpg"], ("recognize", "")),
        (["--data-dir", "/d", "recognize", "a.jpg"], ("recognize", "")),
        (["--data-dir=/d", "--model", "dlib", "enroll", "people"], ("enroll", "dlib")),
        (["--model=dlib", "--debug", "verify", "a.jpg", "b.jpg"], ("verify", "dlib")),
        (["--threshold", "0.5", "--workers", "2", "--detector", "yunet", "verify"], ("verify", "")),
        (["--model", "recognize", "recognize", "a.jpg"], ("recognize", "recognize")),
        (["people", "list"], None),
        (["recognize", "--help"], None),
        (["--help"], None),
        (["--version", "recognize", "a.jpg"], None),
        (["--data-dir"], None),
        ([], None),
    ],
)
def test_planned_command_is_the_photo_command_of_the_line_and_its_model(
    argv: list[str], planned: tuple[str, str] | None
) -> None:
    assert planned_command(argv) == planned


@pytest.mark.parametrize("command", sorted(PHOTO_COMMANDS))
@pytest.mark.parametrize("args", [["--help"], [], ["--no-such-option"]])
def test_the_app_of_one_command_parses_it_as_the_whole_app_does(
    command: str, args: list[str]
) -> None:
    whole = CliRunner().invoke(app, [command, *args])
    one = CliRunner().invoke(_only(app, command), [command, *args])
    assert (one.exit_code, one.output) == (whole.exit_code, whole.output)
    assert whole.exit_code in (0, 2)
    assert list(typer.main.get_command(_only(app, command)).commands) == [command]  # type: ignore[attr-defined]


def test_the_options_skipped_with_their_value_are_the_apps_options_that_take_one() -> None:
    group = typer.main.get_command(app)
    valued = {
        opt
        for param in group.params
        if not getattr(param, "is_flag", True)
        for opt in param.opts
        if opt.startswith("--")
    }
    assert valued == VALUED_OPTIONS
    assert set(group.commands) >= PHOTO_COMMANDS


class Counted:
    """A profile's ``load_embedding`` that counts its calls."""

    def __init__(self, profile: profiles.ModelProfile) -> None:
        self.calls = 0
        self._load = profile.load_embedding

    def __call__(self) -> tuple[Aligner, Embedder]:
        self.calls += 1
        return self._load()


@pytest.fixture
def fake() -> Iterator[None]:
    with fake_model.installed():
        yield


def recognize_with(tmp_path: Path, early: EmbeddingLoad) -> list[str]:
    people = tmp_path / "people"
    (people / "ruby").mkdir(parents=True)
    (people / "ruby" / "a.png").write_bytes(photo((RED, Box(10, 10, 60, 60))))
    data = str(tmp_path / "data")
    enrolled = CliRunner().invoke(app, ["--data-dir", data, "enroll", str(people)])
    assert enrolled.exit_code == 0, enrolled.output
    probe = tmp_path / "probe.png"
    probe.write_bytes(photo((RED, Box(100, 50, 150, 100))))
    result = CliRunner().invoke(
        app, ["--data-dir", data, "recognize", str(probe), "--json"], obj=early
    )
    assert result.exit_code == 0, result.output
    return [face["name"] for face in json.loads(result.output)[0]["faces"]]


def test_recognize_uses_the_models_loading_since_start_up(tmp_path: Path, fake: None) -> None:
    counted = Counted(profiles.PROFILES[profiles.DEFAULT_MODEL])
    profile = dataclasses.replace(profiles.PROFILES[profiles.DEFAULT_MODEL], load_embedding=counted)
    profiles.PROFILES[profiles.DEFAULT_MODEL] = profile
    early = EmbeddingLoad(profile)
    early.wait()
    assert counted.calls == 1
    assert recognize_with(tmp_path, early) == ["ruby"]
    assert counted.calls == 2  # the enrolment's own load, and none more for recognize


def test_models_of_another_profile_loaded_at_start_up_are_not_used(
    tmp_path: Path, fake: None
) -> None:
    def wrong() -> tuple[Aligner, Embedder]:
        raise AssertionError("the models of the guessed profile were used")

    guessed = dataclasses.replace(
        profiles.PROFILES[profiles.DEFAULT_MODEL], id="another-model", load_embedding=wrong
    )
    early = EmbeddingLoad(guessed)  # its load fails, and nobody asks for it
    assert recognize_with(tmp_path, early) == ["ruby"]


def test_a_load_that_failed_raises_its_error_where_the_models_are_asked_for() -> None:
    def damaged() -> tuple[Aligner, Embedder]:
        raise ModelError("Model file x.onnx is not the expected one.")

    early = EmbeddingLoad(
        dataclasses.replace(profiles.PROFILES[profiles.DEFAULT_MODEL], load_embedding=damaged)
    )
    with pytest.raises(ModelError, match="not the expected one"):
        early.models()
