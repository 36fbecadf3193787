"""Every facelens benchmark in one run: pipeline stages per image size, side by side with the
face_recognition library, enrolment, the HTTP server under load, gallery search at scale, memory.

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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.server (the same real-server harness as the tests)

from tests.server import FACELENS, Server, cpu_seconds  # noqa: E402

from facelens.batch import analyze_files  # noqa: E402
from facelens.gallery.sqlite import SQLiteGallery  # noqa: E402
from facelens.imaging import decode_image  # noqa: E402
from facelens.matching import GalleryIndex, identify  # noqa: E402
from facelens.pipeline import Engine, match_faces  # noqa: E402
from facelens.settings import Settings  # noqa: E402

FACES = Path(os.environ.get("FACELENS_TEST_FACES", REPO.parent / "shared" / "data" / "faces"))
BENCH_PYTHON = REPO / ".bench-venv" / "bin" / "python"
SIZES = {
    "240p": (426, 240),
    "480p": (854, 480),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "12MP": (4618, 2598),
}
SECTIONS = (
    "pipeline",
    "probes",
    "identification",
    "accuracy",
    "enrolment",
    "server",
    "server_upsample0",
    "gallery",
)


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


def sized_images(folder: Path) -> dict[str, Path]:
    """The 1080p probe resized to each size (JPEG q90): one face, same content at every size."""
    base = Image.open(FACES / "probes" / "obama-1080p.jpg").convert("RGB")
    paths = {}
    for label, size in SIZES.items():
        path = folder / f"obama-{label}.jpg"
        base.resize(size, Image.Resampling.LANCZOS).save(path, quality=90)
        paths[label] = path
    return paths


def facelens_stages(
    engine: Engine, index: GalleryIndex, path: Path, repeats: int
) -> dict[str, Any]:
    """Median milliseconds per stage of one image, in this process, models loaded."""
    runs, names = [], []
    data = path.read_bytes()
    for _ in range(repeats):
        start = time.perf_counter()
        image = decode_image(data, source=str(path), max_pixels=engine.settings.max_pixels)
        decode_ms = (time.perf_counter() - start) * 1000
        analysis = engine.analyze(image)
        faces = match_faces(analysis, index, engine.settings)
        total_ms = (time.perf_counter() - start) * 1000
        runs.append({"decode": decode_ms, **analysis.timings_ms, "total": total_ms})
        names = sorted(f.match.name for f in faces)
    return {
        "ms": {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]},
        "names": names,
    }


def face_recognition_job(images: list[Path], repeats: int) -> dict[str, Any]:
    if not BENCH_PYTHON.exists():
        raise SystemExit("The comparison library is missing: run scripts/bench (it installs it).")
    job = {"people": str(FACES / "people"), "images": [str(p) for p in images], "repeats": repeats}
    result = subprocess.run(
        [str(BENCH_PYTHON), "-W", "ignore", str(REPO / "bench/fr_job.py")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def enrolled_index(engine: Engine, settings: Settings, folder: Path) -> GalleryIndex:
    from facelens.enroll import enroll_folder, plan_enrolment

    gallery = SQLiteGallery(folder / "gallery.sqlite3")
    enroll_folder(plan_enrolment(FACES / "people"), gallery, settings, engine=engine)
    index = gallery.index()
    gallery.close()
    return index


def bench_pipeline(engine: Engine, index: GalleryIndex, repeats: int, tmp: Path) -> dict[str, Any]:
    images = sized_images(tmp)
    ours = {label: facelens_stages(engine, index, path, repeats) for label, path in images.items()}
    theirs = face_recognition_job(list(images.values()), repeats)["images"]
    rows = {}
    for label, path in images.items():
        other = theirs[str(path)]
        rows[label] = {
            "size": "x".join(map(str, SIZES[label])),
            "facelens_ms": ours[label]["ms"],
            "face_recognition_ms": other["ms"],
            "speedup": round(other["ms"]["total"] / ours[label]["ms"]["total"], 2),
            "same_names": ours[label]["names"] == other["names"],
            "names": ours[label]["names"],
        }
    return rows


def bench_probes(engine: Engine, index: GalleryIndex, repeats: int) -> dict[str, Any]:
    """Stage times of each probe photo, in one process (sizes and face counts vary)."""
    rows = {}
    for path in sorted((FACES / "probes").iterdir()):
        with Image.open(path) as image:
            size = f"{image.width}x{image.height}"
        stages = facelens_stages(engine, index, path, repeats)
        rows[path.name] = {"size": size, "faces": len(stages["names"]), **stages}
    return rows


def bench_identification(
    engine: Engine, index: GalleryIndex, settings: Settings, repeats: int
) -> dict[str, Any]:
    """The 15 probes: facelens's batch path on every core vs the library in one process."""
    probes = sorted((FACES / "probes").iterdir())
    walls = []
    names: dict[str, list[str]] = {}
    for _ in range(repeats):
        start = time.perf_counter()
        for result in analyze_files(probes, settings, engine):
            assert result.analysis is not None, result.error
            names[str(result.path)] = sorted(
                f.match.name for f in match_faces(result.analysis, index, settings)
            )
        walls.append(time.perf_counter() - start)
    ours_s = statistics.median(walls)
    theirs = face_recognition_job(probes, 1)
    theirs_s = sum(v["ms"]["total"] for v in theirs["images"].values()) / 1000
    differing = [p.name for p in probes if names[str(p)] != theirs["images"][str(p)]["names"]]
    return {
        "probes": len(probes),
        "facelens_s": round(ours_s, 3),
        "facelens_images_per_s": round(len(probes) / ours_s, 2),
        "face_recognition_s": round(theirs_s, 3),
        "face_recognition_images_per_s": round(len(probes) / theirs_s, 2),
        "ratio": round(theirs_s / ours_s, 2),
        "face_recognition_enrol_s": theirs["enrol_s"],
        "names_differ_on": differing,
        "workers": settings.workers,
    }


def bench_accuracy(tmp: Path) -> dict[str, Any]:
    """Both libraries on one pairs file: every pair of the people photos and 5 probes."""
    import itertools

    photos = [(p.parent.name, str(p.relative_to(FACES))) for p in sorted(FACES.glob("people/*/*"))]
    extra = {
        "obama1.jpg": "obama",
        "obama3.jpg": "obama",
        "johnsnow_test1.jpg": "kit_harington",
        "alex_lacamoire1.jpg": "alex_lacamoire",
        "obama-720p.jpg": "obama",
    }
    photos += [(person, f"probes/{name}") for name, person in extra.items()]
    pairs = [(a, b, pa == pb) for (pa, a), (pb, b) in itertools.combinations(photos, 2)]
    csv_path = tmp / "pairs.csv"
    csv_path.write_text(
        "first,second,same\n"
        + "".join(f"{a},{b},{'yes' if same else 'no'}\n" for a, b, same in pairs)
    )
    ours = json.loads(
        subprocess.run(
            [
                FACELENS,
                "--data-dir",
                str(tmp / "eval"),
                "eval",
                "pairs",
                str(csv_path),
                "--images",
                str(FACES),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    job = {
        "root": str(FACES),
        "images": sorted({p for _, p in photos}),
        "pairs": [list(p) for p in pairs],
    }
    theirs = json.loads(
        subprocess.run(
            [str(BENCH_PYTHON), "-W", "ignore", str(REPO / "bench/fr_job.py")],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    return {
        "pairs": len(pairs),
        "same_pairs": sum(p[2] for p in pairs),
        "facelens": {
            k: ours[k]
            for k in ("scored_pairs", "accuracy", "best_threshold", "best_accuracy", "auc")
        },
        "face_recognition": {k: theirs[k] for k in ("scored_pairs", "accuracy")},
    }


def bench_enrolment(repeats: int, tmp: Path) -> dict[str, Any]:
    """``facelens enroll`` of the 11 people photos as a command (start-up included)."""
    walls = []
    for i in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [FACELENS, "--data-dir", str(tmp / f"enrol-{i}"), "enroll", str(FACES / "people")],
            check=True,
            capture_output=True,
        )
        walls.append(time.perf_counter() - start)
    photos = sum(1 for _ in (FACES / "people").glob("*/*"))
    wall = statistics.median(walls)
    return {"photos": photos, "command_s": round(wall, 3), "images_per_s": round(photos / wall, 2)}


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def bench_server(tmp: Path, quick: bool, upsample: int = 1) -> dict[str, Any]:
    srv = Server(tmp / f"server-data-{upsample}", env={"FACELENS_UPSAMPLE": str(upsample)})
    try:
        for folder in sorted((FACES / "people").iterdir()):
            srv.client.post("/v1/people", json={"name": folder.name})
            srv.client.post(
                f"/v1/people/{folder.name}/faces",
                files=[("images", (p.name, p.read_bytes())) for p in folder.iterdir()],
            )
        pids = [srv.process.pid, *srv.worker_pids()]
        idle_mb = sum(_status_kb(p, "VmRSS") for p in pids) / 1024
        photo = FACES / "probes" / "obama-720p.jpg"
        runs = []
        routes = ("/v1/recognize", "/predictor") if upsample == 1 else ("/v1/recognize",)
        for path in routes:
            for concurrency in (1, 4, 16):
                requests = {1: 15, 4: 40, 16: 64}[concurrency] // (2 if quick else 1)
                cpu_before = {p: cpu_seconds(p) for p in pids}
                out = subprocess.run(
                    [
                        sys.executable,
                        str(REPO / "bench/load.py"),
                        srv.url,
                        path,
                        str(photo),
                        str(concurrency),
                        str(requests),
                        "120",
                        *(["base64"] if path == "/predictor" else []),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                load = json.loads(out.stdout)
                cpu = {p: cpu_seconds(p) - before for p, before in cpu_before.items()}
                lat = np.array(load["latencies"]) * 1000
                ok = len(lat)
                runs.append(
                    {
                        "path": path,
                        "concurrency": concurrency,
                        "requests": requests,
                        "ok": ok,
                        "statuses": load["statuses"],
                        "throughput_rps": round(ok / load["wall_s"], 2),
                        "p50_ms": round(float(np.percentile(lat, 50)), 1) if ok else None,
                        "p95_ms": round(float(np.percentile(lat, 95)), 1) if ok else None,
                        "p99_ms": round(float(np.percentile(lat, 99)), 1) if ok else None,
                        "cpu_percent_server": round(100 * cpu[srv.process.pid] / load["wall_s"], 1),
                        "cpu_percent_workers": round(
                            100
                            * sum(v for p, v in cpu.items() if p != srv.process.pid)
                            / load["wall_s"],
                            1,
                        ),
                    }
                )
        peak_mb = sum(_status_kb(p, "VmHWM") for p in pids) / 1024
        return {
            "photo": "probes/obama-720p.jpg (1280x720, one face)",
            "workers": len(pids) - 1,
            "runs": runs,
            "idle_rss_mb": round(idle_mb, 1),
            "peak_rss_mb": round(peak_mb, 1),
        }
    finally:
        srv.stop()


def gallery_child(n: int, queries: int) -> dict[str, Any]:
    """One gallery size, in its own process so its memory is its own."""
    before = _status_kb(os.getpid(), "VmRSS")
    rng = np.random.default_rng(0)
    per_person = 5
    vectors = np.empty((n, 128), dtype=np.float32)
    for start in range(0, n, 100_000):  # generate in chunks: no float64 copy of the whole set
        chunk = rng.standard_normal((min(100_000, n - start), 128), dtype=np.float32)
        vectors[start : start + len(chunk)] = chunk * (0.5 / np.linalg.norm(chunk, axis=1)[:, None])
    starts = np.arange(0, n, per_person, dtype=np.intp)
    index = GalleryIndex(tuple(f"p{i}" for i in range(len(starts))), vectors, starts)
    probe = vectors[rng.integers(0, n, queries)] + 0.01
    times = []
    for q in probe:
        start = time.perf_counter()
        identify(q[None, :], index, threshold=0.6, ambiguity_margin=0.05)
        times.append((time.perf_counter() - start) * 1000)
    after = _status_kb(os.getpid(), "VmHWM")
    return {
        "embeddings": n,
        "people": len(starts),
        "queries": queries,
        "p50_ms": round(float(np.percentile(times, 50)), 3),
        "p95_ms": round(float(np.percentile(times, 95)), 3),
        "index_mb": round((index.vectors.nbytes + index.squared_norms.nbytes) / 2**20, 1),
        "peak_rss_delta_mb": round((after - before) / 1024, 1),
    }


def bench_gallery(quick: bool) -> list[dict[str, Any]]:
    rows = []
    for n in (1_000, 10_000, 100_000, 1_000_000):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--gallery-child",
                str(n),
                "--queries",
                "20" if quick else "50",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=SECTIONS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--gallery-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--queries", type=int, default=50, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.gallery_child:
        json.dump(gallery_child(args.gallery_child, args.queries), sys.stdout)
        return
    sections = args.only or list(SECTIONS)
    repeats = 3 if args.quick else 5
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="facelens-bench-")))
    results: dict[str, Any] = {
        "machine": machine(),
        "settings": {
            "detector": settings.detector,
            "upsample": settings.upsample,
            "detect_max_side": settings.detect_max_side,
            "workers": settings.workers,
        },
    }
    with tempfile.TemporaryDirectory(prefix="facelens-bench-") as name:
        tmp = Path(name)
        engine = Engine.load(settings)
        index = enrolled_index(engine, settings, tmp)
        steps = {
            "pipeline": lambda: bench_pipeline(engine, index, repeats, tmp),
            "probes": lambda: bench_probes(engine, index, repeats),
            "identification": lambda: bench_identification(engine, index, settings, repeats),
            "accuracy": lambda: bench_accuracy(tmp),
            "enrolment": lambda: bench_enrolment(3, tmp),
            "server": lambda: bench_server(tmp, args.quick),
            "server_upsample0": lambda: bench_server(tmp, args.quick, upsample=0),
            "gallery": lambda: bench_gallery(args.quick),
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
