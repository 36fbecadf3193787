"""A small MJPEG-over-HTTP camera of our own for the stream tests: serves a video file's frames
as ``multipart/x-mixed-replace`` JPEGs at a steady rate, looping, on a free loopback port; it
can be stopped (connections cut) and started again on the same port."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2

BOUNDARY = "facelensframe"


def _frames(video: Path, width: int = 640) -> list[bytes]:
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
        frames.append(jpeg.tobytes())
    capture.release()
    return frames


class MjpegCamera:
    def __init__(self, video: Path, fps: float = 15.0) -> None:
        self.frames = _frames(video)
        self.fps = fps
        self.port = self._free_port()
        self.server: ThreadingHTTPServer | None = None
        self.connections = 0

    @staticmethod
    def _free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> MjpegCamera:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the http.server interface
                camera.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                n = 0
                due = time.monotonic()  # paced by the clock: the rate holds however long a write
                try:
                    while camera.server is not None:
                        jpeg = camera.frames[n % len(camera.frames)]
                        self.wfile.write(
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                            f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                            + jpeg
                            + b"\r\n"
                        )
                        n += 1
                        due += 1 / camera.fps
                        time.sleep(max(0.0, due - time.monotonic()))
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """As if the camera lost power: the listener closes and streams are cut."""
        server, self.server = self.server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            time.sleep(2 / self.fps)  # the streaming threads see it and end their responses
