"""``facelens backup`` and ``facelens restore``: the whole data directory in one archive, and
back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from facelens.cli.app import app, err, escape, handled, out, print_json
from facelens.settings import EVENTS_FILE, GALLERY_FILE


def _holds(found: dict[str, dict[str, Any]]) -> str:
    gallery = found.get(GALLERY_FILE, {})
    events = found.get(EVENTS_FILE, {})
    return (
        f"{gallery.get('people', 0)} people, {gallery.get('faces', 0)} faces "
        f"({gallery.get('model') or 'no model yet'}, schema {gallery.get('schema_version')}), "
        f"{gallery.get('api_keys', 0)} API keys, {events.get('events', 0)} events, "
        f"{events.get('streams', 0)} streams"
    )


@app.command("backup")
def backup(
    ctx: typer.Context,
    target: Annotated[
        Path, typer.Argument(help="The archive to write, e.g. facelens-backup.tar.gz (new).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Write everything of the data directory that matters to one new archive, readable by its
    owner only: the gallery (people, faces, thumbnails, API keys) and the event log (events with
    their crops, the outbox, the streams), each consistent, also while the server runs; with a
    manifest of counts and checksums. 'facelens restore' puts it back."""
    from facelens.backup.write import write_backup

    with handled(ctx) as state:
        report = write_backup(state.settings, target)
        if as_json:
            print_json({"archive": str(report.target), "bytes": report.size, **report.manifest})
            return
        found = {name: report.manifest[name.split(".")[0]] for name in report.manifest["files"]}
        shown = f"{state.settings.data_dir} to {report.target} ({report.size:,} bytes)"
        out.print(escape(f"backed up {shown}"))
        out.print(escape(f"it holds {_holds(found)}"))
        err.print(
            "It holds biometric data, API key hashes and stream URLs with their passwords: "
            "keep it as safe as the data directory."
        )


@app.command("restore")
def restore(
    ctx: typer.Context,
    archive: Annotated[Path, typer.Argument(help="An archive written by 'facelens backup'.")],
    force: Annotated[
        bool,
        typer.Option(
            help="Replace a data directory that holds data (its files are kept in a "
            "before-restore folder beside them)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Put the data directory back as ARCHIVE holds it. Stop the server (and watch, frigate)
    first: refused while any process uses the data directory. The whole archive is checked
    (manifest, checksums, each database) before anything is changed; a gallery of an older
    schema is upgraded as on any open."""
    from facelens.backup.restore import restore_backup

    with handled(ctx) as state:
        report = restore_backup(state.settings, archive, force=force)
        if as_json:
            print_json(
                {
                    "archive": str(report.archive),
                    "data_dir": str(report.data_dir),
                    "created_at": report.manifest.get("created_at"),
                    "facelens_version": report.manifest.get("facelens_version"),
                    "restored": report.restored,
                    "before": None if report.before is None else str(report.before),
                    "upgraded_from": report.upgraded_from,
                }
            )
            return
        out.print(
            escape(
                f"restored {report.data_dir} from {report.archive} (made "
                f"{report.manifest.get('created_at')} by facelens "
                f"{report.manifest.get('facelens_version')}): {_holds(report.restored)}"
            )
        )
        if report.upgraded_from is not None:
            out.print(f"its gallery was upgraded from schema version {report.upgraded_from}.")
        if report.before is not None:
            err.print(
                escape(
                    f"The files it replaced are in {report.before}: they hold biometric data; "
                    "delete that folder once the restored data has proven itself."
                )
            )
