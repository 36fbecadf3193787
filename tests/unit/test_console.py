"""The console's files on a tiny app (no server, no model): what the folder listing serves, and
that no request path reaches a file outside it, however it is spelt."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from fastapi import FastAPI
from starlette.types import Message

from facelens.api import console, errors
from facelens.api.paths import PathGuard

SECRET = "secret next to the web folder"


def app_over(folder: Path) -> PathGuard:
    app = FastAPI()
    errors.install(app)
    app.include_router(console.router(folder))  # type: ignore[arg-type]
    return PathGuard(app)


def get(app: PathGuard, raw_path: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``raw_path`` exactly as sent, as uvicorn hands it to the app (percent-decoded, dot
    segments kept: unlike an HTTP client, which would tidy ``..`` away before sending)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:5000")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 5000),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], headers, body


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A console folder with a nested module, a hidden file, and a secret beside the folder."""
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "secret.js").write_text(SECRET)
    web = tmp_path / "web"
    (web / "js" / "tabs").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>page</title>")
    (web / "app.css").write_text("body { margin: 0; }")
    (web / "icon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (web / "js" / "main.js").write_text('import "./tabs/people.js";')
    (web / "js" / "tabs" / "people.js").write_text("export const people = 1;")
    (web / ".main.js.swp").write_text("an editor's file")
    return web


def test_every_file_of_the_folder_is_served_by_its_path_with_its_type_and_policy(
    site: Path,
) -> None:
    app = app_over(site)
    assert sorted(console.web_files(site)) == [  # type: ignore[arg-type]
        "app.css",
        "icon.svg",
        "js/main.js",
        "js/tabs/people.js",
    ]
    for name, kind in (
        ("js/main.js", "text/javascript; charset=utf-8"),
        ("js/tabs/people.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ):
        status, headers, body = get(app, f"/console/{name}")
        assert status == 200, name
        assert headers["content-type"] == kind
        assert headers["content-security-policy"] == console.POLICY
        assert headers["x-content-type-options"] == "nosniff"
        assert body == (site / name).read_bytes()
    status, headers, body = get(app, "/")
    assert status == 200 and body == (site / "index.html").read_bytes()
    assert headers["content-security-policy"] == console.POLICY


@pytest.mark.parametrize(
    "path",
    [
        "/console/../secret.txt",
        "/console/../../secret.txt",
        "/console/%2e%2e/secret.txt",
        "/console/%2E%2E/secret.js",
        "/console/js/../../secret.js",
        "/console/js/%2e%2e/%2e%2e/secret.js",
        "/console/js/../app.css",  # inside the folder, yet not a name of the listing
        "/console/./app.css",
        "/console//app.css",
        "/console//etc/passwd",
        "/console/..\\secret.txt",
        "/console/js",  # a folder
        "/console/js/",
        "/console/js/tabs",
        "/console/",
        "/console/index.html",  # the page is served at / only
        "/console/.main.js.swp",  # hidden: left out
        "/console/nothing.js",
        "/console/JS/MAIN.JS",
        "/console/js/main.js%00.txt",
    ],
)
def test_no_path_reaches_a_file_outside_the_listing(site: Path, path: str) -> None:
    status, headers, body = get(app_over(site), path)
    assert status == 404, (path, status)
    assert headers["content-type"].startswith("application/json")
    assert SECRET.encode() not in body
    assert b"export" not in body and b"margin" not in body


@pytest.mark.parametrize("path", ["/console/..%2Fsecret.txt", "/console/js%2F..%2F..%2Fsecret.js"])
def test_an_encoded_slash_is_refused_before_the_console_sees_it(site: Path, path: str) -> None:
    status, _, body = get(app_over(site), path)
    assert status == 400 and b"encoded_slash" in body and SECRET.encode() not in body


def test_a_file_of_a_type_the_console_does_not_serve_stops_the_app_from_starting(
    site: Path,
) -> None:
    (site / "js" / "notes.txt").write_text("a note left behind")
    with pytest.raises(RuntimeError, match=re.escape("web/js/notes.txt")):
        console.router(site)  # type: ignore[arg-type]


def test_the_package_serves_every_file_of_its_web_folder() -> None:
    """What the wheel ships (the package's web/): every file of it has a type the console
    serves, so the app starts; each module is there under js/."""
    served = console.web_files(console.web_folder())
    web = Path(str(console.web_folder()))
    on_disk = {
        p.relative_to(web).as_posix()
        for p in web.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }
    assert set(served) == on_disk - {"index.html"}
    assert "js/main.js" in served
    modules = {name: s.media_type for name, s in served.items() if name.endswith(".js")}
    assert set(modules.values()) == {"text/javascript; charset=utf-8"}
