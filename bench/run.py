"""Every facelens benchmark in one run, each model profile side by side with the others and
with the face_recognition library: pipeline stages per image size and per probe, batch
identification, whole CLI commands, start-up, accuracy on the shared pairs and on lfw-dev,
the figures behind each default threshold, the HTTP server under load, gallery search at scale.

Run with ``scripts/bench`` (it installs the comparison library into .bench-venv/ first). Writes
``bench/results/<date>.json`` and regenerates ``docs/benchmarks.md`` with its plots. Never run by
the test suite. ``--only SECTION`` (repeatable) runs a part; ``--quick`` uses fewer repetitions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(
    0, str(REPO)
)  # for tests.support.server (the same real-server harness as the tests)

from bench import measure, shared  # noqa: E402

SECTIONS = (
    "pipeline",
    "probes",
    "identification",
    "cli",
    "startup",
    "accuracy",
    "lfw",
    "threshold",
    "server",
    "gallery",
    "stream",
    "shared",
)
NEEDS_MODELS = {"pipeline", "probes", "identification", "stream"}


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 2**20, 1),
        "python": platform.python_version(),
        "commit": commit,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=SECTIONS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--gallery-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--queries", type=int, default=50, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.gallery_child:
        json.dump(measure.gallery_child(args.gallery_child, args.queries), sys.stdout)
        return
    sections = args.only or list(SECTIONS)
    repeats = 3 if args.quick else 5
    results: dict[str, Any] = {
        "machine": machine(),
        "settings": {
            name: {
                "summary": p.summary,
                "threshold": p.threshold,
                "detect_max_side": p.detect_max_side,
                "detector": p.detectors[0],
            }
            for name, p in measure.PROFILES.items()
        },
    }
    with tempfile.TemporaryDirectory(prefix="facelens-bench-") as name:
        tmp = Path(name)
        models = measure.Models(tmp) if NEEDS_MODELS & set(sections) else None
        steps = {
            "pipeline": lambda: measure.pipeline(models, repeats, tmp),
            "probes": lambda: measure.probes(models, repeats),
            "identification": lambda: measure.identification(models, repeats),
            "cli": lambda: measure.cli(3, tmp),
            "startup": lambda: measure.startup(repeats, tmp),
            "accuracy": lambda: measure.accuracy(tmp),
            "lfw": lambda: measure.lfw(tmp),
            "threshold": lambda: measure.threshold(tmp),
            "server": lambda: measure.server(tmp, args.quick),
            "gallery": lambda: measure.gallery(args.quick),
            "stream": lambda: measure.stream(models, tmp),
            "shared": lambda: shared.shared(tmp, args.quick),
        }
        for section in sections:
            print(f"bench: {section} ...", file=sys.stderr, flush=True)
            results[section] = steps[section]()
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{dt.date.today().isoformat()}.json"
    if path.exists() and args.only:  # a partial run updates the day's file
        results = {**json.loads(path.read_text()), **results}
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"bench: wrote {path.relative_to(REPO)}", file=sys.stderr)
    from bench.report import write_report

    write_report(results, REPO / "docs")
    print("bench: wrote docs/benchmarks.md", file=sys.stderr)


if __name__ == "__main__":
    main()
