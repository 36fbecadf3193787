"""The ``facelens`` command's frame: options, settings, error → exit code, shared helpers.

Commands live beside this module, one per kind of job; they parse, call the engine or gallery,
and print. Model libraries are imported inside the commands that need them, so that
``facelens --help`` and light commands start fast.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape as escape_markup

from facelens import errors
from facelens.settings import DetectorName, ModelName, Settings, unknown_variables
from facelens.system import redact

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    from facelens.api.keys import KeyStore
    from facelens.core.pipeline import Engine
    from facelens.gallery import StoredGallery
    from facelens.models.background import EmbeddingLoad

# Exit codes, one per kind of failure, so scripts can tell them apart.
EXIT_PARTIAL = 1  # a batch finished but some inputs failed
EXIT_SETTINGS = 2  # wrong usage or an invalid setting (typer's own code for usage errors)
EXIT_DAMAGED = 12  # the gallery is damaged (one that cannot be read or written is 5)
EXIT_CANNOT_LISTEN = 13  # a port in use (or privileged, or an address not this machine's)
EXIT_CODES: dict[type[errors.FaceLensError], int] = {
    errors.InputPathError: 3,
    errors.ImageError: 4,
    errors.NoFaceFound: 4,
    errors.StorageError: 5,
    errors.GalleryDamaged: EXIT_DAMAGED,
    errors.ModelError: 6,
    errors.NotFound: 7,
    errors.Conflict: 8,
    errors.InvalidValue: 9,
    errors.Unavailable: 10,
    errors.DatabaseUnavailable: 10,  # retried later (systemd restarts on it; 5 it does not)
    errors.Unauthorized: 11,
    errors.Forbidden: 11,
    errors.CannotListen: EXIT_CANNOT_LISTEN,
    errors.UnsafeSettings: EXIT_SETTINGS,
}
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="facelens",
    no_args_is_help=True,
    add_completion=False,
    help="Self-hosted face recognition: enrol people from folders, recognise and verify faces.",
)
people_app = typer.Typer(
    no_args_is_help=True, help="List, rename, merge and remove enrolled people."
)
app.add_typer(people_app, name="people")
gallery_app = typer.Typer(
    no_args_is_help=True,
    help="The gallery as a whole: move it to another model, propose a threshold for it.",
)
app.add_typer(gallery_app, name="gallery")
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
    # The aligner and embedder ``facelens`` started loading before it parsed its arguments
    # (facelens/__main__.py), taken by the first engine built; None once taken, or if none.
    early_load: EmbeddingLoad | None = None


_KEPT = frozenset("\t\n\u200c\u200d")  # line layout; joiners, which names need (Persian)


def _shown(c: str) -> str:
    if c in _KEPT or unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp"):
        return c
    return c.encode("unicode_escape").decode("ascii")


def escape(text: str) -> str:
    """User text (names, paths, messages) printed literally: rich's markup escaped, and control
    and format characters shown as escapes, so a file name can neither drive the terminal
    (\x1b[...) nor reorder what is shown around it (U+202E, right-to-left override)."""
    return escape_markup("".join(map(_shown, text)))


def exit_code_for(exc: errors.FaceLensError) -> int:
    """The exit code of a failure: the most specific class in :data:`EXIT_CODES`, else 1."""
    kind = type(exc)
    if isinstance(exc, errors.APIError):  # a server's answer: the code of the same local error
        kind = errors.error_class(exc.code) or (errors.Unavailable if exc.retryable else kind)
    for cls in kind.__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1


@contextmanager
def handled(ctx: typer.Context) -> Iterator[State]:
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


@contextmanager
def until_stopped() -> Iterator[threading.Event]:
    """An event that Ctrl-C or SIGTERM sets, for a command that ends cleanly on either. On
    leaving, Ctrl-C gets its handler back (a second one interrupts the clean-up); SIGTERM still
    only sets the event, so the clean-up is not cut short."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def open_gallery(state: State, *, read_only: bool = False, follow: bool = False) -> StoredGallery:
    """The gallery, created on first use and bound to its model (refuses another ``--model``);
    ``read_only`` for commands that only read (they then work on a full or read-only disk)."""
    from facelens.gallery import open_gallery as open_it

    return open_it(state.settings, read_only=read_only, follow=follow)


def open_keys(state: State) -> KeyStore:
    """The API keys: beside the gallery, in its file or in the shared database."""
    from facelens.api.keys import KeyStore

    url = state.settings.database_url
    return KeyStore(
        state.settings.gallery_path, url=None if url is None else url.get_secret_value()
    )


def load_engine(state: State, settings: Settings) -> Engine:
    """The models of the profile ``settings`` name, loaded: ``Engine.load``, but with the
    aligner and embedder loading since start-up if they are that profile's."""
    from facelens.core.pipeline import Engine
    from facelens.models.profiles import profile_for

    profile = profile_for(settings.model)
    early, state.early_load = state.early_load, None
    if early is None:
        return Engine.load(settings)
    if early.profile.id != profile.id:  # a wrong guess: dropped, once ended (see wait)
        early.wait()
        return Engine.load(settings)
    return Engine(settings, profile, *profile.load(settings, embedding=early.models))


def engine_for_gallery(state: State, gallery: StoredGallery) -> Engine:
    """The models of the gallery's profile, loaded."""
    return load_engine(state, state.settings.with_model(gallery.profile.name))


def engine_for_command(state: State) -> Engine:
    """The models for a command that needs no gallery (verify, eval): ``--model`` if given,
    else the model of the data directory's gallery if there is one (so distances and the
    threshold are those ``recognize`` uses), else the default model."""
    settings = state.settings
    if settings.model is None and settings.gallery_path.is_file():
        gallery = open_gallery(state, read_only=True)
        settings = settings.with_model(gallery.profile.name)
        gallery.close()
    return load_engine(state, settings)


class ProgressBar(Protocol):
    """What the commands use of rich's ``Progress``."""

    def __enter__(self) -> ProgressBar: ...

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None: ...

    def add_task(self, description: str, *, total: float | None, **fields: Any) -> Any: ...

    def update(
        self,
        task_id: Any,
        *,
        total: float | None = None,
        advance: float | None = None,
        **fields: Any,
    ) -> None: ...


class _NoBar:
    """The bar where none is shown (stderr is no terminal), without importing rich.progress."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        return None

    def add_task(self, description: str, *, total: float | None, **fields: Any) -> int:
        return 0

    def update(
        self,
        task_id: Any,
        *,
        total: float | None = None,
        advance: float | None = None,
        **fields: Any,
    ) -> None:
        return None


def progress_bar(label: str) -> ProgressBar:
    """A progress bar on stderr, transient; one that shows nothing when stderr is no
    terminal (piped or captured: most runs by scripts, where rich.progress is not needed)."""
    if not err.is_terminal:
        return _NoBar()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"),
        console=err,
        transient=True,
    )


def validated_settings(overrides: dict[str, Any]) -> Settings:
    """Settings from the environment and ``overrides``; exit 2 with the reason if invalid."""
    try:
        return Settings.model_validate(overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        err.print(f"[red]error:[/red] invalid setting: {escape(problems)}")
        raise typer.Exit(EXIT_SETTINGS) from None


def _print_version(asked: bool) -> None:
    if asked:
        from facelens import __version__

        out.print(f"facelens {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where the gallery lives (env FACELENS_DATA_DIR).", show_default=False),
    ] = None,
    model: Annotated[
        ModelName | None,
        typer.Option(
            help="Model profile (env FACELENS_MODEL; default: the one the gallery was built "
            "with, the default model for a new gallery; the README compares them).",
            show_default=False,
        ),
    ] = None,
    detector: Annotated[
        DetectorName | None,
        typer.Option(
            help="Face detector (env FACELENS_DETECTOR; default: the model's own).",
            show_default=False,
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Largest distance for a match (env FACELENS_THRESHOLD; default: the model's).",
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
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    redact.guard_logs(debug=debug)  # no URL's credentials in any log line
    given: dict[str, Any] = {
        "data_dir": data_dir,
        "model": model,
        "detector": detector,
        "threshold": threshold,
        "workers": workers,
    }
    overrides = {key: value for key, value in given.items() if value is not None}
    for name in unknown_variables():
        err.print(
            f"[yellow]warning:[/yellow] {escape(name)} is not a facelens setting and is "
            "ignored (a typo?); 'facelens --help' and docs/settings.md list them."
        )
    # ctx.obj is, until here, what main() passed: the models loading since start-up, if any.
    early: EmbeddingLoad | None = ctx.obj
    ctx.obj = State(validated_settings(overrides), debug, early)


def serve_metrics(port: int, collector: Collector) -> None:
    """Prometheus metrics of ``collector`` on ``127.0.0.1:port`` (a daemon thread)."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(collector)
    try:
        start_http_server(port, addr="127.0.0.1", registry=registry)
    except OSError as exc:
        raise errors.CannotListen(
            f"--metrics-port {port}: cannot listen there ({exc.strerror})."
        ) from None
