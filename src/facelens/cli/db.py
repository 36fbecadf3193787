"""``facelens db``: the shared database (FACELENS_DATABASE_URL) — its schema upgraded by an
operator, and a gallery copied between a SQLite file and PostgreSQL, either way."""

from __future__ import annotations

from typing import Annotated

import typer

from facelens.cli.app import app, escape, handled, out, print_json
from facelens.errors import InvalidValue

db_app = typer.Typer(
    no_args_is_help=True,
    help="The shared PostgreSQL database: upgrade its schema, copy a gallery in or out.",
)
app.add_typer(db_app, name="db")

FROM_SETTINGS = "FACELENS_DATABASE_URL"


@db_app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be done; change nothing.")
    ] = False,
) -> None:
    """Bring the schema of the database FACELENS_DATABASE_URL names to this version's (servers
    do it too when they start: one of several started at once does, the others wait)."""
    from facelens.gallery import pg_schema
    from facelens.storage.postgres import PostgresDatabase

    with handled(ctx) as state:
        if state.settings.database_url is None:
            raise InvalidValue(
                "FACELENS_DATABASE_URL is not set: a SQLite gallery upgrades itself when it is "
                "opened (a copy of it as it was is kept beside it)."
            )
        db = PostgresDatabase.open(state.settings.database_url.get_secret_value())
        try:
            plan = pg_schema.plan(db) if dry_run else pg_schema.upgrade(db)
        finally:
            db.close()
        where = escape(db.shown)
        if not plan.pending:
            out.print(f"{where}: schema version {plan.version}, the latest: nothing to do.")
        else:
            verb = "would be upgraded" if dry_run else "upgraded"
            out.print(
                f"{where}: schema version {plan.version} {verb} to {plan.pending[-1]} "
                f"(steps {', '.join(map(str, plan.pending))})."
            )


@db_app.command("copy")
def copy(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            help="A postgresql:// URL, a data directory or a gallery file; "
            f"{FROM_SETTINGS} for the database that setting names (keeps the password off "
            "the command line)."
        ),
    ],
    target: Annotated[str, typer.Argument(help="Where to copy it: the same forms.")],
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Drop what the target holds first (else it must be empty)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Copy a gallery — people, faces with their ids, vectors, thumbnails, enrolment records,
    model, API keys — from SQLite to PostgreSQL or back, in one transaction, and the events
    with their pending deliveries between a data directory and a database; then verify the
    counts and a checksum of every vector on both sides."""
    from facelens.jobs.db_copy import copy_gallery

    with handled(ctx) as state:
        places = []
        for place in (source, target):
            if place == FROM_SETTINGS:
                if state.settings.database_url is None:
                    raise InvalidValue(f"{FROM_SETTINGS} is not set.")
                place = state.settings.database_url.get_secret_value()
            places.append(place)
        report = copy_gallery(places[0], places[1], replace=replace)
        if as_json:
            print_json(report.as_dict())
            return
        counts = report.counts
        events = (
            f", {counts['events']} events ({counts['deliveries']} deliveries pending)"
            if "events" in counts
            else ""
        )
        out.print(
            f"Copied {counts['people']} people, {counts['faces']} faces "
            f"({counts['face_thumbnails']} thumbnails), {counts['sources']} enrolment records "
            f"({report.model}), {counts['api_keys']} API keys{events} from "
            f"{escape(report.source)} to {escape(report.target)}; verified (SHA-256 "
            f"{report.checksum[:16]}…)."
        )
