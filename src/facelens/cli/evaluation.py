"""``facelens eval``: accuracy of the model in force on the user's own labelled photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from facelens import errors
from facelens.cli.app import (
    engine_for_command,
    escape,
    eval_app,
    handled,
    out,
    percent,
    print_json,
    progress_bar,
)
from facelens.system import extras


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
    from facelens.jobs.evaluate import (
        ROC_PLOT,
        embed_largest,
        read_pairs,
        resolve_images,
        save_roc_plot,
        score_pairs,
    )

    with handled(ctx) as state:
        pairs = read_pairs(pairs_csv)
        paths = resolve_images([name for p in pairs for name in (p.first, p.second)], images)
        if plot is not None:  # before the long part, not after it
            extras.require("plots", ROC_PLOT)
            if plot.is_dir():
                raise errors.InputPathError(f"{plot}: is a folder; give a file name for the plot.")
            try:
                plot.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise errors.InputPathError(
                    f"{plot.parent}: cannot create the folder for the plot ({exc.strerror or exc})."
                ) from None
        engine = engine_for_command(state)
        with progress_bar("embedding") as progress:
            task = progress.add_task("embedding", total=len(paths), current="")
            embeddings = embed_largest(
                paths,
                engine,
                on_file=lambda r: progress.update(task, advance=1, current=r.path.name),
            )
        report = score_pairs(pairs, embeddings, engine.scoring, engine.profile.name)
        if plot is not None:
            save_roc_plot(report, plot)
        if as_json:
            print_json(report.as_dict())
            return
        result = report.as_dict()
        table = Table(
            title=f"{escape(str(pairs_csv))}: {result['pairs']} pairs, model {report.model}",
            show_header=False,
        )
        rows = [
            (
                "pairs scored",
                f"{result['scored_pairs']} ({result['same_pairs']} same, "
                f"{result['different_pairs']} different)",
            ),
            ("images without a face", str(len(result["no_face"]))),
            (f"accuracy at threshold {report.threshold}", percent(report.accuracy)),
            (
                "best threshold",
                "n/a"
                if report.best_threshold is None
                else f"{report.best_threshold:.4f} ({percent(report.best_accuracy)})",
            ),
            ("ROC AUC", "n/a" if report.auc is None else f"{report.auc:.4f}"),
        ]
        rows += [
            (
                f"TAR at FAR {far}",
                percent(tar) if tar is not None else "n/a (too few different-person pairs)",
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
    largest: Annotated[
        bool,
        typer.Option(help="Enrol the largest face of people's photos with several, as enroll."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Enrol PEOPLE_DIR into a temporary gallery, recognise the probes, compare with LABELS."""
    from facelens.jobs.evaluate import identify_probes

    with handled(ctx) as state:
        report = identify_probes(
            people_dir,
            probes_dir,
            labels,
            lambda: engine_for_command(state),
            take_largest=largest,
        )
        result = report.as_dict()
        if as_json:
            print_json(result)
            return
        for probe in result["probes"]:
            mark = "[green]hit [/green]" if probe["hit"] else "[red]miss[/red]"
            detail = probe["error"] or ", ".join(probe["found"]) or "no face"
            out.print(
                f"{mark} {escape(probe['file'])}: {escape(detail)}"
                + ("" if probe["hit"] else escape(f" (expected {', '.join(probe['expected'])})"))
            )
        out.print(
            f"top-1 accuracy {percent(result['top1_accuracy'])} "
            f"({result['known_named_correctly']}/{result['known_faces']} known faces); "
            f"strangers named {result['strangers_named']}/{result['unknown_faces']}; "
            f"wrong names {result['wrong_names']}; probes fully right "
            f"{percent(result['probe_accuracy'])} (model {result['model']}, threshold "
            f"{result['threshold']})"
        )
