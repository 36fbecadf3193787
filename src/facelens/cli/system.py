"""``facelens info``: the machine, the model and every setting in force, in one place (what to
paste into a bug report, and what to check on a small box before serving)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.table import Table

from facelens import __version__
from facelens.cli.app import (
    app,
    engine_for_gallery,
    err,
    escape,
    handled,
    open_gallery,
    out,
    print_json,
)
from facelens.settings import Settings
from facelens.system import extras
from facelens.system.host import SERVER_RSS_MB, WORKER_RSS_MB, Host, describe, server_memory_mb

_MB = 1024 * 1024


def _shown(value: object) -> Any:
    """A setting's value as shown: secrets never, paths as text."""
    if isinstance(value, SecretStr):
        return "(set, hidden)" if value.get_secret_value() else None
    if isinstance(value, Path):
        return str(value)
    return value


def settings_in_force(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every ``FACELENS_*`` setting: its value, and whether it was set (environment or option)
    rather than left at its default."""
    return {
        f"FACELENS_{name.upper()}": {
            "value": _shown(getattr(settings, name)),
            "set": name in settings.model_fields_set,
        }
        for name in Settings.model_fields
    }


def _memory(host: Host) -> str:
    parts = []
    if host.memory_bytes is not None:
        parts.append(f"{host.memory_bytes / _MB:,.0f} MB")
    if host.available_bytes is not None:
        parts.append(f"{host.available_bytes / _MB:,.0f} MB available")
    if host.memory_limit_bytes is not None:
        parts.append(f"limited to {host.memory_limit_bytes / _MB:,.0f} MB (cgroup)")
    return ", ".join(parts) or "unknown"


def _cores(host: Host) -> str:
    if host.usable_cores < host.cores:
        return f"{host.cores} ({host.usable_cores:g} usable by this process)"
    return str(host.cores)


@app.command()
def info(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
) -> None:
    """Load the models, open the gallery, and show the machine, the model and the settings in
    force (with the memory the server would need)."""
    from facelens.video.streams import STREAM_RSS_MB  # video code: loaded only here

    with handled(ctx) as state:
        s = state.settings
        host = describe()
        gallery = open_gallery(state, read_only=True)
        engine = engine_for_gallery(state, gallery)
        people = gallery.list_people()
        gallery.close()
        profile = engine.profile
        needed = server_memory_mb(s.workers)
        usable = host.usable_memory_bytes or 0
        short = 0 < usable < needed * _MB
        if as_json:
            print_json(
                {
                    "version": __version__,
                    "platform": {
                        "system": host.system,
                        "distribution": host.distribution,
                        "machine": host.machine,
                        "python": host.python,
                        "cores": host.cores,
                        "usable_cores": host.usable_cores,
                        "memory_bytes": host.memory_bytes,
                        "available_bytes": host.available_bytes,
                        "memory_limit_bytes": host.memory_limit_bytes,
                    },
                    "data_dir": str(s.data_dir),
                    "gallery": gallery.where,
                    "people": len(people),
                    "faces": sum(p.faces for p in people),
                    "model": profile.name,
                    "model_id": profile.id,
                    "detector": engine.detector.name,
                    "detect_max_side": engine.detect_max_side,
                    "threshold": engine.scoring.threshold,
                    "workers": s.workers,
                    "extras": {name: extras.installed(name) for name in extras.EXTRAS},
                    "server_memory_mb": needed,
                    "settings": settings_in_force(s),
                }
            )
            return
        rows: list[tuple[str, str]] = [
            ("version", __version__),
            (
                "platform",
                f"{host.distribution or host.system}, {host.machine}; {host.system}; {host.python}",
            ),
            ("cores", _cores(host)),
            ("memory", _memory(host)),
            ("data dir", str(s.data_dir)),
            ("gallery", gallery.where),
            ("people", f"{len(people)} ({sum(p.faces for p in people)} faces)"),
            ("model", f"{profile.name}: {profile.summary}"),
            ("model id", profile.id),
            ("weights", profile.weights),
            (
                "detector",
                f"{engine.detector.name} (detects at <= {engine.detect_max_side} px"
                + (f", upsample {s.upsample})" if engine.detector.name in ("hog", "cnn") else ")"),
            ),
            ("embedding", f"{profile.dim} numbers, {profile.metric} distance"),
            ("threshold", str(engine.scoring.threshold)),
            ("workers", str(s.workers)),
            (
                "optional parts",
                ", ".join(
                    f"{name} ({'installed' if extras.installed(name) else 'not installed'})"
                    for name in extras.EXTRAS
                ),
            ),
            (
                "server memory",
                f"about {needed:,} MB with {s.workers} workers ({SERVER_RSS_MB} MB + "
                f"{WORKER_RSS_MB} MB each; a stream adds about {STREAM_RSS_MB} MB)",
            ),
            ("max pixels", f"{s.max_pixels:,}"),
        ]
        table = Table(title="facelens", show_header=False)
        for key, value in rows:
            table.add_row(key, escape(value))
        out.print(table)
        settings = Table(title="settings in force (* set, else the default)")
        settings.add_column("variable")
        settings.add_column("value")
        for name, entry in settings_in_force(s).items():
            value = "none" if entry["value"] is None else str(entry["value"])
            settings.add_row(("* " if entry["set"] else "  ") + name, escape(value))
        out.print(settings)
        if short:
            err.print(
                f"[yellow]warning:[/yellow] 'facelens serve' with {s.workers} workers needs about "
                f"{needed:,} MB, more than the {usable / _MB:,.0f} MB this machine has free: "
                "lower FACELENS_WORKERS (docs/small-boxes.md)."
            )
        out.print(
            "ready: [bold]facelens enroll FOLDER[/bold] then [bold]facelens recognize PHOTO[/bold]"
        )
