"""Stream sources read by OpenCV's FFmpeg, with the server's settings, from real local servers
(HTTP redirects, playlists, SDP, MJPEG; GStreamer's RTSP camera): FFmpeg follows no redirect,
a playlist pulls no other protocol, frames over the pixel limit are not decoded, a flapping
source backs off, and the real cameras still work."""

from __future__ import annotations

import base64
import io
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from facelens.settings import Settings
from facelens.video import source as source_module
from facelens.video.policy import SourcePolicy
from facelens.video.source import FFMPEG_OPTIONS, FrameSource, SourceStatus
from tests.mjpeg import MjpegCamera
from tests.mqtt import free_port, wait_until
from tests.rtsp import RtspCamera

pytestmark = pytest.mark.integration

Route = Callable[[BaseHTTPRequestHandler], None]


class Web:
    """An HTTP server on a free loopback port answering its ``routes`` (path → handler)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the http.server interface
                route = outer.routes.get(self.path)
                if route is None:
                    self.send_response(404)
                    self.end_headers()
                else:
                    route(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def body(content: bytes, content_type: str, status: int = 200) -> Route:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        handler.wfile.write(content)

    return answer


class Listener:
    """A TCP port that counts the connections made to it."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.port = int(self.socket.getsockname()[1])
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def server_policy(tmp_path: Path) -> SourcePolicy:
    """The server's defaults: rtsp, rtsps, http and https URLs, no file, no camera."""
    return SourcePolicy.of(Settings(data_dir=tmp_path / "data"))


@pytest.fixture(scope="module")
def clip(faces_dir: Path) -> Path:
    return faces_dir / "video" / "short_hamilton_clip.mp4"


@pytest.fixture(scope="module")
def segment() -> bytes:
    """A 1 s MPEG-TS video (10 grey frames), as a playlist's segment."""
    out = io.BytesIO()
    with av.open(out, "w", format="mpegts") as container:
        stream = container.add_stream("mpeg2video", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 20 * i, np.uint8), "rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def first_attempt(source: FrameSource, timeout: float = 60) -> SourceStatus:
    """The source's status once it has read frames or failed its first attempt."""
    source.start()
    try:
        wait_until(
            lambda: source.status().frames_read > 0 or source.status().state == "retrying",
            timeout,
            "a first attempt",
        )
        return source.status()
    finally:
        source.stop()


def test_a_redirect_is_not_followed(server_policy: SourcePolicy) -> None:
    elsewhere = Listener()

    def redirect(handler: BaseHTTPRequestHandler) -> None:
        # To another port here; it could be any host and port: FFmpeg must not go there.
        handler.send_response(302)
        handler.send_header("Location", f"http://127.0.0.1:{elsewhere.port}/cam")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    web = Web()
    web.routes["/cam"] = redirect
    try:
        status = first_attempt(FrameSource(f"{web.url}/cam", server_policy))
        assert status.frames_read == 0 and "cannot open" in status.detail
        time.sleep(0.5)
        assert elsewhere.connections == 0
    finally:
        web.close()
        elsewhere.close()


def playlist(segment_url: str) -> Route:
    text = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:1.0,\n{segment_url}\n#EXT-X-ENDLIST\n"
    )
    return body(text.encode(), "application/vnd.apple.mpegurl")


@pytest.mark.parametrize("kind", ["data", "file", "ftp"])
def test_a_playlist_pulls_no_other_protocol(
    server_policy: SourcePolicy, segment: bytes, tmp_path: Path, kind: str
) -> None:
    # The HLS demuxer of OpenCV's FFmpeg (libavformat 62) refuses these by itself too (its own
    # whitelist and scheme check); this guards them with our options, should that change.
    on_disk = tmp_path / "secret.ts"
    on_disk.write_bytes(segment)
    ftp = Listener()
    elsewhere = {
        "data": "data:video/mp2t;base64," + base64.b64encode(segment).decode(),
        "file": on_disk.as_uri(),
        "ftp": f"ftp://127.0.0.1:{ftp.port}/secret.ts",
    }[kind]
    web = Web()
    web.routes["/segment.ts"] = body(segment, "video/mp2t")
    web.routes["/over-http.m3u8"] = playlist(f"{web.url}/segment.ts")
    web.routes["/elsewhere.m3u8"] = playlist(elsewhere)
    try:
        # The same playlist with its segment over HTTP is read: the harness works.
        assert first_attempt(FrameSource(f"{web.url}/over-http.m3u8", server_policy)).frames_read
        status = first_attempt(FrameSource(f"{web.url}/elsewhere.m3u8", server_policy))
        assert status.frames_read == 0 and status.state == "retrying"
        assert ftp.connections == 0
    finally:
        web.close()
        ftp.close()


def _udp_ports_bound() -> set[int]:
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            ports.add(int(line.split()[1].rsplit(":", 1)[1], 16))
    return ports


def test_an_sdp_file_cannot_make_the_server_open_udp_ports(server_policy: SourcePolicy) -> None:
    # An SDP description names RTP over UDP to any address and port: FFmpeg would bind the
    # port and talk to the address, were rtp and udp not left out of its protocols.
    port = free_port()
    sdp = (
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=video {port} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    )
    web = Web()
    web.routes["/cam.sdp"] = body(sdp.encode(), "application/sdp")
    source = FrameSource(f"{web.url}/cam.sdp", server_policy).start()
    seen = False
    deadline = time.monotonic() + 60
    try:
        while source.status().state != "retrying" and time.monotonic() < deadline:
            seen = seen or port in _udp_ports_bound()
            time.sleep(0.02)
        assert not seen, f"FFmpeg bound UDP port {port} for an SDP file"
        assert source.status().frames_read == 0
    finally:
        source.stop()
        web.close()


def test_frames_over_the_pixel_limit_are_refused_before_decoding(
    clip: Path, tmp_path: Path
) -> None:
    camera = MjpegCamera(clip).start()  # 640x360
    small = SourcePolicy.of(Settings(data_dir=tmp_path / "data", max_pixels=100_000))
    try:
        source = FrameSource(camera.url, small)
        status = first_attempt(source)
        assert status.frames_read == 0
        assert status.detail.endswith("frames of 640x360 exceed FACELENS_MAX_PIXELS (100000)")
        assert source.latest(0.1) is None
    finally:
        camera.stop()


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The reconnect attempts the back-off is asked about (each wait made short)."""
    asked: list[int] = []

    def short(attempt: int) -> float:
        asked.append(attempt)
        return 0.05

    monkeypatch.setattr(source_module, "backoff_s", short)
    yield asked


def test_a_source_that_opens_and_ends_at_once_backs_off(
    server_policy: SourcePolicy, attempts: list[int]
) -> None:
    ok, jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 128, np.uint8))
    assert ok
    part = (
        b"--frame\r\nContent-Type: image/jpeg\r\n"
        + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
        + jpeg.tobytes()
        + b"\r\n"
    )
    # One frame, then the connection ends: the source opens, delivers, ends, again and again.
    web = Web()
    web.routes["/flap.mjpg"] = body(part, "multipart/x-mixed-replace; boundary=frame")
    source = FrameSource(f"{web.url}/flap.mjpg", server_policy).start()
    try:
        wait_until(lambda: len(attempts) >= 6, 120, "six reconnects")
        assert source.status().frames_read >= 6  # it did open and deliver each time
    finally:
        source.stop()
        web.close()
    assert attempts[:6] == [1, 2, 3, 4, 5, 6]  # growing waits, not the first one every time


@pytest.mark.parametrize("kind", ["mjpeg", "rtsp"])
def test_the_real_cameras_are_read_with_the_servers_settings(
    server_policy: SourcePolicy, clip: Path, tmp_path: Path, kind: str
) -> None:
    camera = MjpegCamera(clip) if kind == "mjpeg" else RtspCamera(clip, tmp_path)
    camera.start()
    source = FrameSource(camera.url, server_policy).start()
    try:
        wait_until(lambda: source.status().frames_read >= 5, 120, "frames")
        frame = source.latest(5)
        assert frame is not None and frame.pixels.shape == (360, 640, 3)
    finally:
        source.stop()
        camera.stop()
    assert FFMPEG_OPTIONS not in os.environ  # set only around each open
