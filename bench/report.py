"""Turns a bench results dict into docs/benchmarks.md and its plots (docs/bench/*.png)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _plot_pipeline(pipeline: dict[str, Any], path: Path) -> None:
    labels = list(pipeline)
    ours = [pipeline[k]["facelens_ms"]["total"] for k in labels]
    theirs = [pipeline[k]["face_recognition_ms"]["total"] for k in labels]
    x = range(len(labels))
    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    axes.bar([i - 0.2 for i in x], ours, 0.4, label="facelens (1 process)")
    axes.bar([i + 0.2 for i in x], theirs, 0.4, label="face_recognition (defaults)")
    axes.set_xticks(list(x), labels)
    axes.set_ylabel("ms per image (median)")
    axes.set_yscale("log")
    axes.set_title("One photo, one face: decode → detect → embed → match")
    axes.legend()
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _plot_server(server: dict[str, Any], path: Path) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100)
    for route in ("/v1/recognize", "/predictor"):
        runs = [r for r in server["runs"] if r["path"] == route]
        conc = [r["concurrency"] for r in runs]
        left.plot(conc, [r["throughput_rps"] for r in runs], marker="o", label=route)
        right.plot(conc, [r["p50_ms"] for r in runs], marker="o", label=f"{route} p50")
        right.plot(
            conc, [r["p95_ms"] for r in runs], marker="x", linestyle="--", label=f"{route} p95"
        )
    left.set(xlabel="concurrent clients", ylabel="requests / s", xscale="log", title="Throughput")
    right.set(xlabel="concurrent clients", ylabel="ms", xscale="log", title="Latency")
    for axes in (left, right):
        axes.set_xticks([1, 4, 16], ["1", "4", "16"])
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _plot_gallery(gallery: list[dict[str, Any]], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(6, 3.6), dpi=100)
    sizes = [r["embeddings"] for r in gallery]
    axes.plot(sizes, [r["p50_ms"] for r in gallery], marker="o", label="p50")
    axes.plot(sizes, [r["p95_ms"] for r in gallery], marker="x", linestyle="--", label="p95")
    axes.axhline(50, color="red", linewidth=0.8, label="target at 1e6: 50 ms")
    axes.set(
        xscale="log",
        yscale="log",
        xlabel="stored embeddings",
        ylabel="ms per search",
        title="Exact search, one face",
    )
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _targets(results: dict[str, Any]) -> list[list[str]]:
    """Each target of the evaluation issue, the figure measured, and whether it is met."""
    rows = []

    def row(target: str, figure: str, met: bool | None) -> None:
        rows.append([target, figure, "n/a" if met is None else ("met" if met else "**missed**")])

    if "identification" in results:
        i = results["identification"]
        row(
            "identification throughput on the probes ≥ 3× face_recognition, same names",
            f"{i['ratio']}×, names differ on {len(i['names_differ_on'])} probes",
            i["ratio"] >= 3 and not i["names_differ_on"],
        )
    if "server" in results:
        runs = {(r["path"], r["concurrency"]): r for r in results["server"]["runs"]}
        one, four = runs[("/v1/recognize", 1)], runs[("/v1/recognize", 4)]
        row(
            "/v1/recognize, 720p one face, p50 < 150 ms at concurrency 1",
            f"{one['p50_ms']} ms",
            one["p50_ms"] is not None and one["p50_ms"] < 150,
        )
        cores = results["machine"]["cores"]
        ideal = cores * one["throughput_rps"]
        row(
            f"throughput at concurrency 4 close to {cores} cores × the single-request rate",
            f"{four['throughput_rps']} req/s vs {ideal:.2f} ideal",
            four["throughput_rps"] >= 0.8 * ideal,
        )
    if "gallery" in results:
        big = next((r for r in results["gallery"] if r["embeddings"] == 1_000_000), None)
        if big:
            row(
                "searching 1e6 embeddings: p50 < 50 ms, < 1 GB",
                f"{big['p50_ms']} ms, index {big['index_mb']} MB, "
                f"peak RSS growth {big['peak_rss_delta_mb']} MB",
                big["p50_ms"] < 50 and big["peak_rss_delta_mb"] < 1024,
            )
    if "accuracy" in results:
        a = results["accuracy"]
        row(
            "accuracy on a pairs file not below face_recognition",
            f"{a['facelens']['accuracy']:.4f} vs {a['face_recognition']['accuracy']:.4f} "
            f"({a['pairs']} pairs)",
            a["facelens"]["accuracy"] >= a["face_recognition"]["accuracy"],
        )
    return rows


def _where_time_goes(results: dict[str, Any]) -> str:
    p = results.get("pipeline", {}).get("720p")
    s0 = results.get("server_upsample0")
    if not p:
        return ""
    ms = p["facelens_ms"]
    text = (
        f"A 720p photo with one face costs {ms['total']} ms in one worker: detection "
        f"{ms['detect']} ms, the ResNet descriptor {ms['embed']} ms, decoding {ms['decode']} ms, "
        f"alignment {ms['align']} ms, matching {ms['match']} ms (HTTP and the hand-over to the "
        "worker add a few ms). The descriptor alone is two thirds of the 150 ms budget and "
        "cannot be split (one face, one call; dlib holds the GIL), so the 150 ms target needs "
        "detection under ~40 ms. Detection is dlib's HOG on the photo scaled to 800 px and "
        "upsampled once (1600 × 900 pixels scanned): upsampling finds faces down to ~40 px, at "
        "4× the cost."
    )
    if s0:
        one = next(r for r in s0["runs"] if r["concurrency"] == 1)
        text += (
            f" With `FACELENS_UPSAMPLE=0` the same request's p50 is {one['p50_ms']} ms "
            "(faces must then be at least ~80 px in the 800 px working copy)."
        )
    text += (
        " What would meet the target: a detector that is cheap at this size (OpenCV's DNN "
        "face detector or a small ONNX model from a local file, behind the Detector protocol). "
        "Splitting one image's HOG scan over both cores (it releases the GIL) would help less "
        "than it seems: cutting the image into strips misses faces on the seams, and dlib does "
        "not expose its five filters or pyramid levels separately from Python. Throughput is "
        "already bound by the cores, not by the server."
    )
    return text


def write_report(results: dict[str, Any], docs: Path) -> None:
    plots = docs / "bench"
    plots.mkdir(parents=True, exist_ok=True)
    m = results["machine"]
    parts = [
        "# Benchmarks",
        "",
        "Generated by `scripts/bench` (bench/run.py) from "
        f"`bench/results/{m['date'][:10]}.json`; do not edit by hand, re-run it.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, "
        f"commit {m['commit']}, {m['date']}. Settings: {results['settings']}. Figures are "
        "medians of several runs (5, or 3 with --quick) unless said otherwise.",
        "",
        "These machines are shared virtual CPUs and vary between runs: the same code measured "
        "a 720p photo at 250 ms in one run and 420 ms in another on 2026-11-24. Compare figures "
        "within one run (each side-by-side pair is measured in the same run, back to back); a "
        "partial run (`--only`) replaces only its own sections in the day's results file.",
    ]
    targets = _targets(results)
    if targets:
        parts += ["", "## Targets", "", _table(["target", "measured", ""], targets)]
    if "pipeline" in results:
        p = results["pipeline"]
        _plot_pipeline(p, plots / "pipeline.png")
        stages = ["decode", "detect", "align", "embed", "match", "total"]
        parts += [
            "",
            "## Pipeline, per image size (one face), side by side",
            "",
            "The 1080p probe resized to each size. facelens in one process with models loaded; "
            "face_recognition 1.3.0 on the same dlib-bin, with its defaults (HOG upsampled once on "
            "the full image, 5-point landmarks, 1 jitter), in its own process. Milliseconds.",
            "",
            _table(
                [
                    "size",
                    *[f"facelens {s}" for s in stages],
                    "face_recognition total",
                    "ratio",
                    "same names",
                ],
                [
                    [
                        f"{k} ({v['size']})",
                        *[v["facelens_ms"].get(s, "") for s in stages],
                        v["face_recognition_ms"]["total"],
                        f"{v['speedup']}×",
                        "yes" if v["same_names"] else "**no**",
                    ]
                    for k, v in p.items()
                ],
            ),
            "",
            "![time per image by size](bench/pipeline.png)",
        ]
    if "probes" in results:
        stages = ["decode", "detect", "align", "embed", "match", "total"]
        parts += [
            "",
            "## Pipeline, per probe photo",
            "",
            "facelens in one process, models loaded, median ms per stage.",
            "",
            _table(
                ["probe", "size", "faces", *stages],
                [
                    [name, r["size"], r["faces"], *[r["ms"].get(s, "") for s in stages]]
                    for name, r in results["probes"].items()
                ],
            ),
        ]
    if "identification" in results:
        i = results["identification"]
        parts += [
            "",
            "## Identification throughput on the 15 probe photos",
            "",
            f"facelens: the batch path of `facelens recognize` ({i['workers']} worker processes, "
            f"models loaded): {i['facelens_s']} s, {i['facelens_images_per_s']} images/s. "
            f"face_recognition in one process: {i['face_recognition_s']} s, "
            f"{i['face_recognition_images_per_s']} images/s. **Ratio {i['ratio']}×.** "
            f"Probes where the two name different people: {i['names_differ_on'] or 'none'}.",
        ]
    if "enrolment" in results:
        e = results["enrolment"]
        parts += [
            "",
            "## Enrolment",
            "",
            f"`facelens enroll` of {e['photos']} photos as a whole command (start-up and model "
            f"loading included): {e['command_s']} s, {e['images_per_s']} images/s.",
        ]
    if "server" in results:
        s = results["server"]
        _plot_server(s, plots / "server.png")
        parts += [
            "",
            "## Server under load",
            "",
            f"`facelens serve` with {s['workers']} workers on loopback, the load from another "
            f"process (bench/load.py, fixed request count, 120 s limit), photo {s['photo']}. "
            "CPU is the share of one core used during the run.",
            "",
            _table(
                [
                    "route",
                    "clients",
                    "requests",
                    "ok",
                    "req/s",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "CPU server %",
                    "CPU workers %",
                    "statuses",
                ],
                [
                    [
                        r["path"],
                        r["concurrency"],
                        r["requests"],
                        r["ok"],
                        r["throughput_rps"],
                        r["p50_ms"],
                        r["p95_ms"],
                        r["p99_ms"],
                        r["cpu_percent_server"],
                        r["cpu_percent_workers"],
                        r["statuses"],
                    ]
                    for r in s["runs"]
                ],
            ),
            "",
            f"Memory (RSS of the server and its workers): {s['idle_rss_mb']} MB at rest with "
            f"models loaded, peak {s['peak_rss_mb']} MB over the runs.",
            "",
            "![server throughput and latency](bench/server.png)",
        ]
    if "gallery" in results:
        g = results["gallery"]
        _plot_gallery(g, plots / "gallery.png")
        parts += [
            "",
            "## Gallery search at scale",
            "",
            "Synthetic 128-D vectors, 5 per person; one query face; exact search (one float32 "
            "matrix product, then the two nearest people).",
            "",
            _table(
                ["embeddings", "people", "p50 ms", "p95 ms", "index MB", "peak RSS growth MB"],
                [
                    [
                        f"{r['embeddings']:,}",
                        f"{r['people']:,}",
                        r["p50_ms"],
                        r["p95_ms"],
                        r["index_mb"],
                        r["peak_rss_delta_mb"],
                    ]
                    for r in g
                ],
            ),
            "",
            "![search latency by gallery size](bench/gallery.png)",
        ]
    if "accuracy" in results:
        a = results["accuracy"]
        parts += [
            "",
            "## Accuracy on a pairs file, side by side",
            "",
            f"Every pair of the 11 people photos and 5 probes ({a['pairs']} pairs, "
            f"{a['same_pairs']} of the same person), each image's largest face, threshold 0.6. "
            f"facelens (`facelens eval pairs`): accuracy {a['facelens']['accuracy']}, best "
            f"threshold {a['facelens']['best_threshold']} ({a['facelens']['best_accuracy']}), "
            f"AUC {a['facelens']['auc']}. face_recognition: accuracy "
            f"{a['face_recognition']['accuracy']}. A small set: both are perfect on it, so it "
            "shows agreement, not which is better; run `facelens eval pairs` on your own pairs.",
        ]
    if "server_upsample0" in results:
        rows = results["server_upsample0"]["runs"]
        parts += [
            "",
            "### The server with `FACELENS_UPSAMPLE=0`",
            "",
            _table(
                ["route", "clients", "ok", "req/s", "p50 ms", "p95 ms", "p99 ms"],
                [
                    [
                        r["path"],
                        r["concurrency"],
                        r["ok"],
                        r["throughput_rps"],
                        r["p50_ms"],
                        r["p95_ms"],
                        r["p99_ms"],
                    ]
                    for r in rows
                ],
            ),
        ]
    if "gallery" in results:
        parts += [
            "",
            "**When an approximate index would pay:** exact search reads every stored "
            "embedding once per face (512 bytes each), so its time grows linearly: about 0.04 "
            "ms per 1,000 embeddings here, memory-bound. Up to ~1e6 embeddings it stays under "
            "the 50 ms target with 0.5 GB of index; beyond that, or with many faces per photo, "
            "an approximate index (HNSW, e.g. hnswlib or FAISS) would answer in ~1 ms at the "
            "cost of recall below 100% and a slower, memory-hungrier build; float16 storage "
            "would halve both time and memory first, with no loss that matters at 0.6.",
        ]
    where = _where_time_goes(results)
    if where:
        parts += ["", "## Where the time goes, and what would help", "", where]
    (docs / "benchmarks.md").write_text("\n".join(parts) + "\n")
