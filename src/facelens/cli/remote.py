"""``facelens remote ...``: the local commands, against a facelens server (``facelens.client``).

``--url`` and ``--api-key`` (or ``FACELENS_URL`` and ``FACELENS_API_KEY``) name the server.
Output, JSON fields and exit codes are those of the local commands; a server's error maps to
the exit code of the same local error, and a server that cannot be reached exits 10.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from facelens import errors
from facelens.cli.app import (
    EXIT_PARTIAL,
    State,
    app,
    err,
    escape,
    exit_code_for,
    handled,
    out,
    print_json,
    progress_bar,
)
from facelens.cli.people import print_merged, print_people
from facelens.cli.photos import print_enrolment, print_recognitions, print_verification

if TYPE_CHECKING:
    from facelens.client import Client
    from facelens.jobs.enrol import EnrolmentPlan

remote_app = typer.Typer(
    no_args_is_help=True,
    help="The same commands, against a facelens server (--url, --api-key).",
)
app.add_typer(remote_app, name="remote")
remote_people_app = typer.Typer(no_args_is_help=True, help="People on the server.")
remote_app.add_typer(remote_people_app, name="people")

Url = Annotated[
    str | None,
    typer.Option(
        help="The server (env FACELENS_URL; default http://127.0.0.1:5000).", show_default=False
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(help="Its API key (env FACELENS_API_KEY).", show_default=False),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print as JSON.")]


def _client(state: State, url: str | None, api_key: str | None) -> Client:
    from facelens.client import Client, RetryPolicy

    settings = state.settings
    secret = settings.api_key
    key = api_key or (secret.get_secret_value() if secret is not None else None)
    retry = RetryPolicy(deadline=settings.remote_deadline_s)
    return Client(url or settings.url, api_key=key, retry=retry)


@remote_app.command("recognize")
def remote_recognize(
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
            help="Write each photo, boxes and names drawn, into this folder.", show_default=False
        ),
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Name the faces in photos; a bad file is reported and the others still done."""
    from facelens.cli.photos import batch_files, prepare_output_dir, unique_name

    with handled(ctx) as state, _client(state, url, api_key) as server:
        files = batch_files(files)
        if annotate is not None:
            prepare_output_dir(annotate)
        listing: list[dict[str, Any]] = []
        failed: list[errors.FaceLensError] = []
        written: set[str] = set()
        for path in files:
            try:
                if annotate is not None:
                    image = server.annotate(path)
                result = server.recognize(path)
            except (errors.APIError, errors.InputPathError) as exc:
                if isinstance(exc, errors.APIError) and not 400 <= exc.status < 500:
                    raise  # the server failed, not this photo
                failed.append(exc)
                listing.append({"file": str(path), "error": exc.message, "error_code": exc.code})
                continue
            entry: dict[str, Any] = {
                "file": str(path),
                "width": result.width,
                "height": result.height,
                "faces": [f.model_dump(mode="json") for f in result.faces],
            }
            if annotate is not None:
                target = unique_name(annotate, path, "JPEG", written)
                target.write_bytes(image)
                entry["annotated"] = str(target)
            listing.append(entry)
        if as_json:
            print_json(listing)
        else:
            print_recognitions(listing)
        if failed:
            codes = {exit_code_for(e) for e in failed}
            raise typer.Exit(
                codes.pop() if len(failed) == len(files) and len(codes) == 1 else EXIT_PARTIAL
            )


@remote_app.command("verify")
def remote_verify(
    ctx: typer.Context,
    first: Annotated[Path, typer.Argument(help="A photo of one person.")],
    second: Annotated[Path, typer.Argument(help="A photo to compare with it.")],
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Tell whether two photos show the same person (the largest face of each)."""
    with handled(ctx) as state, _client(state, url, api_key) as server:
        result = server.verify(first, second).model_dump(mode="json")
        result.pop("timings_ms", None)
        result.pop("images", None)  # the local command's JSON has no boxes
        model = server.ready().get("profile", "?")
        if as_json:
            print_json(result)
        else:
            print_verification(result, str(model))


@remote_app.command("enroll")
def remote_enrol(
    ctx: typer.Context,
    folder: Annotated[
        Path, typer.Argument(help="A folder with one sub-folder of photos per person.")
    ],
    largest: Annotated[
        bool, typer.Option(help="In a photo with several faces, enrol the largest.")
    ] = False,
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Photos uploaded at once.")] = 4,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Upload FOLDER/<name>/* to the server: a person is created with their first enrolled
    face (never empty), a photo already enrolled is not enrolled again, and a folder whose
    photos the server holds under another name (renamed or merged since) goes to that person.
    Exits 0 only if every photo was enrolled (now or before)."""
    from facelens.jobs.enrol import EnrolmentReport, Skipped, plan_enrolment

    with handled(ctx) as state, _client(state, url, api_key) as server:
        plan = plan_enrolment(folder)  # every path checked before anything is sent
        report = EnrolmentReport(plan.root, ignored=list(plan.ignored))
        renamed = _renamed_on(server, plan)
        for name in plan.people:
            person = renamed.get(name, name)
            report.person(person).folder = name if person != name else None

        def upload(person: str, path: Path) -> tuple[str, Path, Any]:
            try:
                return person, path, server.add_faces(person, [path], largest=largest, create=True)
            except (errors.APIError, errors.InputPathError) as exc:
                if isinstance(exc, errors.APIError) and not 400 <= exc.status < 500:
                    raise
                return person, path, exc

        with progress_bar("enrolling") as progress, ThreadPoolExecutor(concurrency) as pool:
            task = progress.add_task("enrolling", total=len(plan.files), current="")
            futures = [
                pool.submit(upload, renamed.get(f.person, f.person), f.path) for f in plan.files
            ]
            for future in as_completed(futures):
                person, path, outcome = future.result()
                record = report.person(person)
                if isinstance(outcome, errors.FaceLensError):
                    record.skipped.append(Skipped(path, outcome.message))
                else:
                    (item,) = outcome.results
                    if item.status == "enrolled":
                        record.enrolled += 1
                        record.faces += len(item.face_ids)
                    elif item.status == "already_enrolled":
                        record.unchanged += 1
                    else:
                        record.skipped.append(Skipped(path, item.reason or "skipped"))
                progress.update(task, advance=1, current=path.name)
        print_enrolment(report, as_json)
        if report.skipped_count:
            err.print(
                f"[yellow]{report.skipped_count} of {len(plan.files)} photos were not "
                "enrolled[/yellow] (listed above)."
            )
            raise typer.Exit(EXIT_PARTIAL)


def _renamed_on(server: Client, plan: EnrolmentPlan) -> dict[str, str]:
    """Folders whose photos the server holds under one other name only: folder → that
    person. Asked by the photos' SHA-256, which the server keeps for every enrolled photo
    and which follows a face through renames, merges and moves (a file's path or name, as
    local enrolment uses, means nothing to a server that never saw the folder)."""
    from facelens.jobs.enrol import renamed_folders

    digests: dict[Path, str] = {}
    for planned in plan.files:
        with suppress(OSError):  # an unreadable file is reported when it is uploaded
            digests[planned.path] = hashlib.sha256(planned.path.read_bytes()).hexdigest()
    holders: dict[str, set[str]] = {}
    for held in server.photo_holders(digests.values()):
        holders.setdefault(held.sha256, set()).add(held.person)
    by_folder: dict[str, set[str]] = {}
    for planned in plan.files:
        for person in holders.get(digests.get(planned.path, ""), ()):
            by_folder.setdefault(planned.person, set()).add(person)
    return renamed_folders(by_folder)


@remote_app.command("health")
def remote_health(
    ctx: typer.Context, url: Url = None, api_key: ApiKey = None, as_json: AsJson = False
) -> None:
    """Whether the server is ready, its model and its gallery size; exits 10 if not ready."""
    with handled(ctx) as state, _client(state, url, api_key) as server:
        ready = server.ready()
        if as_json:
            print_json(ready)
        else:
            out.print(
                f"{escape(server.url)}: [bold]{escape(str(ready.get('status')))}[/bold], model "
                f"{escape(str(ready.get('profile')))}, {ready.get('people')} people, "
                f"{ready.get('workers_ready')}/{ready.get('workers')} workers"
            )
            for problem in ready.get("problems", []):
                out.print(f"  [red]problem:[/red] {escape(str(problem))}")
        if ready.get("status") != "ready":
            raise typer.Exit(exit_code_for(errors.Unavailable("")))


@remote_people_app.command("list")
def remote_people_list(
    ctx: typer.Context, url: Url = None, api_key: ApiKey = None, as_json: AsJson = False
) -> None:
    """List the server's people and how many faces each has."""
    with handled(ctx) as state, _client(state, url, api_key) as server:
        people = [(p.name, p.face_count) for p in server.people()]
        print_people(people, f"{len(people)} people on {server.url}", as_json)


@remote_people_app.command("rename")
def remote_people_rename(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(help="The current name.")],
    new: Annotated[str, typer.Argument(help="The new name.")],
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Rename a person; their faces stay."""
    with handled(ctx) as state, _client(state, url, api_key) as server:
        person = server.rename_person(old, new)
        out.print(escape(f"renamed {old!r} to {person.name!r} ({person.face_count} faces)"))


@remote_people_app.command("merge")
def remote_people_merge(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="The person whose faces move (then removed).")],
    target: Annotated[str, typer.Argument(help="The person who keeps every face.")],
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Merge SOURCE into TARGET: every face of SOURCE moves to TARGET; SOURCE is removed."""
    with handled(ctx) as state, _client(state, url, api_key) as server:
        merged = server.merge_person(source, target)
        print_merged(merged.merged, merged.name, merged.faces_moved, merged.duplicates_dropped)


@remote_people_app.command("remove")
def remote_people_remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The person to remove.")],
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Remove a person and every stored embedding of them."""
    with handled(ctx) as state, _client(state, url, api_key) as server:
        faces = server.delete_person(name).faces_removed
        out.print(escape(f"removed {name!r} and {faces} stored face{'s' if faces != 1 else ''}"))
