"""How much a real server takes at once: held-open sockets, long-lived views and busy clients
cannot lock others out, health checks are always answered, forwarded addresses are believed
only from trusted proxies, and no other site may frame the server's pages."""

from __future__ import annotations

import http.server
import io
import json
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support.browser import chromium, playwright_session
from tests.support.server import Server

pytestmark = pytest.mark.integration


def address(srv: Server) -> tuple[str, int]:
    host, port = srv.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def connect(srv: Server, source: str = "127.0.0.1") -> socket.socket:
    """A connection to ``srv`` from the loopback address ``source`` (127.0.0.0/8 is all ours:
    each address is another client to the server)."""
    sock = socket.create_connection(address(srv), timeout=10, source_address=(source, 0))
    sock.settimeout(10)
    return sock


def request(srv: Server, path: str, source: str = "127.0.0.1", method: str = "GET") -> bytes:
    """A whole answer to one request (HTTP/1.1, connection closed after it)."""
    with connect(srv, source) as sock:
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while part := sock.recv(65536):
            answer += part
    return answer


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body(answer: bytes) -> dict[str, object]:
    found: dict[str, object] = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    return found


def is_closed(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (it sent nothing: a read gives EOF or a reset)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


@contextmanager
def held(sockets: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def test_held_open_sockets_never_lock_out_other_clients_or_health_checks(tmp_path: Path) -> None:
    """600 half-open connections (a head begun, never finished) from one address: before, the
    256th made every request, /healthz included, a plain-text 503."""
    srv = Server(tmp_path / "data")
    try:
        with held([]) as stalled:
            for _ in range(600):
                sock = connect(srv)
                sock.sendall(b"GET /v1/people HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                stalled.append(sock)
            time.sleep(0.5)
            # The same client's oldest idle ones were closed to make room: 64 kept.
            open_now = [s for s in stalled if not is_closed(s)]
            assert len(open_now) <= 64, len(open_now)
            assert not set(open_now) & set(stalled[:500]), "the newest must be the ones kept"
            for source in ("127.0.0.1", "127.0.0.2"):
                assert status(request(srv, "/healthz", source)) == 200
                answer = request(srv, "/v1/people", source)
                assert status(answer) == 200 and "people" in body(answer)
        assert "refused" not in srv.log()
    finally:
        assert srv.stop() == 0


def test_live_views_have_a_budget_of_their_own_and_a_share_per_client(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", env={"FACELENS_MAX_LIVE_VIEWS": "8"})  # 2 per client

    def listen(source: str) -> tuple[socket.socket, bytes]:
        """A live view opened: its answer's head, and its body if it is an error."""
        sock = connect(srv, source)
        sock.sendall(b"GET /v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
        if status(answer) != 200:
            while part := sock.recv(4096):
                answer += part
        return sock, answer

    try:
        with held([]) as views:
            for source in ("127.0.0.1", "127.0.0.1"):
                sock, head = listen(source)
                views.append(sock)
                assert status(head) == 200 and b"text/event-stream" in head
            sock, third = listen("127.0.0.1")  # the third of one client
            views.append(sock)
            assert status(third) == 503 and b"retry-after: 2" in third.lower()
            message = body(third)["error"]
            assert isinstance(message, dict) and message["code"] == "unavailable"
            assert "a quarter of FACELENS_MAX_LIVE_VIEWS" in str(message["message"])
            # Other clients still get theirs, up to the cap of 8 in all.
            answers = []
            for n in range(2, 10):
                sock, head = listen(f"127.0.0.{n}")
                views.append(sock)
                answers.append(status(head))
            assert answers.count(200) == 6 and answers.count(503) == 2, answers
            # Ordinary requests and health checks are not held up by the views.
            assert status(request(srv, "/v1/people")) == 200
            assert status(request(srv, "/healthz")) == 200
            assert status(request(srv, "/readyz")) == 200
        # Closed views give their places back.
        deadline = time.monotonic() + 10
        while True:
            sock, head = listen("127.0.0.1")
            sock.close()
            if status(head) == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status(head) == 200
    finally:
        assert srv.stop() == 0


def slow_upload(srv: Server, source: str) -> socket.socket:
    """A request whose body is begun and not finished: in progress until the server times it."""
    sock = connect(srv, source)
    sock.sendall(
        b"POST /v1/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: 100000\r\n\r\n\xff\xd8"
    )
    return sock


def test_busy_clients_get_a_json_503_and_leave_room_for_others(tmp_path: Path) -> None:
    srv = Server(
        tmp_path / "data",
        env={
            "FACELENS_MAX_REQUESTS": "8",  # 2 per client
            "FACELENS_MAX_CONNECTIONS": "6",
            "FACELENS_READ_TIMEOUT_S": "60",  # the slow uploads stay in progress
        },
    )
    try:
        with held([]) as uploads:
            uploads += [slow_upload(srv, "127.0.0.1") for _ in range(2)]
            time.sleep(0.3)
            answer = request(srv, "/v1/people")  # a third request of the same client
            assert status(answer) == 503 and b"retry-after: 2" in answer.lower()
            assert "a quarter of FACELENS_MAX_REQUESTS" in str(body(answer))
            assert status(request(srv, "/v1/people", "127.0.0.2")) == 200  # another client
            assert status(request(srv, "/healthz")) == 200  # never counted
            # Every connection busy (6 uploads in progress): requests are refused, health
            # checks still answered, and nothing else is closed.
            uploads += [slow_upload(srv, f"127.0.0.{n}") for n in (3, 3, 4, 4)]
            time.sleep(0.3)
            crowded = request(srv, "/v1/people", "127.0.0.9")
            assert status(crowded) == 503
            assert "All 6 connections are busy" in str(body(crowded))
            assert status(request(srv, "/healthz", "127.0.0.9")) == 200
            assert status(request(srv, "/readyz", "127.0.0.9")) == 200
            assert not any(is_closed(s) for s in uploads)
        deadline = time.monotonic() + 10
        while status(request(srv, "/v1/people")) != 200:
            assert time.monotonic() < deadline, "the uploads' places never came back"
            time.sleep(0.2)
    finally:
        assert srv.stop() == 0


KEY = "a-key-of-the-operator-0123456789"


def compat_list(srv: Server, forwarded: str) -> httpx.Response:
    """CompreFace's list of subjects with no key, as if through a proxy for ``forwarded``."""
    return httpx.get(
        srv.url + "/api/v1/recognition/subjects", headers={"X-Forwarded-For": forwarded}
    )


def test_forwarded_addresses_are_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    """With keys on and an open network for CodeProject.AI clients, any local process could
    claim to be in that network with X-Forwarded-For (uvicorn believes 127.0.0.1 by default)."""
    env = {"FACELENS_SERVER_API_KEYS": KEY, "FACELENS_COMPAT_OPEN_NETWORKS": "10.0.0.0/8"}
    srv = Server(tmp_path / "data", env=env)
    try:
        posed = compat_list(srv, "10.1.2.3")
        assert posed.status_code == 400 and posed.json()["code"] == 20, posed.text  # no key
        srv.wait_for_log("compat call without a key from 127.0.0.1: refused")
    finally:
        assert srv.stop() == 0
    proxied = Server(tmp_path / "data", env={**env, "FACELENS_TRUSTED_PROXIES": "127.0.0.1"})
    try:
        assert compat_list(proxied, "10.1.2.3").status_code == 200
        proxied.wait_for_log("compat call without a key from 10.1.2.3: allowed")
        assert compat_list(proxied, "192.168.1.5").status_code == 400
    finally:
        assert proxied.stop() == 0


def test_no_page_of_another_site_can_frame_the_api_docs(tmp_path: Path) -> None:
    """A hostile page puts /docs in a transparent frame: the browser must refuse to show it."""
    srv = Server(tmp_path / "data")
    hostile = (
        f'<html><body><iframe id="f" src="{srv.url}/docs" width="800" height="600">'
        "</iframe></body></html>"
    ).encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(hostile)))
            self.end_headers()
            self.wfile.write(hostile)

        def log_message(self, *args: object) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        docs = srv.client.get("/docs")
        assert docs.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
        with playwright_session() as playwright, chromium(playwright) as browser:
            page = browser.new_page()
            page.goto(f"http://localhost:{site.server_address[1]}/")
            page.wait_for_timeout(2000)
            # Blocked: the frame shows Chromium's error page, not Swagger UI.
            children = [f for f in page.frames if f != page.main_frame]
            assert len(children) == 1
            shown = children[0].content()
            assert "swagger-ui" not in shown, shown[:500]
    finally:
        site.shutdown()
        assert srv.stop() == 0


def test_http_1_0_without_a_host_and_head_of_healthz_are_answered(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data")
    try:
        with connect(srv) as sock:
            sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            answer = b""
            with suppress(ConnectionResetError):
                while part := sock.recv(4096):
                    answer += part
        assert status(answer) == 200 and body(answer) == {"status": "ok"}
        head = request(srv, "/healthz", method="HEAD")
        assert status(head) == 200 and head.endswith(b"\r\n\r\n")  # no body
    finally:
        assert srv.stop() == 0


def test_sigterm_refuses_the_waiting_requests_in_json_and_finishes_the_running_ones(
    tmp_path: Path, faces_dir: Path
) -> None:
    """Before, requests still waiting for a worker when the graceful shutdown timed out got
    uvicorn's text/plain 500, and the log tracebacks."""
    # ~0.3 s of work each, annotated (a 12 MP photo decoded whole, drawn on and encoded again:
    # analysed alone it is decoded reduced, ~70 ms): 60 of them outlast the grace on 2 workers.
    big = io.BytesIO()
    Image.open(faces_dir / "probes" / "obama-1080p.jpg").resize((4618, 2598)).save(big, "JPEG")
    roomy = {
        "FACELENS_MAX_REQUESTS": "1000",
        "FACELENS_MAX_QUEUE": "200",
        "FACELENS_MAX_CONNECTIONS_PER_CLIENT": "1000",
    }
    srv = Server(tmp_path / "data", env=roomy)
    with ThreadPoolExecutor(60) as pool:
        calls = [
            pool.submit(
                httpx.post,
                srv.url + "/v1/recognize?annotate=true",
                content=big.getvalue(),
                timeout=120,
            )
            for _ in range(60)
        ]
        srv.wait_for_log("POST /v1/recognize 200")
        srv.process.send_signal(signal.SIGTERM)
        answers = [c.result() for c in calls]
    assert srv.process.wait(timeout=60) == 0
    srv.stop()
    kinds = Counter((a.status_code, a.headers["content-type"]) for a in answers)
    assert set(kinds) == {(200, "image/jpeg"), (503, "application/json")}, kinds
    refused = [a for a in answers if a.status_code == 503]
    assert all(a.headers["retry-after"] == "2" for a in refused)
    assert all("server is stopping" in a.json()["error"]["message"] for a in refused)
    assert "Traceback" not in srv.log()


def trickle(srv: Server, source: str) -> socket.socket:
    """A keyless DeepStack form begun, whose body then comes a byte at a time."""
    sock = connect(srv, source)
    sock.sendall(
        b"POST /v1/vision/face/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 1000000\r\n\r\n--x"
    )
    return sock


def test_slow_bodies_from_several_addresses_cannot_take_everybodys_places(tmp_path: Path) -> None:
    """Four addresses, each with 16 form bodies sent a byte every second: before, they held
    every place of FACELENS_MAX_REQUESTS for as long as they trickled (the per-part timeout
    never fired), and a key holder anywhere else got 503."""
    env = {"FACELENS_SERVER_API_KEYS": KEY, "FACELENS_READ_TIMEOUT_S": "3"}
    srv = Server(tmp_path / "data", env=env)
    keyed = {"X-API-Key": KEY}
    try:
        with held([]) as slow:
            for n in range(2, 6):
                slow += [trickle(srv, f"127.0.0.{n}") for _ in range(16)]
            for second in range(8):  # a byte a second, from every one
                for sock in slow:
                    with suppress(OSError):
                        sock.send(b"-")
                if second in (1, 6):
                    answer = httpx.get(srv.url + "/v1/people", headers=keyed)
                    assert answer.status_code == 200, answer.text
                time.sleep(1)
            # The trickles themselves were cut off once they fell behind the pace (DeepStack's
            # dialect says 400 for what /v1 calls 408 request_timeout).
            answers = [sock.recv(4096) for sock in slow]
            assert all(a.startswith(b"HTTP/1.1 400") for a in answers), answers[0][:200]
            assert all(b"slower than 32 KiB a second" in a for a in answers), answers[0]
    finally:
        assert srv.stop() == 0


def test_answers_nobody_reads_do_not_hold_connections_forever(tmp_path: Path) -> None:
    """Clients that ask for answers and never read them: their connections stayed busy, and
    with enough of them every other client got 503 for as long as they liked."""
    env = {
        "FACELENS_MAX_CONNECTIONS": "8",
        "FACELENS_MAX_CONNECTIONS_PER_CLIENT": "4",
        "FACELENS_READ_TIMEOUT_S": "8",  # and to read on, once the client stops reading
    }
    srv = Server(tmp_path / "data", env=env)
    try:
        with held([]) as stuck:
            for n in range(8):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.bind((f"127.0.0.{2 + n // 4}", 0))
                sock.connect(address(srv))
                ask = b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                with suppress(OSError):
                    for _ in range(60):  # pipelined, never read
                        sock.sendall(ask)
                        time.sleep(0.002)
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                stuck.append(sock)
            answer = request(srv, "/v1/people", "127.0.0.9")
            assert status(answer) == 503 and b"connections are busy" in answer, answer[:300]
            deadline = time.monotonic() + 30
            while status(request(srv, "/v1/people", "127.0.0.9")) != 200:
                assert time.monotonic() < deadline, "the unread answers kept every connection"
                time.sleep(0.5)
        assert "stopped reading its answer" in srv.log()
    finally:
        assert srv.stop() == 0


def test_a_pipelined_request_in_progress_is_not_taken_for_idle(tmp_path: Path) -> None:
    """A request pipelined behind another counted as idle once the first was answered, and a
    new connection of the same client closed it mid-request."""
    srv = Server(tmp_path / "data", env={"FACELENS_MAX_CONNECTIONS_PER_CLIENT": "1"})
    try:
        with connect(srv) as first:
            first.sendall(
                b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                b"POST /v1/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: image/jpeg\r\nContent-Length: 10\r\n\r\n0123"
            )
            time.sleep(0.5)  # the first answered; the second waits for the rest of its body
            # Another connection of the same client: past its share, its only one being busy.
            assert status(request(srv, "/v1/people")) == 503
            assert status(request(srv, "/healthz")) == 200  # health checks still get in
            first.sendall(b"456789")
            got = b""
            while got.count(b"HTTP/1.1 ") < 2 and (part := first.recv(65536)):
                got += part
        assert got.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 400" in got, got[:300]
    finally:
        assert srv.stop() == 0
