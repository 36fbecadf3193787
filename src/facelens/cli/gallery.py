"""``facelens gallery``: move the gallery to another model; propose a threshold for it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from facelens.cli.app import (
    EXIT_DAMAGED,
    EXIT_PARTIAL,
    err,
    escape,
    gallery_app,
    handled,
    open_gallery,
    out,
    percent,
    print_json,
    progress_bar,
)
from facelens.settings import ModelName

if TYPE_CHECKING:
    from facelens.jobs.calibrate import ThresholdProposal
    from facelens.jobs.model_move import MigrationReport


@gallery_app.command("migrate")
def gallery_migrate(
    ctx: typer.Context,
    model: Annotated[ModelName, typer.Option(help="The model to move the gallery to.")],
    dry_run: Annotated[
        bool, typer.Option(help="Do all the work and report, but change nothing.")
    ] = False,
    keep_backup: Annotated[
        bool,
        typer.Option(
            help="Keep the copy of the gallery as it was even when every face moved (it holds "
            "biometric data; it is always kept when some face could not be moved)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Re-embed every face with another model, from the photos enrolment recorded.

    Faces enrolled from folders are re-embedded from their files; faces uploaded over HTTP
    (whose photos were never kept), or whose file is gone or changed, from the thumbnail kept
    of them. Faces with neither are listed, with the people who need new photos. The switch is
    atomic. The old gallery is kept as a backup file when some face could not be moved (or with
    --keep-backup), else deleted. Exits 1 if any face could not be moved.
    """
    from facelens.errors import StorageError
    from facelens.gallery import SQLiteGallery
    from facelens.jobs.model_move import migrate_gallery

    with handled(ctx) as state:
        if state.settings.database_url is not None:
            raise StorageError(
                "'facelens gallery migrate' re-embeds a SQLite gallery; this one is in "
                "PostgreSQL. Copy it into a file ('facelens db copy'), migrate the file with "
                "FACELENS_DATABASE_URL unset, and copy it back."
            )
        # Opened with its own model: the one asked for here is the target, not a check.
        gallery = SQLiteGallery(state.settings.gallery_path)
        progress = progress_bar("re-embedding")
        with progress:
            task = progress.add_task("re-embedding", total=0, current="")
            report = migrate_gallery(
                gallery,
                state.settings,
                model,
                dry_run=dry_run,
                keep_backup=keep_backup,
                on_start=lambda total: progress.update(task, total=total),
                on_file=lambda r: progress.update(task, advance=1, current=r.path.name),
            )
        gallery.close()
        if as_json:
            print_json(report.as_dict())
        else:
            _print_migration(report)
        if report.left_out and report.source_model != report.target_model:
            raise typer.Exit(EXIT_PARTIAL)


def _print_migration(report: MigrationReport) -> None:
    if report.source_model == report.target_model:
        out.print(escape(f"{report.gallery} already uses the {report.target_model} model."))
        return
    verb = "would move" if report.dry_run else "moved"
    out.print(
        escape(
            f"{report.gallery}: {verb} from {report.source_model} to {report.target_model}; "
            f"{report.reembedded} faces re-embedded from their photos or thumbnails, "
            f"{len(report.left_out)} could not be."
        )
    )
    if report.left_out:
        table = Table(title="Faces not moved (their embeddings are deleted by the move)")
        for column in ("person", "face id", "source", "why"):
            table.add_column(column)
        for face in report.left_out:
            table.add_row(
                escape(face.person), str(face.face_id), escape(face.source or "-"), face.reason
            )
        out.print(table)
    if report.people_without_faces:
        out.print(
            escape(
                "People left with no face, who need new photos (facelens enroll FOLDER, or "
                "POST /v1/people/{name}/faces): " + ", ".join(report.people_without_faces)
            )
        )
    if report.retry_on_next_enrol:
        out.print(
            f"{report.retry_on_next_enrol} photos the old model skipped (no face, several "
            "faces) will be tried again by the next 'facelens enroll'."
        )
    if report.backup is not None:
        err.print(
            escape(
                f"The gallery as it was is kept in {report.backup}: it holds the old embeddings "
                "and thumbnails of every face (those not moved too), and people removed from "
                "now on stay in it. Delete it when you no longer need it."
            )
        )
    elif report.changed:
        err.print("No copy of the old gallery is kept: every face moved.")
    if report.dry_run:
        err.print("[yellow]dry run[/yellow]: nothing was changed.")


@gallery_app.command("threshold")
def gallery_threshold(
    ctx: typer.Context,
    strangers: Annotated[
        float,
        typer.Option(
            help="The chance you accept that a stranger is named as one of your people, "
            "e.g. 0.01 for 1%."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the proposal as JSON.")] = False,
) -> None:
    """Propose a threshold for this gallery: a stranger named with at most a chosen chance.

    Each enrolled person plays, in turn, a stranger to everybody else; the report says how sure
    the estimate is for a gallery of this size. Nothing is changed: set FACELENS_THRESHOLD.
    """
    from facelens.jobs.calibrate import propose_threshold, stranger_distances  # no model needed

    with handled(ctx) as state:
        gallery = open_gallery(state, read_only=True)
        index = gallery.index()
        gallery.close()
        scoring = gallery.profile.scoring(state.settings)
        proposal = propose_threshold(
            stranger_distances(index), strangers, scoring.threshold, gallery.profile.threshold
        )
        if as_json:
            print_json({"model": gallery.profile.name, **proposal.as_dict()})
            return
        _print_proposal(proposal, gallery.profile.name)


def _print_proposal(p: ThresholdProposal, model: str) -> None:
    target = percent(p.target)
    evidence = (
        f"From {p.people} people ({p.faces} faces), each played in turn as a stranger to the "
        f"others: at {p.threshold} a stranger is named an estimated {percent(p.rate)} of the "
        f"time, and with 95% confidence at most {percent(p.bound)}."
    )
    if p.advice == "looser":
        out.print(
            f"[bold]Proposed threshold {p.threshold}[/bold] for the {model} model, looser than "
            f"its own {p.model_threshold}: this gallery is 95% sure it names a stranger at most "
            f"{target} of the time."
        )
    elif p.advice == "stricter":
        out.print(
            f"[bold]Proposed threshold {p.threshold}[/bold] for the {model} model, stricter "
            f"than its own {p.model_threshold}: at {p.model_threshold} this gallery names its "
            f"own people as each other more often than {target}."
        )
    else:
        out.print(
            f"[bold]Keep the {model} model's threshold {p.model_threshold}.[/bold] This gallery "
            f"cannot show that a looser one names strangers at most {target} of the time: "
            f"with {p.people} people nothing looser is 95% sure (it takes about "
            f"{p.people_needed} people, none of them named). The model's threshold was set "
            "on far more faces (docs/benchmarks.md); a small gallery naming nobody is no "
            "evidence that strangers would not be named."
        )
    out.print(evidence)
    if p.current_threshold != p.model_threshold:
        out.print(
            f"At the threshold in force, {p.current_threshold}: {percent(p.current_rate)} "
            f"(95% sure it is at most {percent(p.current_bound)})."
        )
    out.print(
        "[dim]The estimate leans optimistic: enrolled photos are usually better than a "
        "camera's. Try it with 'facelens eval identify' on photos of people you know.[/dim]"
    )
    if p.threshold != p.current_threshold:
        out.print(f"To use it: FACELENS_THRESHOLD={p.threshold} (or --threshold {p.threshold}).")
    else:
        out.print("Nothing to change.")


@gallery_app.command("thumbnails")
def gallery_thumbnails(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Make the thumbnails (and sharpness) that faces enrolled before they were kept lack,
    from the photos on disk; exits 1 if some face could not get one."""
    from facelens.jobs.thumbnails import backfill_thumbnails

    with handled(ctx) as state:
        gallery = open_gallery(state)
        progress = progress_bar("thumbnails")
        with progress:
            task = progress.add_task("thumbnails", total=0, current="")
            report = backfill_thumbnails(
                gallery,
                state.settings,
                on_start=lambda total: progress.update(task, total=total),
                on_file=lambda r: progress.update(task, advance=1, current=r.path.name),
            )
        gallery.close()
        if as_json:
            print_json(
                {
                    "made": report.made,
                    "had": report.had,
                    "left_out": [f.as_dict() for f in report.left_out],
                }
            )
        else:
            out.print(
                f"{report.made} thumbnails made; {report.had} faces had one; "
                f"{len(report.left_out)} could not get one."
            )
            for face in report.left_out:
                out.print(escape(f"  face {face.face_id} of {face.person!r}: {face.reason}"))
        if report.left_out:
            raise typer.Exit(EXIT_PARTIAL)


@gallery_app.command("check")
def gallery_check(ctx: typer.Context) -> None:
    """Check the gallery file (SQLite's quick_check), its stored vectors and its names; only
    reads (works on a full or read-only disk). Exit 12 if it is damaged, 5 if it cannot be
    read (that is not damage: keep the file), 1 if some stored vectors are unusable."""
    from facelens.errors import GalleryDamaged, StorageError
    from facelens.storage.sqlite import check_file

    with handled(ctx) as state:
        path = state.settings.gallery_path
        if not path.is_file():
            raise StorageError(f"There is no gallery at {path}.")
        try:
            gallery = open_gallery(state, read_only=True)
        except GalleryDamaged as exc:
            problems = check_file(path) or [exc.message]
            for problem in problems[:50]:
                out.print(escape(f"damaged: {problem}"))
            err.print(
                escape(
                    f"error: {path} is damaged ({len(problems)} problems). Restore it from a "
                    "backup, or move it away to start afresh."
                )
            )
            raise typer.Exit(EXIT_DAMAGED) from None
        gallery.index()
        bad = gallery.bad_faces
        faces = {f.id: f for f in gallery.faces()} if bad else {}
        lookalikes = gallery.lookalikes()
        gallery.close()
        for face_id in bad:
            face = faces[face_id]
            out.print(
                escape(
                    f"unusable vector: face {face_id} of {face.person!r} ({face.source or '-'}); "
                    "left out of matching: delete it and enrol the photo again"
                )
            )
        for names in lookalikes:
            out.print(
                escape(
                    "look-alike names, stored before facelens refused them: "
                    + ", ".join(map(repr, names))
                    + "; rename one, or if they are one person merge them ('facelens people "
                    "merge SOURCE TARGET')"
                )
            )
        out.print(
            escape(
                f"{path}: sound; model {gallery.profile.name}; {len(bad)} unusable stored vectors."
            )
        )
        if bad:
            raise typer.Exit(1)


@gallery_app.command("backup")
def gallery_backup(
    ctx: typer.Context,
    target: Annotated[Path, typer.Argument(help="The file to write (must not exist).")],
) -> None:
    """Copy the gallery file alone (people, faces, keys) to TARGET, consistently, while in
    use. 'facelens backup' copies the whole data directory (events and streams too)."""
    from facelens.backup.write import check_target

    with handled(ctx) as state:
        check_target(target)
        gallery = open_gallery(state)
        gallery.backup(target)
        gallery.close()
        out.print(escape(f"backed up {state.settings.gallery_path} to {target}"))
