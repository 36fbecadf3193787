"""The server's streams, with a real server, real stream processes and real requests: changes
of one stream at once leave one process, which its deletion stops; odd sources are refused;
what FFmpeg prints in a stream process reaches the server's log masked; a webhook is shown
without its path."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.support.mjpeg import MjpegCamera
from tests.support.mqtt import free_port, wait_until
from tests.support.server import Server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def clip(faces_dir: Path) -> Path:
    return faces_dir / "video" / "short_hamilton_clip.mp4"


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_changes_of_one_stream_at_once_leave_one_process_that_its_deletion_stops(
    tmp_path: Path, clip: Path
) -> None:
    camera = MjpegCamera(clip).start()
    server = Server(tmp_path / "data", env={"FACELENS_MAX_STREAMS": "1"})
    try:
        workers = set(server.worker_pids())

        def stream_processes() -> list[int]:
            return [p for p in server.worker_pids() if p not in workers and _alive(p)]

        c = server.client
        assert c.post("/v1/streams", json={"id": "door", "source": camera.url}).status_code == 201
        wait_until(
            lambda: c.get("/v1/streams/door").json()["status"].get("frames_processed", 0) > 0,
            180,
            "the stream running",
        )
        at_once = threading.Barrier(4)
        answers: list[int] = []

        def change(n: int) -> None:
            with httpx.Client(base_url=server.url, timeout=120) as own:
                at_once.wait()
                changed = own.patch("/v1/streams/door", json={"source": f"{camera.url}?n={n}"})
                answers.append(changed.status_code)

        changes = [threading.Thread(target=change, args=(n,)) for n in range(4)]
        for thread in changes:
            thread.start()
        for thread in changes:
            thread.join()
        assert answers == [200] * 4
        wait_until(
            lambda: c.get("/v1/streams/door").json()["status"].get("frames_processed", 0) > 0,
            180,
            "the changed stream running",
        )
        assert len(stream_processes()) == 1  # within FACELENS_MAX_STREAMS
        assert c.delete("/v1/streams/door").status_code == 200
        wait_until(lambda: not stream_processes(), 60, "no stream process after the deletion")
    finally:
        server.stop()
        camera.stop()


def test_odd_sources_are_refused_with_422_not_a_crash(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    try:
        # A superscript two (a digit to str.isdigit), a NUL in a path, a line break.
        for source in ("²", "/videos/door.mp4\x00/etc/passwd", "rtsp://cam/live\n"):
            answer = server.client.post("/v1/streams", json={"id": "odd", "source": source})
            assert answer.status_code == 422, answer.text
        assert server.client.get("/v1/streams").json()["streams"] == []
    finally:
        server.stop()
    assert "Traceback" not in server.log()


class _Hostile(BaseHTTPRequestHandler):
    """A playlist whose segment's URL carries a token, and a segment that is refused (FFmpeg
    then prints the segment's URL); a webhook receiver that refuses every event."""

    def do_GET(self) -> None:  # the http.server interface
        if self.path.startswith("/live.m3u8"):
            port = self.server.server_address[1]
            text = (
                "#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:3.0,\n"
                f"http://127.0.0.1:{port}/segment.ts?token=SEGTOKEN99\n#EXT-X-ENDLIST\n"
            )
            self._answer(200, text.encode())
        else:
            self._answer(401, b"")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer(503, b"busy")

    def _answer(self, status: int, content: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, *args: object) -> None:
        pass


def test_no_secret_of_a_segment_or_a_webhook_path_reaches_the_log_or_the_answers(
    tmp_path: Path,
) -> None:
    hostile = ThreadingHTTPServer(("127.0.0.1", free_port()), _Hostile)
    hostile.daemon_threads = True
    threading.Thread(target=hostile.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{hostile.server_address[1]}"
    webhook = f"{origin}/api/webhook/ha-secret-webhook-id-123"  # the id is the secret
    server = Server(tmp_path / "data", env={"FACELENS_EVENTS_WEBHOOK": webhook})
    try:
        c = server.client
        created = c.post("/v1/streams", json={"id": "hls", "source": f"{origin}/live.m3u8"})
        assert created.status_code == 201, created.text
        # FFmpeg's own line, from the stream process's standard error.
        wait_until(lambda: "loading first segment" in server.log(), 180, "FFmpeg's error line")
        assert "segment.ts?token=***'" in server.log()
        (target,) = c.get("/v1/events/deliveries").json()["targets"]
        assert target["url"] == f"{origin}/…"
        assert c.delete("/v1/streams/hls").status_code == 200
    finally:
        server.stop()
        hostile.shutdown()
        hostile.server_close()
    log = server.log()
    assert f"stream events go to webhook {origin}/…" in log
    assert "SEGTOKEN99" not in log and "ha-secret-webhook-id-123" not in log
