"""The benchmark sections: each measures one thing for every model profile, and the
face_recognition library where it does the same job, side by side in one run."""

from __future__ import annotations

import csv
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tests.support.server import FACELENS, Server, cpu_seconds

from facelens.core.imaging import decode_image
from facelens.core.matching import GalleryIndex, identify
from facelens.core.pipeline import Engine, match_faces
from facelens.core.recognition import analyze_file
from facelens.gallery.sqlite import SQLiteGallery
from facelens.jobs.batch import analyze_files
from facelens.jobs.calibrate import propose_threshold, stranger_distances
from facelens.jobs.enrol import enrol_folder, plan_enrolment
from facelens.models.profiles import PROFILES
from facelens.models.scoring import Scoring
from facelens.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
FACES = Path(os.environ.get("FACELENS_TEST_FACES", SHARED / "faces"))
LFW = Path(os.environ.get("FACELENS_TEST_LFW", SHARED / "lfw-dev"))
BENCH_VENV = REPO / ".bench-venv" / "bin"
LIBRARY_ALL_CORES = "face_recognition_all_cores"  # its command given every core: the fair one
LIBRARY_DEFAULT = "face_recognition_default"  # its command as it comes: one core
MODELS = tuple(sorted(PROFILES, key=lambda name: name != "sface"))  # sface first
SIZES = {
    "240p": (426, 240),
    "480p": (854, 480),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "12MP": (4618, 2598),
}


class Models:
    """One loaded engine and enrolled index per model, shared by the in-process sections."""

    def __init__(self, tmp: Path) -> None:
        self.engines: dict[str, Engine] = {}
        self.indexes: dict[str, GalleryIndex] = {}
        for name in MODELS:
            settings = Settings(data_dir=tmp / f"engine-{name}", model=name)  # type: ignore[arg-type]
            engine = Engine.load(settings)
            gallery = SQLiteGallery(settings.gallery_path, engine.profile.name)
            enrol_folder(plan_enrolment(FACES / "people"), gallery, settings, engine=engine)
            self.engines[name], self.indexes[name] = engine, gallery.index()
            gallery.close()


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=True, **kwargs)


def _median_s(args: list[str], repeats: int, env: dict[str, str] | None = None) -> float:
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        _run(args, env=env)
        walls.append(time.perf_counter() - start)
    return round(statistics.median(walls), 3)


def face_recognition_job(job: dict[str, Any]) -> dict[str, Any]:
    if not (BENCH_VENV / "python").exists():
        raise SystemExit("The comparison library is missing: run scripts/bench (it installs it).")
    out = _run(
        [str(BENCH_VENV / "python"), "-W", "ignore", str(REPO / "bench/fr_job.py")],
        input=json.dumps(job),
    )
    found: dict[str, Any] = json.loads(out.stdout)
    return found


def stages(engine: Engine, index: GalleryIndex, path: Path, repeats: int) -> dict[str, Any]:
    """Median milliseconds per stage of one image, in this process, models loaded; decoded as
    the server's workers decode a photo to recognise (a large JPEG reduced)."""
    runs, names = [], []
    data = path.read_bytes()
    limit, side = engine.settings.max_pixels, engine.decode_side
    for _ in range(repeats):
        start = time.perf_counter()
        image = decode_image(data, source=str(path), max_pixels=limit, reduce_to=side)
        decode_ms = (time.perf_counter() - start) * 1000
        analysis = engine.analyze(image)
        faces = match_faces(analysis.faces, index, engine.scoring)
        total_ms = (time.perf_counter() - start) * 1000
        runs.append({"decode": decode_ms, **analysis.timings_ms, "total": total_ms})
        names = sorted(f.match.name for f in faces)
    return {
        "ms": {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]},
        "names": names,
    }


def pipeline(models: Models, repeats: int, tmp: Path) -> dict[str, Any]:
    """The 1080p probe resized to each size: one face, the same content at every size."""
    base = Image.open(FACES / "probes" / "obama-1080p.jpg").convert("RGB")
    paths = {}
    for label, size in SIZES.items():
        paths[label] = tmp / f"obama-{label}.jpg"
        base.resize(size, Image.Resampling.LANCZOS).save(paths[label], quality=90)
    theirs = face_recognition_job(
        {
            "people": str(FACES / "people"),
            "images": [str(p) for p in paths.values()],
            "repeats": repeats,
        }
    )["images"]
    rows = {}
    for label, path in paths.items():
        row: dict[str, Any] = {"size": "x".join(map(str, SIZES[label]))}
        for name in MODELS:
            row[name] = stages(models.engines[name], models.indexes[name], path, repeats)
        row["face_recognition"] = theirs[str(path)]
        row["same_names"] = (
            len({tuple(row[k]["names"]) for k in (*MODELS, "face_recognition")}) == 1
        )
        rows[label] = row
    return rows


def probes(models: Models, repeats: int) -> dict[str, Any]:
    rows = {}
    for path in sorted((FACES / "probes").iterdir()):
        with Image.open(path) as image:
            size = f"{image.width}x{image.height}"
        row: dict[str, Any] = {"size": size}
        for name in MODELS:
            row[name] = stages(models.engines[name], models.indexes[name], path, repeats)
        rows[path.name] = row
    return rows


def identification(models: Models, repeats: int) -> dict[str, Any]:
    """The 15 probes: the batch path of 'facelens recognize' (every core, models loaded) per
    model, and the library in one process, as its examples do."""
    photos = sorted((FACES / "probes").iterdir())
    theirs = face_recognition_job(
        {"people": str(FACES / "people"), "images": [str(p) for p in photos], "repeats": 1}
    )
    theirs_s = sum(v["ms"]["total"] for v in theirs["images"].values()) / 1000
    result: dict[str, Any] = {
        "probes": len(photos),
        "face_recognition": {
            "s": round(theirs_s, 3),
            "images_per_s": round(len(photos) / theirs_s, 2),
        },
    }
    for name in MODELS:
        engine, index = models.engines[name], models.indexes[name]
        walls, found = [], {}
        for _ in range(repeats):
            start = time.perf_counter()
            for r in analyze_files(photos, engine.settings, engine):
                assert r.value is not None, r.error
                found[r.path] = sorted(
                    f.match.name for f in match_faces(r.value.faces, index, engine.scoring)
                )
            walls.append(time.perf_counter() - start)
        wall = statistics.median(walls)
        result[name] = {
            "s": round(wall, 3),
            "images_per_s": round(len(photos) / wall, 2),
            "ratio": round(theirs_s / wall, 2),
            "names_differ_on": [
                p.name for p in photos if found[p] != theirs["images"][str(p)]["names"]
            ],
            "workers": engine.settings.workers,
        }
    return result


def _flat_known_folder(tmp: Path) -> Path:
    """The people photos laid out as the face_recognition CLI wants: one file per photo, named
    after the person (<name>__<n>.<ext>)."""
    known = tmp / "fr-known"
    known.mkdir(exist_ok=True)
    for n, photo in enumerate(sorted((FACES / "people").glob("*/*"))):
        target = known / f"{photo.parent.name}__{n}{photo.suffix}"
        target.write_bytes(photo.read_bytes())
    return known


def cli(repeats: int, tmp: Path) -> dict[str, Any]:
    """Enrol the people and recognise the 15 probes as whole commands, start-up included:
    'facelens enroll' + 'facelens recognize' per model, and the library's own command."""
    photos = sorted(str(p) for p in (FACES / "probes").iterdir())
    result: dict[str, Any] = {
        "people_photos": sum(1 for _ in (FACES / "people").glob("*/*")),
        "probes": len(photos),
    }
    for name in MODELS:
        enrol, recognise = [], []
        for i in range(repeats):
            data = tmp / f"cli-{name}-{i}"
            start = time.perf_counter()
            _run(
                [
                    FACELENS,
                    "--data-dir",
                    str(data),
                    "--model",
                    name,
                    "enroll",
                    str(FACES / "people"),
                ]
            )
            middle = time.perf_counter()
            _run([FACELENS, "--data-dir", str(data), "recognize", "--json", *photos])
            enrol.append(middle - start)
            recognise.append(time.perf_counter() - middle)
        result[name] = {
            "enroll_s": round(statistics.median(enrol), 3),
            "recognize_s": round(statistics.median(recognise), 3),
            "total_s": round(
                statistics.median(e + r for e, r in zip(enrol, recognise, strict=True)), 3
            ),
        }
    known = _flat_known_folder(tmp)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    program = str(BENCH_VENV / "face_recognition")
    for key, cpus in ((LIBRARY_ALL_CORES, "-1"), (LIBRARY_DEFAULT, "1")):
        command = [program, "--cpus", cpus, str(known), str(FACES / "probes")]
        result[key] = {
            "total_s": _median_s(command, repeats, env),
            "command": f"face_recognition --cpus {cpus} KNOWN PROBES",
        }
    for name in MODELS:
        for key in (LIBRARY_ALL_CORES, LIBRARY_DEFAULT):
            result[name][f"ratio_{key}"] = round(
                result[key]["total_s"] / result[name]["total_s"], 2
            )
    return result


STARTUP_REPEATS = 7  # at least: the one-photo target is judged on the median of 7 runs


def startup(repeats: int, tmp: Path) -> dict[str, Any]:
    """Whole processes: 'facelens --help', and recognising one photo per model (the gallery:
    the 6 people of the shared photos), each the median of at least 7 runs."""
    repeats = max(repeats, STARTUP_REPEATS)
    photo = str(FACES / "probes" / "obama-720p.jpg")
    result: dict[str, Any] = {
        "repeats": repeats,
        "photo": "probes/obama-720p.jpg",
        "help_s": _median_s([FACELENS, "--help"], repeats),
    }
    for name in MODELS:
        data = tmp / f"startup-{name}"
        _run([FACELENS, "--data-dir", str(data), "--model", name, "enroll", str(FACES / "people")])
        result[f"recognize_one_{name}_s"] = _median_s(
            [FACELENS, "--data-dir", str(data), "recognize", photo], repeats
        )
    return result


def _eval(model: str, tmp: Path, *args: str) -> dict[str, Any]:
    out = _run(
        [FACELENS, "--data-dir", str(tmp / "eval-data"), "--model", model, "eval", *args, "--json"]
    )
    found: dict[str, Any] = json.loads(out.stdout)
    return found


def accuracy(tmp: Path) -> dict[str, Any]:
    """Every pair of the 11 people photos and 5 probes, each image's largest face."""
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
        "first,second,same\n" + "".join(f"{a},{b},{'yes' if s else 'no'}\n" for a, b, s in pairs)
    )
    keys = ("scored_pairs", "accuracy", "threshold", "best_threshold", "best_accuracy", "auc")
    result: dict[str, Any] = {"pairs": len(pairs), "same_pairs": sum(p[2] for p in pairs)}
    for name in MODELS:
        report = _eval(name, tmp, "pairs", str(csv_path), "--images", str(FACES))
        result[name] = {k: report[k] for k in keys}
    theirs = face_recognition_job(
        {
            "root": str(FACES),
            "images": sorted({p for _, p in photos}),
            "pairs": [list(p) for p in pairs],
        }
    )
    result["face_recognition"] = {k: theirs[k] for k in ("scored_pairs", "accuracy")}
    return result


def lfw(tmp: Path) -> dict[str, Any]:
    """lfw-dev: verification on its 2,844 pairs and open-set identification (100 people
    enrolled, largest face of each photo; 100 held-out photos and 12 strangers)."""
    result: dict[str, Any] = {}
    for name in MODELS:
        pairs = _eval(name, tmp, "pairs", str(LFW / "pairs.csv"), "--images", str(LFW))
        ident = _eval(
            name,
            tmp,
            "identify",
            str(LFW / "gallery"),
            str(LFW / "probes"),
            "--labels",
            str(LFW / "probes.csv"),
            "--largest",
        )
        result[name] = {
            "pairs": {
                k: pairs[k]
                for k in (
                    "scored_pairs",
                    "same_pairs",
                    "different_pairs",
                    "no_face",
                    "threshold",
                    "accuracy",
                    "best_threshold",
                    "best_accuracy",
                    "auc",
                    "tar_at_far",
                )
            },
            "false_accepts": len(pairs["false_accepts"]),
            "false_rejects": len(pairs["false_rejects"]),
            "identify": {
                k: ident[k]
                for k in (
                    "threshold",
                    "top1_accuracy",
                    "known_faces",
                    "known_named_correctly",
                    "unknown_faces",
                    "strangers_named",
                    "wrong_names",
                )
            },
        }
    return result


def _distances(
    engine: Engine, index: GalleryIndex, labels: Path, largest: bool
) -> tuple[list[float], list[float], int, int]:
    """(each known face's distance to its own person, each stranger's distance to the nearest
    person, faces given a wrong name, photos without a face) for the probes beside ``labels``."""
    known, strangers, wrong, no_face = [], [], 0, 0
    with labels.open() as handle:
        for entry in csv.DictReader(handle):
            expected = entry["expected"].split(";")
            analysis = analyze_file(engine, labels.parent / "probes" / entry["file"])
            if not analysis.faces:
                no_face += 1
                continue
            if largest:  # lfw-dev: the labelled face is the largest one
                dist = index.person_distances(analysis.largest().embedding[None])[0]
                if expected == ["unknown"]:
                    strangers.append(float(dist.min()))
                else:
                    known.append(float(dist[index.names.index(expected[0])]))
                continue
            for face in match_faces(analysis.faces, index, engine.scoring):
                m = face.match
                if m.name in expected and m.name != "unknown":
                    known.append(float(m.distance or 0))
                elif m.name == "unknown" and "unknown" in expected:
                    strangers.append(float(m.distance or 0))
                else:
                    wrong += 1
    return known, strangers, wrong, no_face


def threshold(tmp: Path) -> dict[str, Any]:
    """What each default threshold is judged by: the largest distance of a known face to its
    own person and the smallest of a stranger to anybody, on lfw-dev (100 people enrolled,
    largest face of each photo) and on the shared photos; and what 'facelens gallery
    threshold --strangers 0.01' advises for each gallery (and what the gallery's estimate
    alone would give)."""
    result: dict[str, Any] = {}
    for name in MODELS:
        settings = Settings(data_dir=tmp / f"threshold-{name}", model=name)  # type: ignore[arg-type]
        engine = Engine.load(settings)
        row: dict[str, Any] = {"default": engine.profile.threshold, "metric": engine.profile.metric}
        for label, folder, labels, largest in (
            ("lfw", LFW / "gallery", LFW / "probes.csv", True),
            ("faces", FACES / "people", FACES / "probes.csv", False),
        ):
            path = tmp / f"threshold-{name}-{label}.sqlite3"
            gallery = SQLiteGallery(path, engine.profile.name)
            enrol_folder(
                plan_enrolment(folder), gallery, settings, engine=engine, take_largest=largest
            )
            index = gallery.index()
            gallery.close()
            known, strangers, wrong, no_face = _distances(engine, index, labels, largest)
            proposal = propose_threshold(stranger_distances(index), 0.01, engine.profile.threshold)
            row[label] = {
                "known": len(known),
                "known_max": round(max(known), 4),
                "strangers": len(strangers),
                "stranger_min": round(min(strangers), 4),
                "known_distances": sorted(round(d, 4) for d in known),
                "stranger_distances": sorted(round(d, 4) for d in strangers),
                "wrong_names": wrong,
                "no_face": no_face,
                "proposal_1pct": proposal.threshold,
                "advice_1pct": proposal.advice,
                "estimate_1pct": proposal.estimate_threshold,
            }
        result[name] = row
    return result


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def server(tmp: Path, quick: bool) -> dict[str, Any]:
    """'facelens serve' per model, 2 workers, the load from another process."""
    photo = FACES / "probes" / "obama-720p.jpg"
    result: dict[str, Any] = {"photo": "probes/obama-720p.jpg (1280x720, one face)"}
    for name in MODELS:
        srv = Server(tmp / f"server-{name}", env={"FACELENS_MODEL": name})
        try:
            for folder in sorted((FACES / "people").iterdir()):
                srv.client.post("/v1/people", json={"name": folder.name})
                srv.client.post(
                    f"/v1/people/{folder.name}/faces",
                    files=[("images", (p.name, p.read_bytes())) for p in folder.iterdir()],
                )
            pids = [srv.process.pid, *srv.worker_pids()]
            idle_mb = sum(_status_kb(p, "VmRSS") for p in pids) / 1024
            runs = []
            for path in ("/v1/recognize", "/predictor"):
                for concurrency in (1, 4, 16):
                    requests = {1: 30, 4: 80, 16: 128}[concurrency] // (2 if quick else 1)
                    cpu_before = {p: cpu_seconds(p) for p in pids}
                    out = _run(
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
                        ]
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
                            "cpu_percent_server": round(
                                100 * cpu[srv.process.pid] / load["wall_s"], 1
                            ),
                            "cpu_percent_workers": round(
                                100
                                * sum(v for p, v in cpu.items() if p != srv.process.pid)
                                / load["wall_s"],
                                1,
                            ),
                        }
                    )
            result[name] = {
                "workers": len(pids) - 1,
                "runs": runs,
                "idle_rss_mb": round(idle_mb, 1),
                "peak_rss_mb": round(sum(_status_kb(p, "VmHWM") for p in pids) / 1024, 1),
            }
        finally:
            srv.stop()
    return result


def gallery_child(n: int, queries: int) -> dict[str, Any]:
    """One gallery size, in its own process so its memory is its own."""
    before = _status_kb(os.getpid(), "VmRSS")
    rng = np.random.default_rng(0)
    per_person = 5
    vectors = np.empty((n, 128), dtype=np.float32)
    for start in range(0, n, 100_000):  # generate in chunks: no float64 copy of the whole set
        chunk = rng.standard_normal((min(100_000, n - start), 128), dtype=np.float32)
        vectors[start : start + len(chunk)] = chunk / np.linalg.norm(chunk, axis=1)[:, None]
    starts = np.arange(0, n, per_person, dtype=np.intp)
    index = GalleryIndex(tuple(f"p{i}" for i in range(len(starts))), vectors, starts, "cosine")
    probe = vectors[rng.integers(0, n, queries)] + 0.01
    scoring = Scoring("cosine", PROFILES["sface"].threshold, 10.0, 0.05)
    times = []
    for q in probe:
        start = time.perf_counter()
        identify(q[None, :], index, scoring)
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


def gallery(quick: bool) -> list[dict[str, Any]]:
    rows = []
    for n in (1_000, 10_000, 100_000, 1_000_000):
        out = _run(
            [
                sys.executable,
                str(REPO / "bench/run.py"),
                "--gallery-child",
                str(n),
                "--queries",
                "20" if quick else "50",
            ]
        )
        rows.append(json.loads(out.stdout))
    return rows


def _transcode_720p(source: Path, target: Path, fps: float = 25.0) -> Path:
    """The shared clip as a 1280x720, 25 fps video (what a common IP camera sends)."""
    import cv2

    capture = cv2.VideoCapture(str(source))
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"mp4v"), fps, (1280, 720))
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_LINEAR))
    capture.release()
    writer.release()
    return target


def _live_stream(
    engine: Engine, index: GalleryIndex, video: Path, rate: float, tmp: Path
) -> dict[str, Any]:
    """The product's frame loop (a server stream's and 'facelens watch''s: ``Session``) on
    ``video`` played once in real time at ``rate`` by a camera on loopback (MJPEG over HTTP,
    read as a live source: newest frame only, the others dropped), its events stored in an
    event log as a stream's are."""
    import threading

    from tests.support.mjpeg import MjpegCamera

    from facelens.events.event import Event
    from facelens.events.log import EventLog
    from facelens.video.loop import Watched
    from facelens.video.policy import SourcePolicy
    from facelens.video.session import Session
    from facelens.video.source import Frame, FrameSource

    camera = MjpegCamera(video, fps=rate).start()
    events = EventLog(tmp / f"events-{engine.profile.name}.sqlite3")
    session = Session(engine, lambda: index, events, fps=None, crops=False)
    policy = SourcePolicy.of(Settings(data_dir=tmp))
    latencies: list[float] = []
    frame_latencies: list[float] = []
    taken: list[float] = []

    def told(found: list[Event]) -> None:
        # From the capture of the newest frame an event rests on (an arrival: the frame
        # embedded for its name, or the one confirming it) to the event's being stored and out.
        done = time.monotonic()
        latencies.extend((done - event.basis) * 1000 for event in found)

    def processed(_: Watched, frame: Frame) -> None:
        taken.append(frame.taken_at)
        frame_latencies.append((time.monotonic() - frame.taken_at) * 1000)

    stop = threading.Event()
    watched = session.watch("bench", FrameSource(camera.url, policy))
    # The camera loops its clip: the session ends once it has played it through once.
    played = threading.Timer(len(camera.frames) / rate, stop.set)
    started = time.monotonic()
    played.start()
    try:
        (report,) = session.run(told, stop=stop, on_frame=processed)
    finally:
        played.cancel()
        camera.stop()
        events.close()
    elapsed = time.monotonic() - started
    counts = watched.tracker.counts

    def pct(values: list[float], q: int) -> float | None:
        return round(float(np.percentile(values, q)), 1) if values else None

    return {
        "frames_read": report.frames_read,
        "frames_processed": counts.frames,
        "frames_dropped": report.frames_dropped,
        # Frames processed per second of the source's playing time (the first to the last
        # processed frame's capture): the camera's rate when none is dropped.
        "fps_processed": round((len(taken) - 1) / (taken[-1] - taken[0]), 2),
        "embeddings": counts.embeddings,
        "embeddings_per_s": round(counts.embeddings / elapsed, 2),
        "tracks": counts.tracks,
        "events": len(latencies),
        "event_latency_p50_ms": pct(latencies, 50),
        "event_latency_p95_ms": pct(latencies, 95),
        "frame_latency_p95_ms": pct(frame_latencies, 95),
    }


def stream(models: Models, tmp: Path) -> dict[str, Any]:
    """A live 720p camera at 25 fps (the 720p clip played once in real time over MJPEG, read
    as the product reads a camera, newest frame only): frames processed per second, frames
    dropped, embeddings per second, and the latency from a frame's capture to the events it
    causes, stored, per model."""
    video = _transcode_720p(FACES / "video" / "short_hamilton_clip.mp4", tmp / "clip-720p.mp4")
    rate = 25.0
    result: dict[str, Any] = {
        "source": "shared clip at 1280x720, 25 fps, real time, MJPEG over HTTP",
        "fps": rate,
    }
    for name in MODELS:
        result[name] = _live_stream(models.engines[name], models.indexes[name], video, rate, tmp)
    return result
