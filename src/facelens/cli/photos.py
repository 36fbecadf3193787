"""Commands on photos: enrol a folder, recognise, verify; and serve."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from facelens import errors
from facelens.cli.app import (
    EXIT_PARTIAL,
    State,
    app,
    engine_for_command,
    engine_for_gallery,
    err,
    escape,
    exit_code_for,
    handled,
    open_gallery,
    out,
    print_json,
    progress_bar,
    validated_settings,
)

if TYPE_CHECKING:
    from facelens.core.recognition import Recognition
    from facelens.jobs.batch import FileResult
    from facelens.jobs.enrol import EnrolmentReport


@app.command("enroll")  # the command's name; "enrol" in identifiers
def enrol(
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
    from facelens.jobs.enrol import enrol_folder, plan_enrolment

    with handled(ctx) as state:
        plan = plan_enrolment(folder)  # every input path checked before any model loads
        gallery = open_gallery(state)  # the data dir is writable and the model matches
        engine = engine_for_gallery(state, gallery)
        progress = progress_bar("enrolling")
        with progress:
            task = progress.add_task("enrolling", total=0, current="")

            def started(total: int) -> None:
                progress.update(task, total=total)

            def advanced(result: FileResult[Any]) -> None:
                progress.update(task, advance=1, current=result.path.name)

            report = enrol_folder(
                plan,
                gallery,
                engine.settings,
                take_largest=largest,
                prune=prune,
                engine=engine,
                on_start=started,
                on_file=advanced,
            )
        print_enrolment(report, as_json)
        gallery.close()


def print_enrolment(report: EnrolmentReport, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "folder": str(report.root),
                "people": [
                    {
                        "name": name,
                        "folder": r.folder or name,
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
    table = Table(title=escape(f"Enrolment of {report.root}"))
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
    for name, r in sorted(report.people.items()):
        if r.folder is not None:
            out.print(
                escape(
                    f"note: the folder {r.folder!r} was enrolled before as {name!r} (renamed or "
                    f"merged since); its photos stay with {name!r}. Rename the folder to match."
                )
            )


@app.command()
def recognize(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Photos to recognise, or folders: a folder's images (not its sub-folders')."
        ),
    ],
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
    from facelens.core.recognition import recognize_bytes
    from facelens.jobs.batch import run_batch

    with handled(ctx) as state:
        files = batch_files(files)
        if annotate is not None:
            prepare_output_dir(annotate)
        gallery = open_gallery(state, read_only=True)
        index = gallery.index()
        gallery.close()
        if not len(index):
            err.print(
                "[yellow]note:[/yellow] the gallery is empty, so every face is unknown; "
                "run 'facelens enroll FOLDER' first."
            )
        engine = engine_for_gallery(state, gallery)
        job = functools.partial(
            recognize_bytes,
            engine,
            index=index,
            annotate="like-source" if annotate is not None else None,
        )
        unique = list(dict.fromkeys(files))
        by_path: dict[Path, dict[str, Any]] = {}
        failed: list[errors.FaceLensError] = []
        written: set[str] = set()
        with progress_bar("recognising") as progress:
            task = progress.add_task("recognising", total=len(unique), current="")
            for result in run_batch(unique, engine.settings, job):
                if result.error is not None:
                    failed.append(result.error)
                by_path[result.path] = _recognition_entry(result, annotate, written)
                progress.update(task, advance=1, current=result.path.name)
        listing = [by_path[path] for path in files]
        if as_json:
            print_json(listing)
        else:
            print_recognitions(listing)
        if failed:
            # One kind of failure for every file: its own code; a mixed batch: "partial".
            codes = {exit_code_for(e) for e in failed}
            raise typer.Exit(
                codes.pop() if len(failed) == len(unique) and len(codes) == 1 else EXIT_PARTIAL
            )


def batch_files(paths: list[Path]) -> list[Path]:
    """The photos ``paths`` give, a folder's images in its place; what a folder held besides
    is left out with a note (on stderr: ``--json`` stays a list of the photos)."""
    from facelens.core.imaging import image_files

    found = image_files(paths)
    by_folder: dict[Path, list[str]] = {}
    for entry in found.left_out:
        by_folder.setdefault(entry.parent, []).append(
            f"{entry.name}/" if entry.is_dir() else entry.name
        )
    for folder, names in by_folder.items():
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        err.print(
            "[yellow]note:[/yellow] "
            + escape(
                f"{folder}: left out {shown} (not images by their names; sub-folders are not "
                "searched: give them too)."
            )
        )
    return list(found.files)


def prepare_output_dir(folder: Path) -> None:
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
    result: FileResult[Recognition], annotate: Path | None, written: set[str]
) -> dict[str, Any]:
    recognition = result.value
    if recognition is None:
        return {
            "file": str(result.path),
            "error": str(result.error),
            "error_code": result.error.code if result.error else "error",
        }
    entry: dict[str, Any] = {
        "file": str(result.path),
        "width": recognition.analysis.width,
        "height": recognition.analysis.height,
        "faces": [f.as_dict() for f in recognition.faces],
    }
    if annotate is not None and recognition.annotated is not None:
        target = unique_name(annotate, result.path, recognition.annotated_format, written)
        try:
            target.write_bytes(recognition.annotated)
        except OSError as exc:
            raise errors.StorageError(
                f"{target}: cannot write the annotated image ({exc.strerror or exc})."
            ) from None
        entry["annotated"] = str(target)
    return entry


_SUFFIXES = {"PNG": ".png", "WEBP": ".webp", "BMP": ".bmp"}


def unique_name(folder: Path, source: Path, fmt: str | None, taken: set[str]) -> Path:
    """``folder/<source name>`` with the suffix of ``fmt``, numbered when two inputs share a
    name."""
    suffix = _SUFFIXES.get(fmt or "", ".jpg")
    name, n = f"{source.stem}{suffix}", 1
    while name in taken:
        n += 1
        name = f"{source.stem}-{n}{suffix}"
    taken.add(name)
    return folder / name


def print_recognitions(listing: list[dict[str, Any]]) -> None:
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
    from facelens.core.recognition import analyze_file

    with handled(ctx) as state:
        engine = engine_for_command(state)
        analyses = []
        for path in (first, second):
            analysis = analyze_file(engine, path)
            if not analysis.faces:
                raise errors.NoFaceFound(
                    f"{path}: no face was found; use a photo with a clear face."
                )
            analyses.append(analysis)
        result = engine.verify(analyses[0], analyses[1]).as_dict()
        if as_json:
            print_json(result)
        else:
            print_verification(result, engine.profile.name)


def print_verification(result: dict[str, Any], model: str) -> None:
    verdict = (
        "[green]same person[/green]" if result["same_person"] else "[red]different people[/red]"
    )
    out.print(
        f"{verdict}: distance {result['distance']:.3f} (threshold {result['threshold']}, "
        f"model {escape(model)})"
    )
    for note in result["notes"]:
        out.print(f"[dim]note: {escape(note)}[/dim]")


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
    allow_no_keys: Annotated[
        bool,
        typer.Option(
            "--allow-no-keys",
            help="Listen beyond loopback even with no API key, as something else guards the "
            "port (env FACELENS_ALLOW_NO_KEYS; otherwise serve refuses, exit 2).",
            show_default=False,
        ),
    ] = False,
) -> None:
    """Run the HTTP service: /predictor, the /v1 JSON API (docs at /docs), /metrics.

    There is no debug or auto-reload mode: a debugger open to the network runs anyone's code.
    """
    from facelens.api.server import serve as run_server  # FastAPI loads only for serve

    state: State = ctx.obj
    given = {
        "host": host,
        "port": port,
        "workers": workers,
        "log_format": log_format,
        "allow_no_keys": allow_no_keys or None,  # unset: the environment's
    }
    settings = validated_settings(
        {
            **state.settings.model_dump(exclude_unset=True),
            **{key: value for key, value in given.items() if value is not None},
        }
    )
    with handled(ctx):
        run_server(settings, debug=state.debug)
