"""Stream sources read by OpenCV's FFmpeg, with the server's settings, from real local servers
(HTTP redirects, playlists, SDP, MJPEG; GStreamer's RTSP camera; a rebinding DNS server): FFmpeg
follows no redirect, a playlist pulls no other protocol, nor segments from outside the allowed
folders or networks, a DNS answer that changes after the check moves no connection, frames over
the pixel limit are not decoded, a flapping source backs off, and the real cameras and video
files still work."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
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
from tests.support.dns import RebindingDns
from tests.support.mjpeg import MjpegCamera
from tests.support.mqtt import free_port, wait_until
from tests.support.rtsp import RtspCamera

pytestmark = pytest.mark.integration

Route = Callable[[BaseHTTPRequestHandler], None]


class Web:
    """An HTTP server on a free port of a loopback address answering its ``routes`` (path →
    handler); ``requests``: the path and Host header of each request."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the http.server interface
                outer.requests.append((self.path, self.headers.get("Host")))
                route = outer.routes.get(self.path)
                if route is None:
                    self.send_response(404)
                    self.end_headers()
                else:
                    route(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://{host}:{self.port}"
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

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.socket = socket.socket()
        self.socket.bind((host, port))
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

    def short(attempt: int, first: float, cap: float) -> float:
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


@pytest.mark.parametrize("networks", ["", "127.0.0.0/8"])
@pytest.mark.parametrize("kind", ["mjpeg", "rtsp"])
def test_the_real_cameras_are_read_with_the_servers_settings(
    clip: Path, tmp_path: Path, kind: str, networks: str
) -> None:
    # With networks set, by a host name: FFmpeg gets the address checked, and only the
    # demuxers of cameras and video files.
    policy = SourcePolicy.of(Settings(data_dir=tmp_path / "data", stream_networks=networks))
    camera = MjpegCamera(clip) if kind == "mjpeg" else RtspCamera(clip, tmp_path)
    camera.start()
    url = camera.url.replace("127.0.0.1", "localhost") if networks else camera.url
    source = FrameSource(url, policy).start()
    try:
        wait_until(lambda: source.status().frames_read >= 5, 120, "frames")
        frame = source.latest(5)
        assert frame is not None and frame.pixels.shape == (360, 640, 3)
    finally:
        source.stop()
        camera.stop()
    assert FFMPEG_OPTIONS not in os.environ  # set only around each open


READ_ONCE = """
import dataclasses, json, sys, time
from facelens.settings import Settings
from facelens.video.policy import SourcePolicy
from facelens.video.source import FrameSource
settings = Settings(data_dir=sys.argv[2], stream_networks=sys.argv[3])
source = FrameSource(sys.argv[1], SourcePolicy.of(settings)).start()
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    status = source.status()
    if status.frames_read > 0 or status.state == "retrying":
        break
    time.sleep(0.05)
source.stop()
print(json.dumps(dataclasses.asdict(source.status())))
"""


def test_a_dns_answer_that_changes_after_the_check_does_not_move_the_connection(
    tmp_path: Path,
) -> None:
    # The name resolves into the allowed network once (the check), then elsewhere (what
    # FFmpeg would look up itself): FFmpeg must connect to the address checked.
    ok, jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 128, np.uint8))
    assert ok
    part = b"--f\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg.tobytes() + b"\r\n"
    allowed = Web("127.0.0.1")
    allowed.routes["/cam.mjpg"] = body(part * 20, "multipart/x-mixed-replace; boundary=f")
    elsewhere = Listener("127.0.0.2", allowed.port)  # the same port on a host not allowed
    dns = RebindingDns(tmp_path, first="127.0.0.1", then="127.0.0.2")
    url = f"http://cam.rebind.test:{allowed.port}/cam.mjpg"
    try:
        read = subprocess.run(
            dns.command(sys.executable, "-c", READ_ONCE, url, str(tmp_path), "127.0.0.1/32"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert read.returncode == 0, read.stderr
        status = json.loads(read.stdout.splitlines()[-1])
        assert elsewhere.connections == 0
        assert status["frames_read"] > 0, status
        assert allowed.requests == [("/cam.mjpg", f"cam.rebind.test:{allowed.port}")]
        assert dns.queries == ["cam.rebind.test"]  # looked up once: by the check
    finally:
        dns.close()
        allowed.close()
        elsewhere.close()


def test_with_networks_set_a_playlist_gets_no_segment_from_another_host(
    tmp_path: Path, segment: bytes
) -> None:
    other_host = Web("127.0.0.2")
    other_host.routes["/segment.ts"] = body(segment, "video/mp2t")
    web = Web()
    web.routes["/door.ts"] = body(segment, "video/mp2t")
    web.routes["/door.m3u8"] = playlist(f"{other_host.url}/segment.ts")
    policy = SourcePolicy.of(Settings(data_dir=tmp_path / "data", stream_networks="127.0.0.1/32"))
    try:
        # MPEG-TS over HTTP from the allowed host is read: the harness works.
        assert first_attempt(FrameSource(f"{web.url}/door.ts", policy)).frames_read
        status = first_attempt(FrameSource(f"{web.url}/door.m3u8", policy))
        assert status.frames_read == 0 and status.state == "retrying"
        time.sleep(0.5)
        assert other_host.requests == []
    finally:
        web.close()
        other_host.close()


def frames_of(path: Path, policy: SourcePolicy) -> tuple[int, SourceStatus]:
    """How many frames a video file gives, read to its end, and the source's last status."""
    source = FrameSource(str(path), policy).start()
    count = 0
    deadline = time.monotonic() + 60
    try:
        while not source.ended and time.monotonic() < deadline:
            if source.latest(1) is not None:
                count += 1
    finally:
        source.stop()
    return count, source.status()


@pytest.mark.parametrize("kind", ["hls", "concat"])
def test_a_file_in_an_allowed_folder_leads_ffmpeg_to_no_file_outside_it(
    tmp_path: Path, segment: bytes, kind: str
) -> None:
    videos, private = tmp_path / "videos", tmp_path / "private"
    videos.mkdir()
    private.mkdir()
    (private / "private.ts").write_bytes(segment)
    (videos / "door.ts").write_bytes(segment)
    # The policy would refuse this link itself; a concat list inside names it all the same.
    (videos / "link.ts").symlink_to(private / "private.ts")
    hls = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{}\n#EXT-X-ENDLIST\n"
    lists = {
        "hls": ("door.m3u8", hls.format(private / "private.ts")),
        "concat": ("door.ffconcat", "ffconcat version 1.0\nfile link.ts\n"),
    }
    name, text = lists[kind]
    (videos / name).write_text(text)
    policy = SourcePolicy.of(Settings(data_dir=tmp_path / "data", stream_folders=str(videos)))
    assert frames_of(videos / "door.ts", policy)[0] == 10  # the same video inside: read
    count, status = frames_of(videos / name, policy)
    assert count == 0 and status.state == "stopped" and status.detail == "cannot open"


def _video(path: Path, container: str, codec: str, pixels: str, rate: int) -> Path:
    """Ten 160x120 frames in ``container``, written by PyAV's FFmpeg."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, options={"x265-params": "log-level=error"})
        stream.width, stream.height, stream.pix_fmt = 160, 120, pixels
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 20 * i, np.uint8), "rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.mark.parametrize(
    ("name", "container", "codec", "pixels", "rate"),
    [
        ("h264.mp4", "mp4", "libx264", "yuv420p", 10),
        ("mpeg4.mov", "mov", "mpeg4", "yuv420p", 10),
        ("mpeg4.3gp", "3gp", "mpeg4", "yuv420p", 10),
        ("mpeg4.mkv", "matroska", "mpeg4", "yuv420p", 10),
        ("vp8.webm", "webm", "libvpx", "yuv420p", 10),
        ("mpeg2.ts", "mpegts", "mpeg2video", "yuv420p", 10),
        ("flv1.flv", "flv", "flv", "yuv420p", 10),
        ("mjpeg.avi", "avi", "mjpeg", "yuvj420p", 10),
        ("wmv2.wmv", "asf", "wmv2", "yuv420p", 10),
        ("mpeg1.mpg", "mpeg", "mpeg1video", "yuv420p", 25),
        ("mpeg2.m2v", "mpeg2video", "mpeg2video", "yuv420p", 10),
        ("mpeg4.m4v", "m4v", "mpeg4", "yuv420p", 10),
        ("raw.h264", "h264", "libx264", "yuv420p", 10),
        ("raw.hevc", "hevc", "libx265", "yuv420p", 10),
        ("raw.mjpeg", "mjpeg", "mjpeg", "yuvj420p", 10),
        ("vp8.ivf", "ivf", "libvpx", "yuv420p", 10),
        ("mpeg4.nut", "nut", "mpeg4", "yuv420p", 10),
        ("raw.y4m", "yuv4mpegpipe", "rawvideo", "yuv420p", 10),
    ],
)
def test_video_files_of_the_usual_containers_still_open_from_the_allowed_folders(
    tmp_path: Path, name: str, container: str, codec: str, pixels: str, rate: int
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    video = _video(videos / name, container, codec, pixels, rate)
    policy = SourcePolicy.of(Settings(data_dir=tmp_path / "data", stream_folders=str(videos)))
    count, status = frames_of(video, policy)
    assert (count, status.state) == (10, "ended"), status
