"""The web console: one page at ``/`` and its static files, from the package (no CDN: it works
offline). The page calls the same ``/v1`` API as any client, with the user's key.

The files are the package's ``web/`` folder, listed and read once when the app is made: a
request names one by its path there (``/console/js/main.js``) and gets it only if it is in that
listing, compared as a whole string, so no path (``..``, encoded or not, a folder, a name from
elsewhere) can reach another file."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import PurePosixPath

from fastapi import APIRouter
from fastapi.responses import Response

from facelens.errors import NotFound

PAGE = "index.html"  # served at / only
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",  # a module script must have a JavaScript type
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Only the page's own files run; it talks only to this server; no other site may frame it.
# blob: images are the photos the user picked and the thumbnails fetched with the key.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the console: its bytes and media type."""

    body: bytes
    media_type: str


def web_folder() -> Traversable:
    """The package's ``web/`` folder (a folder of the wheel, or of the source tree)."""
    return resources.files("facelens") / "web"


def web_files(root: Traversable) -> dict[str, Asset]:
    """Every file under ``root`` but the page, by its path there (``js/main.js``). A file of a
    type not in MEDIA_TYPES stops the app from starting (hidden files, an editor's, are left
    out): a console file nobody can load would otherwise be found by a user."""
    found: dict[str, Asset] = {}

    def walk(where: Traversable, prefix: str) -> None:
        for entry in where.iterdir():
            if entry.name.startswith("."):
                continue
            name = prefix + entry.name
            if entry.is_dir():
                walk(entry, name + "/")
            elif name != PAGE:
                media_type = MEDIA_TYPES.get(PurePosixPath(entry.name).suffix.lower())
                if media_type is None:
                    raise RuntimeError(
                        f"The console's folder holds web/{name}, of a type it does not serve "
                        f"(it serves {', '.join(MEDIA_TYPES)} files): remove it, or add its "
                        "media type to facelens/api/console.py."
                    )
                found[name] = Asset(entry.read_bytes(), media_type)

    walk(root, "")
    return found


def router(folder: Traversable | None = None) -> APIRouter:
    """The page at ``/`` and the files of ``web/`` (or ``folder``) under ``/console/``."""
    root = folder if folder is not None else web_folder()
    page_body = (root / PAGE).read_bytes()
    assets = web_files(root)
    routes = APIRouter(include_in_schema=False)

    @routes.get("/")
    async def page() -> Response:
        return Response(page_body, media_type="text/html; charset=utf-8", headers=HEADERS)

    @routes.get("/console/{name:path}")
    async def asset(name: str) -> Response:
        found = assets.get(name)
        if found is None:
            raise NotFound(f"The console has no file {name!r}.")
        return Response(found.body, media_type=found.media_type, headers=HEADERS)

    return routes
