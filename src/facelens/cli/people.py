"""Commands on people and on API keys: light, no model is loaded."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from facelens.cli.app import (
    err,
    escape,
    handled,
    keys_app,
    open_gallery,
    open_keys,
    out,
    people_app,
    print_json,
)


@people_app.command("list")
def people_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List enrolled people and how many faces each has."""
    with handled(ctx) as state:
        gallery = open_gallery(state, read_only=True)
        people = [(p.name, p.faces) for p in gallery.list_people()]
        gallery.close()
        print_people(people, f"{len(people)} people in {state.settings.gallery_path}", as_json)


def print_people(people: list[tuple[str, int]], title: str, as_json: bool) -> None:
    """(name, faces) rows as a table, or as JSON ``[{"name", "faces"}]``."""
    if as_json:
        print_json([{"name": name, "faces": faces} for name, faces in people])
        return
    table = Table(title=escape(title))
    table.add_column("name")
    table.add_column("faces", justify="right")
    for name, faces in people:
        table.add_row(escape(name), str(faces))
    out.print(table)


@people_app.command("rename")
def people_rename(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(help="The current name.")],
    new: Annotated[str, typer.Argument(help="The new name.")],
) -> None:
    """Rename a person; their faces stay."""
    with handled(ctx) as state:
        person = open_gallery(state).rename_person(old, new)
        out.print(escape(f"renamed {old!r} to {person.name!r} ({person.faces} faces)"))


@people_app.command("merge")
def people_merge(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="The person whose faces move (then removed).")],
    target: Annotated[str, typer.Argument(help="The person who keeps every face.")],
) -> None:
    """Merge SOURCE into TARGET: every face of SOURCE (its thumbnail, the record of its
    photo) moves to TARGET; SOURCE is removed. For one person enrolled under two names."""
    with handled(ctx) as state:
        merged = open_gallery(state).merge_person(source, target)
        print_merged(merged.source, merged.name, merged.moved, merged.dropped)


def print_merged(source: str, target: str, moved: int, dropped: int) -> None:
    twice = f"; {dropped} of the same photos {target!r} had already were dropped" if dropped else ""
    out.print(
        escape(
            f"merged {source!r} into {target!r}: {moved} face{'s' if moved != 1 else ''} "
            f"moved{twice}; {source!r} is removed"
        )
    )


@people_app.command("remove")
def people_remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The person to remove.")],
) -> None:
    """Remove a person and every stored embedding of them (biometric data is deleted)."""
    with handled(ctx) as state:
        faces = open_gallery(state).remove_person(name)
        out.print(escape(f"removed {name!r} and {faces} stored face{'s' if faces != 1 else ''}"))


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Who or what the key is for, e.g. door-camera.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            help="What the key may do, repeatable: recognize (ask who is in photos; read "
            "people, events, streams), enrol (also change people), admin (also add, change "
            "and delete streams). Default: recognize and enrol.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create an API key; once any key exists, every API call needs one. Shown only once."""
    from facelens.api.keys import DEFAULT_SCOPES, scopes_from

    with handled(ctx) as state:
        scopes = DEFAULT_SCOPES if not scope else scopes_from(scope)
        record, key = open_keys(state).create(name, scopes)
        err.print(
            escape(
                f"created key {record.id} ({record.name}, may "
                f"{' + '.join(record.scope_names)}); it is shown only this once:"
            )
        )
        out.print(key)


@keys_app.command("list")
def keys_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List API keys (ids and names; the keys themselves are not stored)."""

    with handled(ctx) as state:
        keys = open_keys(state).list()
        if as_json:
            print_json(
                [
                    {
                        "id": k.id,
                        "name": k.name,
                        "created_at": k.created_at.isoformat(),
                        "revoked_at": None if k.revoked_at is None else k.revoked_at.isoformat(),
                        "scopes": k.scope_names,
                    }
                    for k in keys
                ]
            )
            return
        table = Table(title=f"{sum(k.active for k in keys)} active API keys")
        for column in ("id", "name", "scopes", "created", "status"):
            table.add_column(column)
        for k in keys:
            status = "active" if k.active else f"revoked {k.revoked_at:%Y-%m-%d %H:%M}"
            table.add_row(
                k.id,
                escape(k.name),
                " ".join(k.scope_names),
                f"{k.created_at:%Y-%m-%d %H:%M}",
                status,
            )
        out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id, from 'facelens keys list'.")],
) -> None:
    """Revoke an API key: the server refuses it from the next request on."""

    with handled(ctx) as state:
        store = open_keys(state)
        record = store.revoke(key_id)
        out.print(escape(f"revoked key {record.id} ({record.name})"))
        if store.active_count() == 0:
            err.print(
                "[yellow]note:[/yellow] no active key is left: the server refuses every API "
                "call until 'facelens keys create NAME' makes a new one."
            )


@keys_app.command("off")
def keys_off(
    ctx: typer.Context,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: anyone who can reach the server may use it.")
    ] = False,
) -> None:
    """Switch API keys off: forget every key, so the API needs none (revoking keeps it locked)."""
    from facelens.errors import InvalidValue

    with handled(ctx) as state:
        if not yes:
            raise InvalidValue(
                "Switching keys off opens the API to anyone who can reach the server; "
                "run again with --yes to do it."
            )
        forgotten = open_keys(state).switch_off()
        out.print(escape(f"API keys are off ({forgotten} forgotten); the API needs no key."))
