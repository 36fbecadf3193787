"""Client libraries from PyPI, each in a virtual environment of its own made by the tests.

They pin conflicting ``urllib3`` versions, and some ship licences that keep them out of ours:
never installed beside facelens, only here, under ``.cache/compat-clients`` (made once per set
of pins), with the uv that scripts/setup installs.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".tools" / "bin" / "uv"
CACHE = ROOT / ".cache" / "compat-clients"
CLIENTS = {
    # deepstack-sdk imports cv2, matplotlib, PIL and validators, which it does not all declare.
    "deepstack-sdk": ["deepstack-sdk==0.2.1", "opencv-python-headless", "matplotlib"],
    # Undeclared: pillow. Both speak DeepStack's API; codeproject-ai-api never sends a key.
    "deepstack-python": ["deepstack-python==0.9", "codeproject-ai-api==0.1", "pillow"],
    # requests-toolbelt 0.9.1 (pinned by the SDK) fails to import with urllib3 2.
    "compreface-sdk": ["compreface-sdk==0.6.0", "urllib3==1.26.20"],
    # NVIDIA's client of the Open Inference Protocol (KServe v2), HTTP only.
    "tritonclient": ["tritonclient[http]==2.73.0"],
}


def client_python(name: str) -> Path:
    """The Python of a virtual environment holding client ``name`` (made once per pin set)."""
    if not UV.exists():
        raise AssertionError(f"{UV} is missing: run scripts/setup first (it installs uv).")
    requirements = CLIENTS[name]
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    venv = CACHE / f"{name}-{digest}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        subprocess.run(
            [str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True
        )
        subprocess.run(
            [str(UV), "pip", "install", "--quiet", "--python", str(python), *requirements],
            check=True,
        )
        (venv / ".complete").touch()
    return python


def run_client(name: str, script: str, **args: Any) -> Any:
    """Run ``script`` in the client's environment; it reads ``ARGS`` and prints JSON."""
    code = f"import json, sys\nARGS = json.loads(sys.argv[1])\n{script}"
    done = subprocess.run(
        [str(client_python(name)), "-c", code, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])
