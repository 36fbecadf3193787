"""The ``facelens`` command: parse, call the engine or gallery, print. No model work here."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from facelens import errors
from facelens.enroll import EnrolmentReport, enroll_folder, plan_enrolment
from facelens.gallery import Gallery, open_gallery
from facelens.imaging import encode_image, read_image_file
from facelens.matching import GalleryIndex
from facelens.models import embedding_model_id
from facelens.parallel import FileResult, analyze_files, read_and_analyze
from facelens.pipeline import Engine, match_faces
from facelens.settings import DetectorName, Settings

# Exit codes, one per kind of failure, so scripts can tell them apart.
EXIT_PARTIAL = 1  # a batch finished but some inputs failed
EXIT_CODES: dict[type[errors.FaceLensError], int] = {
    errors.InputPathError: 3,
    errors.ImageError: 4,
    errors.NoFaceFound: 4,
    errors.StorageError: 5,
    errors.ModelError: 6,
    errors.NotFound: 7,
    errors.Conflict: 8,
    errors.InvalidValue: 9,
}
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="facelens",
    no_args_is_help=True,
    add_completion=False,
    help="Self-hosted face recognition: enrol people from folders, recognise and verify faces.",
)
people_app = typer.Typer(no_args_is_help=True, help="List, rename and remove enrolled people.")
app.add_typer(people_app, name="people")
eval_app = typer.Typer(
    no_args_is_help=True, help="Measure accuracy on your own photos (and pick a threshold)."
)
app.add_typer(eval_app, name="eval")
keys_app = typer.Typer(no_args_is_help=True, help="API keys for the HTTP service (stored hashed).")
app.add_typer(keys_app, name="keys")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass(slots=True)
class State:
    settings: Settings
    debug: bool


def exit_code_for(exc: errors.FaceLensError) -> int:
    """The exit code of a failure: the most specific class in :data:`EXIT_CODES`, else 1."""
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1


@contextmanager
def _handled(ctx: typer.Context) -> Iterator[State]:
    """Run a command body: our errors become one red line and an exit code."""
    state: State = ctx.obj
    try:
        yield state
    except errors.FaceLensError as exc:
        if state.debug:
            raise
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(exit_code_for(exc)) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]: work finished before this point is saved.")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def _gallery(state: State, *, bind: bool = False) -> Gallery:
    """Open (create) the gallery; ``bind`` also checks it was built with our embedding model."""
    gallery = open_gallery(state.settings)
    if bind:
        gallery.bind_model(embedding_model_id(state.settings))
    return gallery


def _progress(label: str) -> Progress:
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


@app.callback()
def main_options(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where the gallery lives (env FACELENS_DATA_DIR).", show_default=False),
    ] = None,
    detector: Annotated[
        DetectorName | None,
        typer.Option(
            help="Face detector: hog, cnn or haar (env FACELENS_DETECTOR, default hog).",
            show_default=False,
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Largest distance for a match (env FACELENS_THRESHOLD, default 0.6).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes for many photos (env FACELENS_WORKERS, default CPU count).",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks and debug logs.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    given: dict[str, Any] = {
        "data_dir": data_dir,
        "detector": detector,
        "threshold": threshold,
        "workers": workers,
    }
    overrides = {key: value for key, value in given.items() if value is not None}
    ctx.obj = State(_settings(overrides), debug)


def _settings(overrides: dict[str, Any]) -> Settings:
    """Settings from the environment and ``overrides``; exit 2 with the reason if invalid."""
    try:
        return Settings.model_validate(overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        err.print(f"[red]error:[/red] invalid setting: {escape(problems)}")
        raise typer.Exit(2) from None


@app.command()
def enroll(
    ctx: typer.Context,
    folder: Annotated[
        Path, typer.Argument(help="A folder with one sub-folder of photos per person.")
    ],
    largest: Annotated[
        bool,
        typer.Option(
            help="In a photo with several faces, enrol the largest instead of skipping it."
        ),
    ] = False,
    prune: Annotated[
        bool, typer.Option(help="Remove the faces of files that are no longer in the folder.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Enrol ("train") people from FOLDER/<name>/*: only new or changed photos are processed."""
    with _handled(ctx) as state:
        plan = plan_enrolment(folder)  # every input path checked before any model loads
        gallery = _gallery(state, bind=True)  # the data dir is writable and the model matches
        progress = _progress("enrolling")
        with progress:
            task = progress.add_task("enrolling", total=0, current="")

            def started(total: int) -> None:
                progress.update(task, total=total)

            def advanced(result: FileResult) -> None:
                progress.update(task, advance=1, current=result.path.name)

            report = enroll_folder(
                plan,
                gallery,
                state.settings,
                take_largest=largest,
                prune=prune,
                on_start=started,
                on_file=advanced,
            )
        _print_enrolment(report, as_json)
        gallery.close()


def _print_enrolment(report: EnrolmentReport, as_json: bool) -> None:
    if as_json:
        _print_json(
            {
                "folder": str(report.root),
                "people": [
                    {
                        "name": name,
                        "enrolled": r.enrolled,
                        "faces": r.faces,
                        "unchanged": r.unchanged,
                        "pruned": r.pruned,
                        "skipped": [{"file": str(s.path), "reason": s.reason} for s in r.skipped],
                    }
                    for name, r in sorted(report.people.items())
                ],
                "ignored": [{"file": str(s.path), "reason": s.reason} for s in report.ignored],
            }
        )
        return
    table = Table(title=f"Enrolment of {report.root}")
    for column in ("person", "enrolled", "unchanged", "skipped", "pruned"):
        table.add_column(column, justify="left" if column == "person" else "right")
    for name, r in sorted(report.people.items()):
        table.add_row(
            escape(name), str(r.enrolled), str(r.unchanged), str(len(r.skipped)), str(r.pruned)
        )
    out.print(table)
    for name, r in sorted(report.people.items()):
        for s in r.skipped:
            out.print(f"[yellow]skipped[/yellow] {escape(f'{name}: {s.path.name}: {s.reason}')}")
    for s in report.ignored:
        out.print(f"[dim]ignored[/dim] {escape(f'{s.path}: {s.reason}')}")


@app.command()
def recognize(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Photos to recognise.")],
    annotate: Annotated[
        Path | None,
        typer.Option(
            help="Write each photo, boxes and names drawn, into this folder (created if needed).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Name the faces in photos; a bad file is reported and the others still done."""
    with _handled(ctx) as state:
        if annotate is not None:
            _prepare_output_dir(annotate)
        gallery = _gallery(state, bind=True)
        index = gallery.index()
        if not len(index):
            err.print(
                "[yellow]note:[/yellow] the gallery is empty, so every face is unknown; "
                "run 'facelens enroll FOLDER' first."
            )
        unique = list(dict.fromkeys(files))
        by_path: dict[Path, dict[str, Any]] = {}
        failures: list[FileResult] = []
        written: set[str] = set()
        with _progress("recognising") as progress:
            task = progress.add_task("recognising", total=len(unique), current="")
            for result in analyze_files(unique, state.settings):
                if result.error is not None:
                    failures.append(result)
                by_path[result.path] = _recognition_entry(
                    result, index, state.settings, annotate, written
                )
                progress.update(task, advance=1, current=result.path.name)
        listing = [by_path[path] for path in files]
        if as_json:
            _print_json(listing)
        else:
            _print_recognitions(listing)
        gallery.close()
        failed = [r.error for r in failures]
        if failed:
            # One kind of failure for every file: its own code; a mixed batch: "partial".
            codes = {exit_code_for(e) for e in failed if e is not None}
            raise typer.Exit(
                codes.pop() if len(failed) == len(listing) and len(codes) == 1 else EXIT_PARTIAL
            )


def _prepare_output_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".facelens-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise errors.InputPathError(
            f"{folder}: cannot write annotated images there ({exc.strerror or exc}); "
            "choose another --annotate folder."
        ) from None


def _recognition_entry(
    result: FileResult,
    index: GalleryIndex,
    settings: Settings,
    annotate: Path | None,
    written: set[str],
) -> dict[str, Any]:
    if result.analysis is None:
        return {
            "file": str(result.path),
            "error": str(result.error),
            "error_code": result.error.code if result.error else "error",
        }
    faces = match_faces(result.analysis, index, settings)
    entry: dict[str, Any] = {
        "file": str(result.path),
        "width": result.analysis.width,
        "height": result.analysis.height,
        "faces": [f.as_dict() for f in faces],
    }
    if annotate is not None:
        image = read_image_file(result.path, max_pixels=settings.max_pixels)
        target = _unique_name(annotate, result.path, written)
        fmt = image.format if image.format in ("PNG", "WEBP", "BMP") else "JPEG"
        from facelens.annotate import draw_recognition  # loads fonts: only when drawing

        try:
            target.write_bytes(encode_image(draw_recognition(image.pixels, faces), format=fmt))
        except OSError as exc:
            raise errors.StorageError(
                f"{target}: cannot write the annotated image ({exc.strerror or exc})."
            ) from None
        entry["annotated"] = str(target)
    return entry


def _unique_name(folder: Path, source: Path, taken: set[str]) -> Path:
    """``folder/<source name>``, with a numeric suffix when two inputs share a name."""
    suffix = source.suffix if source.suffix.lower() in (".png", ".webp", ".bmp") else ".jpg"
    name, n = f"{source.stem}{suffix}", 1
    while name in taken:
        n += 1
        name = f"{source.stem}-{n}{suffix}"
    taken.add(name)
    return folder / name


def _print_recognitions(listing: list[dict[str, Any]]) -> None:
    for entry in listing:
        if "error" in entry:
            out.print(f"[red]error:[/red] {escape(entry['error'])}")
            continue
        faces = entry["faces"]
        out.print(
            f"[bold]{escape(entry['file'])}[/bold] ({entry['width']}x{entry['height']}): "
            f"{len(faces)} face{'s' if len(faces) != 1 else ''}"
        )
        for face in faces:
            box = face["box"]
            distance = "-" if face["distance"] is None else f"{face['distance']:.3f}"
            flag = " [yellow](ambiguous)[/yellow]" if face["ambiguous"] else ""
            out.print(
                f"  {escape(face['name'])}  distance {distance}  confidence "
                f"{face['confidence']:.2f}  box ({box['left']},{box['top']})-"
                f"({box['right']},{box['bottom']}){flag}"
            )
        if "annotated" in entry:
            out.print(f"  written: {escape(entry['annotated'])}")


@app.command()
def verify(
    ctx: typer.Context,
    first: Annotated[Path, typer.Argument(help="A photo of one person.")],
    second: Annotated[Path, typer.Argument(help="A photo to compare with it.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Tell whether two photos show the same person (the largest face of each)."""
    with _handled(ctx) as state:
        engine = Engine.load(state.settings)
        analyses = []
        for path in (first, second):
            analysis = read_and_analyze(engine, path)
            if not analysis.faces:
                raise errors.NoFaceFound(
                    f"{path}: no face was found; use a photo with a clear face."
                )
            analyses.append(analysis)
        result = engine.verify(analyses[0], analyses[1]).as_dict()
        if as_json:
            _print_json(result)
        else:
            verdict = (
                "[green]same person[/green]"
                if result["same_person"]
                else "[red]different people[/red]"
            )
            out.print(
                f"{verdict}: distance {result['distance']:.3f} (threshold {result['threshold']})"
            )
            for note in result["notes"]:
                out.print(f"[dim]note: {note}[/dim]")


@people_app.command("list")
def people_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List enrolled people and how many faces each has."""
    with _handled(ctx) as state:
        people = _gallery(state).list_people()
        if as_json:
            _print_json([{"name": p.name, "faces": p.faces} for p in people])
            return
        table = Table(title=f"{len(people)} people in {state.settings.gallery_path}")
        table.add_column("name")
        table.add_column("faces", justify="right")
        for p in people:
            table.add_row(escape(p.name), str(p.faces))
        out.print(table)


@people_app.command("rename")
def people_rename(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(help="The current name.")],
    new: Annotated[str, typer.Argument(help="The new name.")],
) -> None:
    """Rename a person; their faces stay."""
    with _handled(ctx) as state:
        person = _gallery(state).rename_person(old, new)
        out.print(escape(f"renamed {old!r} to {person.name!r} ({person.faces} faces)"))


@people_app.command("remove")
def people_remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The person to remove.")],
) -> None:
    """Remove a person and every stored embedding of them (biometric data is deleted)."""
    with _handled(ctx) as state:
        faces = _gallery(state).remove_person(name)
        out.print(escape(f"removed {name!r} and {faces} stored face{'s' if faces != 1 else ''}"))


@app.command()
def info(ctx: typer.Context) -> None:
    """Load the models, open the gallery, and show the settings in force."""
    with _handled(ctx) as state:
        s = state.settings
        engine = Engine.load(s)
        gallery = _gallery(state, bind=True)
        people = gallery.list_people()
        rows: list[tuple[str, str]] = [
            ("data dir", str(s.data_dir)),
            ("gallery", str(s.gallery_path)),
            ("people", f"{len(people)} ({sum(p.faces for p in people)} faces)"),
            (
                "detector",
                f"{engine.detector.name} (upsample {s.upsample}, detects at <= "
                f"{s.detect_max_side} px)",
            ),
            ("model", engine.model_id),
            ("threshold", str(s.threshold)),
            ("workers", str(s.workers)),
            ("max pixels", f"{s.max_pixels:,}"),
        ]
        table = Table(title="facelens", show_header=False)
        for key, value in rows:
            table.add_row(key, value)
        out.print(table)
        out.print(
            "ready: [bold]facelens enroll FOLDER[/bold] then [bold]facelens recognize PHOTO[/bold]"
        )


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to listen on (env FACELENS_HOST, default 127.0.0.1: this machine "
            "only; 0.0.0.0: every network).",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port (env FACELENS_PORT, default 5000).", show_default=False),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes holding the models (env FACELENS_WORKERS, default CPU count).",
            show_default=False,
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(help="text or json (env FACELENS_LOG_FORMAT).", show_default=False),
    ] = None,
) -> None:
    """Run the HTTP service: /predictor, the /v1 JSON API (docs at /docs), /metrics.

    There is no debug or auto-reload mode: a debugger open to the network runs anyone's code.
    """
    from facelens.api.server import serve as run_server  # FastAPI loads only for serve

    state: State = ctx.obj
    given = {"host": host, "port": port, "workers": workers, "log_format": log_format}
    settings = _settings(
        {
            **state.settings.model_dump(exclude_unset=True),
            **{key: value for key, value in given.items() if value is not None},
        }
    )
    with _handled(ctx):
        run_server(settings, debug=state.debug)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


@eval_app.command("pairs")
def eval_pairs(
    ctx: typer.Context,
    pairs_csv: Annotated[
        Path, typer.Argument(help="CSV with a header: image, image, label (yes/no, 1/0, ...).")
    ],
    images: Annotated[
        Path, typer.Option(help="Folder the image paths of the CSV are relative to.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Write the ROC curve to this PNG.", show_default=False)
    ] = None,
) -> None:
    """Verification accuracy on labelled pairs: accuracy, best threshold, ROC AUC, TAR@FAR."""
    from facelens.evaluate import (
        embed_largest,
        read_pairs,
        resolve_images,
        save_roc_plot,
        score_pairs,
    )

    with _handled(ctx) as state:
        pairs = read_pairs(pairs_csv)
        paths = resolve_images([name for p in pairs for name in (p.first, p.second)], images)
        if plot is not None:  # before the long part, not after it
            if plot.is_dir():
                raise errors.InputPathError(f"{plot}: is a folder; give a file name for the plot.")
            try:
                plot.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise errors.InputPathError(
                    f"{plot.parent}: cannot create the folder for the plot ({exc.strerror or exc})."
                ) from None
        with _progress("embedding") as progress:
            task = progress.add_task("embedding", total=len(paths), current="")
            embeddings = embed_largest(
                paths,
                state.settings,
                on_file=lambda r: progress.update(task, advance=1, current=r.path.name),
            )
        report = score_pairs(pairs, embeddings, state.settings.threshold)
        if plot is not None:
            save_roc_plot(report, plot)
        if as_json:
            _print_json(report.as_dict())
            return
        result = report.as_dict()
        table = Table(title=f"{escape(str(pairs_csv))}: {result['pairs']} pairs", show_header=False)
        rows = [
            (
                "pairs scored",
                f"{result['scored_pairs']} ({result['same_pairs']} same, "
                f"{result['different_pairs']} different)",
            ),
            ("images without a face", str(len(result["no_face"]))),
            (f"accuracy at threshold {report.threshold}", _percent(report.accuracy)),
            (
                "best threshold",
                "n/a"
                if report.best_threshold is None
                else f"{report.best_threshold:.4f} ({_percent(report.best_accuracy)})",
            ),
            ("ROC AUC", "n/a" if report.auc is None else f"{report.auc:.4f}"),
        ]
        rows += [
            (
                f"TAR at FAR {far}",
                _percent(tar) if tar is not None else "n/a (too few different-person pairs)",
            )
            for far, tar in report.tar_at_far.items()
        ]
        for key, value in rows:
            table.add_row(key, value)
        out.print(table)
        for title, items in (
            ("false accepts", result["false_accepts"]),
            ("false rejects", result["false_rejects"]),
        ):
            for item in items:
                out.print(
                    escape(
                        f"{title[:-1]}: {item['first']} ~ {item['second']} "
                        f"(distance {item['distance']})"
                    )
                )
        for name in result["no_face"]:
            out.print(escape(f"no face: {name}"), style="yellow")
        if plot is not None:
            out.print(escape(f"ROC curve written to {plot}"))


@eval_app.command("identify")
def eval_identify(
    ctx: typer.Context,
    people_dir: Annotated[Path, typer.Argument(help="Enrolment folder: <name>/<photos>.")],
    probes_dir: Annotated[Path, typer.Argument(help="Folder of the photos to recognise.")],
    labels: Annotated[
        Path, typer.Option(help="CSV with a header: file, expected names ';'-separated.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Enrol PEOPLE_DIR into a temporary gallery, recognise the probes, compare with LABELS."""
    from facelens.evaluate import identify_probes

    with _handled(ctx) as state:
        report = identify_probes(people_dir, probes_dir, labels, state.settings)
        result = report.as_dict()
        if as_json:
            _print_json(result)
            return
        for probe in result["probes"]:
            mark = "[green]hit [/green]" if probe["hit"] else "[red]miss[/red]"
            detail = probe["error"] or ", ".join(probe["found"]) or "no face"
            out.print(
                f"{mark} {escape(probe['file'])}: {escape(detail)}"
                + ("" if probe["hit"] else escape(f" (expected {', '.join(probe['expected'])})"))
            )
        out.print(
            f"top-1 accuracy {_percent(result['top1_accuracy'])} "
            f"({result['known_named_correctly']}/{result['known_faces']} known faces); "
            f"unknown left unknown {result['unknown_left_unknown']}/{result['unknown_faces']}; "
            f"wrong names {result['wrong_names']}; probes fully right "
            f"{_percent(result['probe_accuracy'])} (threshold {result['threshold']})"
        )


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Who or what the key is for, e.g. door-camera.")],
) -> None:
    """Create an API key; once any key exists, every API call needs one. Shown only once."""
    from facelens.keys import KeyStore

    with _handled(ctx) as state:
        record, key = KeyStore(state.settings.gallery_path).create(name)
        err.print(escape(f"created key {record.id} ({record.name}); it is shown only this once:"))
        out.print(key)


@keys_app.command("list")
def keys_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List API keys (ids and names; the keys themselves are not stored)."""
    from facelens.keys import KeyStore

    with _handled(ctx) as state:
        keys = KeyStore(state.settings.gallery_path).list()
        if as_json:
            _print_json(
                [
                    {
                        "id": k.id,
                        "name": k.name,
                        "created_at": k.created_at.isoformat(),
                        "revoked_at": None if k.revoked_at is None else k.revoked_at.isoformat(),
                    }
                    for k in keys
                ]
            )
            return
        table = Table(title=f"{sum(k.active for k in keys)} active API keys")
        for column in ("id", "name", "created", "status"):
            table.add_column(column)
        for k in keys:
            status = "active" if k.active else f"revoked {k.revoked_at:%Y-%m-%d %H:%M}"
            table.add_row(k.id, escape(k.name), f"{k.created_at:%Y-%m-%d %H:%M}", status)
        out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id, from 'facelens keys list'.")],
) -> None:
    """Revoke an API key: the server refuses it from the next request on."""
    from facelens.keys import KeyStore

    with _handled(ctx) as state:
        store = KeyStore(state.settings.gallery_path)
        record = store.revoke(key_id)
        out.print(escape(f"revoked key {record.id} ({record.name})"))
        if store.active_count() == 0:
            err.print(
                "[yellow]note:[/yellow] no active key is left: the server refuses every API "
                "call until 'facelens keys create NAME' makes a new one."
            )


def main() -> None:
    """Console-script entry point."""
    app()
