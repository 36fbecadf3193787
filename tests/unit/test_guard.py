"""The browser guard on a tiny app: Host names, cross-origin writes, CORS (no server needed)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from facelens.api.guard import BrowserGuard


def client(allowed_hosts: str = "", cors_origins: str = "", bound: str = "127.0.0.1") -> TestClient:
    async def ok(request: object) -> PlainTextResponse:
        return PlainTextResponse("done")

    app = Starlette(routes=[Route("/x", ok, methods=["GET", "POST", "DELETE"])])
    guarded = BrowserGuard(
        app, bound_host=bound, allowed_hosts=allowed_hosts, cors_origins=cors_origins
    )
    return TestClient(guarded, base_url="http://127.0.0.1:5000")


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:5000", "localhost:5000", "[::1]:5000", "10.0.0.7", "LOCALHOST"],
)
def test_ip_literals_and_localhost_are_answered(host: str) -> None:
    assert client().post("/x", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example:5000", "rebind.attacker.test", "127.0.0.1.nip.io"])
def test_other_names_are_refused_as_dns_rebinding_would_use_them(host: str) -> None:
    answer = client().get("/x", headers={"host": host})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "host_not_allowed"
    assert "FACELENS_ALLOWED_HOSTS" in answer.json()["error"]["message"]


def test_configured_names_and_the_bound_name_are_answered() -> None:
    assert (
        client("facelens, cam.lan").get("/x", headers={"host": "facelens:5000"}).status_code == 200
    )
    assert client("cam.lan").get("/x", headers={"host": "CAM.LAN"}).status_code == 200
    assert client("*").get("/x", headers={"host": "anything.test"}).status_code == 200
    assert (
        client(bound="box.local").get("/x", headers={"host": "box.local:5000"}).status_code == 200
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example", "sec-fetch-site": "cross-site"},
        {"origin": "http://127.0.0.1:8000", "sec-fetch-site": "same-site"},  # another port
        {"origin": "http://evil.example"},  # an older browser: no Sec-Fetch-Site
        {"origin": "null"},  # a sandboxed frame or a file:// page
    ],
)
def test_writes_from_pages_of_other_origins_are_refused(headers: dict[str, str]) -> None:
    for method in ("POST", "DELETE"):
        answer = client().request(method, "/x", headers=headers)
        assert answer.status_code == 403, (method, headers)
        assert answer.json()["error"]["code"] == "cross_origin"


def test_reads_and_same_origin_and_non_browser_writes_pass() -> None:
    c = client()
    assert c.get("/x", headers={"origin": "http://evil.example"}).status_code == 200
    same = {"origin": "http://127.0.0.1:5000", "sec-fetch-site": "same-origin"}
    assert c.post("/x", headers=same).status_code == 200  # the server's own page
    assert c.post("/x", headers={"origin": "http://127.0.0.1:5000"}).status_code == 200
    assert c.post("/x").status_code == 200  # curl, requests, the Python client


def test_an_origin_in_the_cors_setting_may_write() -> None:
    c = client(cors_origins="https://app.example/, http://other.test")
    allowed = {"origin": "https://app.example", "sec-fetch-site": "cross-site"}
    assert c.post("/x", headers=allowed).status_code == 200
    refused = {"origin": "https://app.example.evil", "sec-fetch-site": "cross-site"}
    assert c.post("/x", headers=refused).status_code == 403
