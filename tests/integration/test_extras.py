"""Optional parts: a command that needs one that is missing names it and how to install it.

The modules of an extra are hidden from a fresh interpreter (``sys.modules[name] = None``, which
makes both ``import`` and ``find_spec`` see them as absent), as on the default image; the test
container checks the same on the real image, where they are not installed at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from facelens import errors
from facelens.system import extras

pytestmark = pytest.mark.integration  # starts processes (see docs/development.md's tiers)


def _facelens_without(modules: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        f"for name in {modules!r}: sys.modules[name] = None\n"
        "from facelens.cli import main\n"
        f"sys.argv = ['facelens', *{list(args)!r}]\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_every_extra_of_the_project_is_known_here() -> None:
    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert set(declared) == set(extras.EXTRAS)


def test_installed_extras_are_seen_as_installed() -> None:
    # The test environment (scripts/setup) has every part.
    assert all(extras.installed(name) for name in extras.EXTRAS)
    extras.require("dlib", "anything")  # no error


def test_the_error_names_the_extra_and_the_way_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert not extras.installed("plots")
    with pytest.raises(errors.MissingExtra) as raised:
        extras.require("plots", "The ROC plot (--plot)")
    message = str(raised.value)
    assert message.startswith("The ROC plot (--plot) needs facelens's optional part 'plots'")
    assert "pip install 'facelens[plots]'" in message
    assert "--build-arg EXTRAS=plots" in message
    assert "pip install" not in raised.value.api_message  # an HTTP client cannot run it
    assert isinstance(raised.value, errors.ModelError)  # exit 6, HTTP 503 like other models


def test_the_dlib_model_without_its_extra_stops_with_exit_6(tmp_path: Path) -> None:
    done = _facelens_without(
        ("dlib",), "--data-dir", str(tmp_path), "--model", "dlib", "info", "--json"
    )
    assert done.returncode == 6, done.stderr
    assert "dlib's models (--model dlib, --detector hog or cnn) needs" in done.stderr
    assert "pip install 'facelens[dlib]'" in done.stderr.replace("\n", " ")
    assert "Traceback" not in done.stderr


def test_without_dlib_the_default_model_works_and_info_says_what_is_missing(
    tmp_path: Path,
) -> None:
    done = _facelens_without(
        ("dlib", "face_recognition_models", "matplotlib"),
        "--data-dir",
        str(tmp_path),
        "info",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["model"] == "sface"
    assert info["extras"] == {"dlib": False, "plots": False}


def test_a_missing_plot_part_is_said_before_the_long_work(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("first,second,same\na.jpg,b.jpg,1\n")
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(b"not read: the command stops before")
    done = _facelens_without(
        ("matplotlib",),
        "--data-dir",
        str(tmp_path / "data"),
        "eval",
        "pairs",
        str(pairs),
        "--images",
        str(tmp_path),
        "--plot",
        str(tmp_path / "roc.png"),
    )
    assert "The ROC plot (--plot) needs facelens's optional part 'plots'" in done.stderr.replace(
        "\n", " "
    )
    assert done.returncode == 6
    assert not (tmp_path / "data").exists()  # stopped before the model or the gallery
