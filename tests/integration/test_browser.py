"""A real browser (Debian's Chromium, driven by Playwright) against a real server: a page on
another origin cannot enrol a stranger under someone's name; the server's own page still works.
This is the attack as it was found, a no-preflight multipart fetch from a foreign page."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.support.browser import chromium, playwright_session
from tests.support.server import Server

pytestmark = pytest.mark.integration

ATTACK = """<!doctype html><html><body><script>
const bytes = Uint8Array.from(atob("{photo}"), c => c.charCodeAt(0));
const form = new FormData();
form.append("images", new Blob([bytes], {{type: "image/jpeg"}}), "obama.jpg");
const options = {{method: "POST", mode: "no-cors", body: form}};
window.attack = fetch("{target}/v1/people/biden/faces", options)
  .then(() => "sent", e => "failed: " + e);
</script></body></html>"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with playwright_session() as playwright, chromium(playwright) as launched:
        yield launched


def serve_page(html: str) -> tuple[HTTPServer, str]:
    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the http.server interface
            body = html.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def test_a_foreign_page_cannot_enrol_and_the_servers_own_page_can(
    browser: Browser, tmp_path: Path, people_dir: Path, faces_dir: Path
) -> None:
    srv = Server(tmp_path / "data")
    try:
        c = srv.client
        assert c.post("/v1/people", json={"name": "biden"}).status_code == 201
        biden = (people_dir / "biden" / "biden.jpg").read_bytes()
        assert c.post("/v1/people/biden/faces", files={"images": biden}).status_code == 200
        obama = (faces_dir / "probes" / "obama-240p.jpg").read_bytes()
        attacker, page_url = serve_page(
            ATTACK.format(photo=base64.b64encode(obama).decode(), target=srv.url)
        )
        try:
            page = browser.new_page()
            page.goto(page_url)
            assert page.evaluate("window.attack") == "sent"  # the browser did send it
            page.close()
        finally:
            attacker.shutdown()
        srv.wait_for_log("POST /v1/people/biden/faces 403")
        assert c.get("/v1/people/biden").json()["face_count"] == 1  # nothing enrolled
        recognised = c.post("/v1/recognize", content=obama).json()
        assert [f["name"] for f in recognised["faces"]] == ["unknown"]  # not named biden

        own = browser.new_page()  # the server's own page: same origin, allowed to write
        own.goto(srv.url + "/docs")
        status = own.evaluate(
            """fetch("/v1/people", {method: "POST", headers: {"content-type":
            "application/json"}, body: JSON.stringify({name: "from the docs page"})})
            .then(r => r.status)"""
        )
        own.close()
        assert status == 201
    finally:
        assert srv.stop() == 0
