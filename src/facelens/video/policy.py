"""Which sources a stream may read, and the FFmpeg options that keep it to them.

A stream makes the server connect to a URL or open a file and show what it got, so its source
is checked against the settings: URL schemes (``FACELENS_STREAM_SCHEMES``), folders of video
files (``FACELENS_STREAM_FOLDERS``), cameras (``FACELENS_STREAM_DEVICES``) and, when set, the
networks a URL's host must resolve into (``FACELENS_STREAM_NETWORKS``). A refusal says the same
whatever the source is, so it tells nothing about which paths exist: a path outside the allowed
folders is never looked at (only normalised), one inside is resolved (symlinks, ``..``) and
checked again. 'facelens watch' may read any file and camera its user can; URLs are checked
for it too.

What FFmpeg opens is bound by ``OPENCV_FFMPEG_CAPTURE_OPTIONS``: for a URL, only the
protocols of the allowed schemes (a playlist cannot pull ``file:``, ``data:``, ``udp:``, ...), no
HTTP redirect, RTSP over TCP. For a file of the allowed folders, and for a URL when networks are
set, only the demuxers of cameras and video files (:data:`CONTAINERS`): none that opens other
resources by itself (an HLS playlist, a concat list, an image sequence), which could lead FFmpeg
out of the folders or to hosts outside the networks. And when networks are set, a URL's host is
resolved once per connection, every address checked, and FFmpeg given the address checked (so a
DNS answer that changes in between cannot send it elsewhere).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import Literal
from urllib.parse import SplitResult, urlsplit, urlunsplit

from facelens.errors import InvalidValue, SourceNotAllowed
from facelens.settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The FFmpeg protocols each scheme needs (RTSP is FFmpeg's demuxer over tcp, or tls).
SCHEME_PROTOCOLS: dict[str, tuple[str, ...]] = {
    "http": ("http", "tcp"),
    "https": ("https", "tls", "tcp"),
    "rtsp": ("tcp",),
    "rtsps": ("tls", "tcp"),
    "rtmp": ("rtmp", "tcp"),
    "rtmps": ("rtmps", "tls", "tcp"),
}

# The demuxers FFmpeg may use where what it reads must stay in bounds (see the module's doc):
# the containers of cameras (RTSP, MJPEG over HTTP, MPEG-TS, FLV for RTMP, raw H.264/H.265) and
# of video files. Left out, among others: hls, dash, concat, image2 (file sequences), sdp and
# rtp (UDP), each of which opens more than the one input. FFmpeg (libavformat 62) probes first
# and checks the list after: a playlist is refused, not read as something else. "mov" and
# "matroska" are the first names of "mov,mp4,m4a,3gp,3g2,mj2" and "matroska,webm".
CONTAINERS = (
    "rtsp",
    "mpjpeg",
    "mjpeg",
    "mpegts",
    "flv",
    "live_flv",
    "mov",
    "matroska",
    "avi",
    "asf",
    "mpeg",
    "mpegvideo",
    "m4v",
    "h264",
    "hevc",
    "ivf",
    "nut",
    "yuv4mpegpipe",
)
_CONTAINER_OPTION = f"format_whitelist;{','.join(CONTAINERS)}"
# The characters av_dict_parse_string would take as separators, quotes or trimmed space.
_OPTION_SPECIAL = frozenset("\\'|; \t\r\n")


def ffmpeg_value(value: str) -> str:
    """``value`` escaped for ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` (read by av_dict_parse_string:
    ``;`` between key and value, ``|`` between options, outer white space trimmed)."""
    return "".join("\\" + c if c in _OPTION_SPECIAL else c for c in value)


def is_camera_index(source: str) -> bool:
    """A camera given by its index: ASCII digits only (a superscript two or a full-width
    digit is a digit to :meth:`str.isdigit`, and no camera)."""
    return source.isascii() and source.isdigit()


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _inside(path: str, folders: tuple[str, ...]) -> bool:
    return any(path == folder or path.startswith(folder.rstrip("/") + "/") for folder in folders)


@dataclass(frozen=True, slots=True)
class Target:
    """What to open for a source that is allowed."""

    kind: Literal["url", "file", "device"]
    open_as: str | int  # the URL, the file's resolved path, a device path or camera index
    ffmpeg_options: str  # for OPENCV_FFMPEG_CAPTURE_OPTIONS ('' for cameras)
    # A URL's open_as may hold the address its host was resolved to and checked at (networks
    # set): the host name then goes in the options (HTTP's Host header).


@dataclass(frozen=True, slots=True)
class SourcePolicy:
    schemes: tuple[str, ...]
    folders: tuple[str, ...]  # as configured, normalised
    real_folders: tuple[str, ...]  # the same with symlinks resolved
    devices: frozenset[str]
    networks: tuple[Network, ...]  # empty: any host
    max_pixels: int
    any_local: bool = False  # 'facelens watch': any file or camera its user can open

    @classmethod
    def of(cls, settings: Settings, *, any_local: bool = False) -> SourcePolicy:
        folders = tuple(os.path.normpath(f) for f in _items(settings.stream_folders))
        return cls(
            schemes=tuple(s.lower() for s in _items(settings.stream_schemes)),
            folders=folders,
            real_folders=tuple(os.path.realpath(f) for f in folders),
            devices=frozenset(os.path.normpath(d) for d in _items(settings.stream_devices)),
            networks=tuple(
                ipaddress.ip_network(n, strict=False) for n in _items(settings.stream_networks)
            ),
            max_pixels=settings.max_pixels,
            any_local=any_local,
        )

    def refused(self, shown: str) -> SourceNotAllowed:
        """The one refusal, whatever was refused and whether or not it exists."""
        urls = f"{', '.join(self.schemes) or 'no'} URLs"
        if self.networks:
            urls += " to hosts in FACELENS_STREAM_NETWORKS"
        local = (
            "any file or camera"
            if self.any_local
            else "files under FACELENS_STREAM_FOLDERS and cameras in FACELENS_STREAM_DEVICES"
        )
        reader = "'facelens watch'" if self.any_local else "this server"
        return SourceNotAllowed(
            f"{shown}: not a source {reader} may read. Allowed: {urls} "
            f"(FACELENS_STREAM_SCHEMES), {local}."
        )

    def check(self, source: str, shown: str, *, resolve: bool = True) -> Target:
        """What to open for ``source`` (``shown``: it, credentials masked); raises
        :class:`SourceNotAllowed` if the settings do not allow it. ``resolve=False`` leaves
        out the look-up of a URL's host (done again at each open anyway). A source with a
        control character (a NUL, a newline) is refused as such (:class:`InvalidValue`)."""
        if any(ord(c) < 32 or ord(c) == 127 for c in source):
            raise InvalidValue(
                f"{shown!r}: not a stream source: it holds a control character (a NUL, a "
                "line break, ...)."
            )
        if "://" in source:
            return self._url(source, shown, resolve)
        if is_camera_index(source) or source.startswith("/dev/"):
            index = int(source) if is_camera_index(source) else None
            device = os.path.normpath(source) if index is None else f"/dev/video{index}"
            if not self.any_local and device not in self.devices:
                raise self.refused(shown)
            return Target("device", device if index is None else index, "")
        options = "protocol_whitelist;file"
        if not self.any_local:  # kept to the folders: no playlist reaching out of them
            options += f"|{_CONTAINER_OPTION}"
        return Target("file", self._file(source, shown), options)

    def _file(self, source: str, shown: str) -> str:
        # Normalised without touching the file system: nothing outside the folders is stat'ed.
        lexical = os.path.normpath(os.path.abspath(source))
        if self.any_local:
            return os.path.realpath(lexical)
        if not _inside(lexical, self.folders + self.real_folders):
            raise self.refused(shown)
        resolved = os.path.realpath(lexical)  # a symlink inside may point outside
        if not _inside(resolved, self.real_folders):
            raise self.refused(shown)
        return resolved

    def _url(self, source: str, shown: str, resolve: bool) -> Target:
        try:
            parts = urlsplit(source)
            host = parts.hostname
            port = parts.port
        except ValueError:  # a port out of range, a bad IPv6 literal
            raise self.refused(shown) from None
        if parts.scheme.lower() not in self.schemes or not host:
            raise self.refused(shown)
        protocols = sorted({p for s in self.schemes for p in SCHEME_PROTOCOLS[s]})
        options = f"protocol_whitelist;{','.join(protocols)}|max_redirects;0|rtsp_transport;tcp"
        if not self.networks:
            return Target("url", source, options)
        options += f"|{_CONTAINER_OPTION}"  # no playlist's segments on other hosts
        if not resolve:
            return Target("url", source, options)
        addresses = self._addresses_inside(host, port)
        if not addresses:
            raise self.refused(shown)
        if _is_address(host):
            return Target("url", source, options)
        # FFmpeg connects to the address checked, not to what the name resolves to by then.
        if parts.scheme.lower() in ("http", "https"):
            header = f"Host: {parts.netloc.rpartition('@')[2]}\r\n"  # as FFmpeg would send it
            options += f"|headers;{ffmpeg_value(header)}"
        return Target("url", _with_address(parts, addresses[0]), options)

    def _addresses_inside(self, host: str, port: int | None) -> list[str]:
        """The addresses ``host`` resolves to, in the resolver's order, if every one is inside
        the allowed networks; else none."""
        try:
            infos = socket.getaddrinfo(host, port or 0)
        except (OSError, UnicodeError):
            return []
        found = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for text in found:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            if not any(address in network for network in self.networks):
                return []
        return found


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _with_address(parts: SplitResult, address: str) -> str:
    """The URL of ``parts`` with its host replaced by ``address`` (credentials, port, path and
    query kept)."""
    credentials, _, _ = parts.netloc.rpartition("@")
    netloc = f"[{address}]" if ":" in address else address
    if parts.port is not None:
        netloc += f":{parts.port}"
    if credentials:
        netloc = f"{credentials}@{netloc}"
    return urlunsplit(parts._replace(netloc=netloc))
