"""The web console: one page at ``/`` and its few static files, from the package (no CDN: it
works offline). The page calls the same ``/v1`` API as any client, with the user's key."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from facelens.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSETS: dict[str, str] = {
    "app.js": "text/javascript; charset=utf-8",
    "verify.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
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


@cache
def _read(name: str) -> bytes:
    return (resources.files("facelens") / "web" / name).read_bytes()


@router.get("/")
async def page() -> Response:
    return Response(_read("index.html"), media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/console/{asset}")
async def asset(asset: str) -> Response:
    media_type = ASSETS.get(asset)
    if media_type is None:
        raise NotFound(f"The console has no file {asset!r}.")
    return Response(_read(asset), media_type=media_type, headers=HEADERS)
