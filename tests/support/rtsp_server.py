"""An RTSP server (GStreamer's gst-rtsp-server, Debian's packages) serving a video at
``rtsp://127.0.0.1:PORT/clip``: VP8 over RTP, encoded live from an MJPEG .avi, each client
from the start. Run by Debian's own Python (``/usr/bin/python3``, which has PyGObject), not the
project's: ``python3 tests/support/rtsp_server.py PORT VIDEO.avi``. Started and stopped by
``tests/support/rtsp.py``."""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402  (after require_version)

Gst.init(None)
port, video = sys.argv[1], sys.argv[2]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( filesrc location={video} ! avidemux ! jpegdec ! videoconvert "
    "! vp8enc deadline=1 cpu-used=8 keyframe-max-dist=30 ! rtpvp8pay name=pay0 pt=96 )"
)
factory.set_shared(False)
server.get_mount_points().add_factory("/clip", factory)
server.attach(None)
print("listening", flush=True)
GLib.MainLoop().run()
