"""What the real ``facelens`` command loads before its first photo (``python -X importtime``
lists every module a process imports, on any thread)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

FACELENS = str(Path(sys.executable).with_name("facelens"))
# Libraries that no recognise of a photo needs: the server, the client, plots, streams,
# tracking, the dlib model (the gallery's is sface), and the process pool one photo skips.
NOT_NEEDED = (
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "tenacity",
    "paho",
    "prometheus_client",
    "matplotlib",
    "scipy",
    "supervision",
    "trackers",
    "dlib",
    "rich.progress",
    "rich.live",
    "multiprocessing",
    "concurrent.futures.process",
)


def imported_modules(*args: str, env: dict[str, str]) -> tuple[set[str], str]:
    """The modules ``facelens *args`` imports, and what it printed."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", FACELENS, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    names = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", result.stderr, re.M))
    return names, result.stdout


def test_recognize_of_one_photo_imports_only_what_it_needs(
    tmp_path: Path, people_dir: Path, faces_dir: Path
) -> None:
    env = {**os.environ, "FACELENS_DATA_DIR": str(tmp_path / "data")}
    subprocess.run([FACELENS, "enroll", str(people_dir)], env=env, check=True, timeout=300)
    photo = faces_dir / "probes" / "obama-720p.jpg"
    names, out = imported_modules("recognize", "--json", str(photo), env=env)
    assert [face["name"] for face in json.loads(out)[0]["faces"]] == ["obama"]
    assert {"cv2", "facelens.models.opencv_zoo", "facelens.gallery"} <= names  # it did run
    loaded = sorted(
        name for name in names if any(name == m or name.startswith(f"{m}.") for m in NOT_NEEDED)
    )
    assert loaded == []
