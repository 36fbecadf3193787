"""A webhook receiver on a free loopback port that misbehaves on cue: each event's ``name``
says how it answers (see ``Receiver.answer``). Plain sockets, so it can do what no well-made
HTTP server would: a 1.5 GB answer, an endless one, a redirect forever, silence, a drip."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

HUGE = 1_610_612_736  # 1.5 GiB: the answer's declared length
CHUNK = b"x" * 65536


class Receiver:
    """Takes events (204) unless their name says otherwise: ``redirect`` (302 to elsewhere),
    ``hang`` (never answers), ``drip`` (its answer's head, a byte every 50 ms, forever),
    ``huge`` (500 with a 1.5 GB body), ``endless`` (200 with a chunked body that never ends),
    ``fail`` (503); once ``healed``, it takes every event."""

    def __init__(self, port: int = 0) -> None:
        self.healed = False
        self.received: list[dict[str, Any]] = []  # events taken, in order
        self.headers: list[dict[str, str]] = []  # of every request
        self.attempts: dict[str, int] = {}  # by event id
        self.written: dict[str, int] = {}  # bytes of answer written, by behaviour
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", port))
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            reader = conn.makefile("rb")
            while not self._stop.is_set():
                head = []
                while (line := reader.readline()) not in (b"\r\n", b""):
                    head.append(line.decode("latin-1").rstrip("\r\n"))
                if not head:
                    return  # the client closed the connection
                headers = {
                    k.strip().lower(): v.strip()
                    for k, v in (h.split(":", 1) for h in head[1:] if ":" in h)
                }
                headers[":path"] = head[0].split(" ")[1]
                event = json.loads(reader.read(int(headers["content-length"])))
                with self._lock:
                    self.headers.append(headers)
                    self.attempts[event["id"]] = self.attempts.get(event["id"], 0) + 1
                if not self.answer(conn, event):
                    return

    def _count(self, behaviour: str, sent: int) -> None:
        with self._lock:
            self.written[behaviour] = self.written.get(behaviour, 0) + sent

    def answer(self, conn: socket.socket, event: dict[str, Any]) -> bool:
        """Answer one request as the event's name says; whether the connection stays open."""
        behaviour = "take" if self.healed else event["name"]
        try:
            if behaviour == "redirect":
                conn.sendall(
                    b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/elsewhere\r\n"
                    b"Content-Length: 0\r\n\r\n"
                )
                return True
            if behaviour == "fail":
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
                return True
            if behaviour == "hang":
                conn.recv(1)  # until the client gives up and closes
                return False
            if behaviour == "drip":
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
                while not self._stop.is_set():
                    conn.sendall(b"a")
                    self._count(behaviour, 1)
                    time.sleep(0.05)
                return False
            if behaviour in ("huge", "endless"):
                head = (
                    f"HTTP/1.1 500 Internal Server Error\r\nContent-Length: {HUGE}\r\n\r\n"
                    if behaviour == "huge"
                    else "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                if behaviour == "endless":  # a 2xx: the event was taken
                    with self._lock:
                        self.received.append(event)
                conn.sendall(head.encode())
                chunk = CHUNK if behaviour == "huge" else b"10000\r\n" + CHUNK + b"\r\n"
                while not self._stop.is_set():  # until the client closes the connection
                    conn.sendall(chunk)
                    self._count(behaviour, len(chunk))
                return False
        except OSError:  # the client closed the connection: what a bounded client does
            return False
        with self._lock:
            self.received.append(event)
        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        return True

    def close(self) -> None:
        self._stop.set()
        self._server.close()
