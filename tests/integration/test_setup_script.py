"""scripts/setup on a box it cannot serve says so in one line, before it installs anything.

Each case runs the real script with a PATH holding only the tools it uses, plus stand-ins for
``uname`` (another machine) or ``python3`` (another version), in a copy of the scripts folder so
nothing is installed into the repository.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # starts processes (see docs/development.md's tiers)

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("bash", "dirname", "cut", "sha256sum", "env", "cat", "rm", "touch")


def _stand_in(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/bash\n{script}\n")
    path.chmod(0o755)


def _run_setup(
    tmp_path: Path, *, machine: str, python_version: str | None
) -> subprocess.CompletedProcess[str]:
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup", checkout / "scripts" / "setup")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    system, arch = machine.split()
    _stand_in(bin_dir, "uname", f'[ "$1" = -s ] && echo {system} || echo {arch}')
    if python_version is not None:
        # Answers the script's questions as a python3 without the venv module would.
        _stand_in(
            bin_dir,
            "python3",
            'case "$2" in *executable*) echo "$0";; *ensurepip*) exit 1;; '
            f"*) echo {python_version};; esac",
        )
    return subprocess.run(
        ["bash", str(checkout / "scripts" / "setup")],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("machine", "said"),
    [
        ("Linux armv7l", "this is 32-bit ARM (Linux armv7l): install the 64-bit OS"),
        ("Darwin arm64", "runs on Linux x86_64 or aarch64 (64-bit ARM"),
        ("Linux riscv64", "not on 'Linux riscv64'"),
    ],
)
def test_another_machine_is_named_with_what_to_do(tmp_path: Path, machine: str, said: str) -> None:
    result = _run_setup(tmp_path, machine=machine, python_version="3.12")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert said in result.stderr
    assert not (tmp_path / "checkout" / ".tools").exists()  # nothing installed


@pytest.mark.parametrize("version", ["3.10", "3.14", None])
def test_an_unsupported_python_is_named_with_the_ones_that_work(
    tmp_path: Path, version: str | None
) -> None:
    result = _run_setup(tmp_path, machine="Linux aarch64", python_version=version)
    assert result.returncode == 1
    line = result.stderr.strip()
    assert line.startswith("error: facelens needs Python 3.11, 3.12 or 3.13 (found: ")
    assert (f"python3 is {version}" if version else "no python3 on PATH") in line
    assert "apt install python3 python3-venv" in line
    assert not (tmp_path / "checkout" / ".tools").exists()


def test_a_supported_box_gets_past_the_checks(tmp_path: Path) -> None:
    # aarch64 and Python 3.13 pass both checks; the stand-in python has no venv module, which
    # is the next thing the script says, naming the interpreter itself.
    result = _run_setup(tmp_path, machine="Linux aarch64", python_version="3.13")
    assert result.returncode == 1
    assert result.stderr == (
        f"error: {tmp_path / 'bin' / 'python3'} has no venv module; install it "
        "(Debian/Ubuntu: apt install python3-venv) and re-run.\n"
    )
