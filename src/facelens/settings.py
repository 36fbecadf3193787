"""Every setting of facelens in one place, read once from ``FACELENS_*`` environment variables.

Callers build one :class:`Settings` (the CLI does it from its options) and pass it down;
nothing else reads the environment.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from facelens.models.names import DetectorName as DetectorName
from facelens.models.names import ModelName as ModelName

LogFormat = Literal["text", "json"]

# The data directory's databases.
GALLERY_FILE = "gallery.sqlite3"  # people, faces, API keys, idempotency records
EVENTS_FILE = "events.sqlite3"  # events, their outbox, the server's streams


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("facelens", appauthor=False))


# The URL settings: the schemes each takes, and an example.
_URLS = {
    "events_webhook": (("http", "https"), "http[s]://host[:port]/path"),
    "events_mqtt": (("mqtt", "mqtts"), "mqtt[s]://host[:port]"),
    "database_url": (("postgresql", "postgres"), "postgresql://user:password@host:5432/database"),
}


class Settings(BaseSettings):
    """Settings for the engine, the gallery and the CLI."""

    model_config = SettingsConfigDict(env_prefix="FACELENS_", frozen=True, extra="forbid")

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the gallery (gallery.sqlite3) lives; created on first use.",
        json_schema_extra={
            "shown_default": "the user data folder: `~/.local/share/facelens` "
            "(`$XDG_DATA_HOME/facelens` when set)"
        },
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="A PostgreSQL database shared by several servers: "
        "postgresql://user:password@host:5432/db[?sslmode=...]. The gallery (people, faces, "
        "vectors, thumbnails, enrolment records, the model), API keys, idempotency records, "
        "events and streams live there; each server follows the others' changes. Unset: files "
        "of the data directory. The password is never shown.",
    )
    model: ModelName | None = Field(
        default=None,
        description="Model profile: sface (YuNet + SFace, the default for a new gallery) or "
        "dlib. Unset: the model the gallery was built with. A gallery refuses another model "
        "('facelens gallery migrate' moves it).",
    )
    detector: DetectorName | None = Field(
        default=None,
        description="Face detector; unset: the model's own. sface: yunet. dlib: hog, cnn "
        "(dlib MMOD, ~2 s/image on CPU) or haar (OpenCV Haar cascade, as in the original demo).",
    )
    upsample: int = Field(
        default=1,
        ge=0,
        le=3,
        description="Times dlib's hog/cnn detectors upsample the image (finds faces "
        "half as small per step, ~4x the detection time).",
    )
    detect_max_side: int | None = Field(
        default=None,
        ge=64,
        description="Detection runs on a copy whose longest side is at most this many pixels "
        "(unset: the model's own); boxes are mapped back and faces are embedded from the full "
        "image.",
    )
    max_pixels: int = Field(
        default=50_000_000,
        ge=1,
        description="Images declaring more pixels are refused before "
        "decoding (decompression-bomb guard).",
    )
    threshold: float | None = Field(
        default=None,
        gt=0,
        le=2,
        description="Largest distance at which two faces are the same person (unset: the "
        "model's own, see the README's model table).",
    )
    ambiguity_margin: float = Field(
        default=0.05,
        ge=0,
        description="A named face whose runner-up candidate is less than this "
        "much farther away is marked ambiguous.",
    )
    face_thumbnails: bool = Field(
        default=True,
        description="Keep a small JPEG (at most 160 px) of each enrolled face, in the gallery, "
        "deleted with the face: the web console shows it, and 'gallery migrate' can re-embed "
        "uploaded faces from it. Off: only embeddings and boxes are kept (biometric data).",
    )
    events_retention_days: float = Field(
        default=30.0,
        gt=0,
        description="Events (events.sqlite3) older than this many days are deleted, delivered "
        "or not: when 'facelens watch' or the server starts, and every hour while they run.",
    )
    events_delivery_attempts: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Attempts to deliver one event to a webhook or broker that is reached but "
        "does not take it (any answer but 2xx, a redirect included; no answer in time); then it "
        "is given up on (kept in the outbox as dead, retried on request) and the next events "
        "go. While a target cannot be reached at all, events wait, uncounted.",
    )
    events_delivery_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Longest one attempt to deliver an event to a webhook may take in all "
        "(connecting, sending, and the answer, of which at most 4 KB are read).",
    )
    events_webhook: SecretStr | None = Field(
        default=None,
        description="The server's streams POST each event as JSON to this http(s) URL "
        "(retried with back-off; Idempotency-Key: the event id). Unset: none. 'facelens watch' "
        "takes --webhook instead.",
    )
    events_mqtt: SecretStr | None = Field(
        default=None,
        description="The server's streams publish events and presence to this MQTT broker: "
        "mqtt[s]://[user:password@]host[:port]. Unset: none. 'facelens watch' takes --mqtt "
        "instead.",
    )
    event_crops: bool = Field(
        default=False,
        description="Events carry a small JPEG of the face (base64, at most 160 px) in 'crop'. "
        "Off by default: a face crop is biometric data, and it goes wherever events go.",
    )
    stream_schemes: str = Field(
        default="rtsp,rtsps,http,https",
        description="URL schemes a stream may use (comma-separated, of rtsp, rtsps, http, "
        "https, rtmp, rtmps); FFmpeg may use no other protocol for it, nor for what it refers "
        "to (a playlist's segments), and follows no redirect. Server streams and 'facelens "
        "watch'.",
    )
    stream_folders: str = Field(
        default="",
        description="Folders whose video files the server's streams may read "
        "(comma-separated absolute paths; symlinks and '..' are resolved first). None by "
        "default: the API reads no local file. 'facelens watch' reads any file its user can.",
    )
    stream_devices: str = Field(
        default="",
        description="Cameras the server's streams may open (comma-separated, e.g. /dev/video0; "
        "the index 0 is /dev/video0). None by default. 'facelens watch' opens any.",
    )
    stream_networks: str = Field(
        default="",
        json_schema_extra={"shown_default": "any host"},
        description="Networks (CIDR, comma-separated) that stream URLs may point into: a host "
        "name is resolved and every address must be inside. Unset: any host.",
    )
    max_streams: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=0,
        json_schema_extra={"shown_default": "the CPU count"},
        description="Most streams the server keeps (each is a process of ~0.3 GB); more are "
        "refused with 409 'too_many_streams'.",
    )
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        json_schema_extra={"shown_default": "the CPU count"},
        description="Processes used for many photos and by the server (one model thread each).",
    )

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address 'facelens serve' listens on: loopback by default; 0.0.0.0 to be "
        "reachable from other machines (a container needs it).",
    )
    port: int = Field(
        default=5000,
        ge=0,
        le=65535,
        description="Port 'facelens serve' listens on (0: any free port).",
    )
    allow_no_keys: bool = Field(
        default=False,
        description="Let 'facelens serve' listen beyond loopback with no API key. Off: it "
        "refuses to start on such an address until a key exists (FACELENS_SERVER_API_KEYS or "
        "'facelens keys create'), so a missed step cannot leave the gallery open to the "
        "network. Set it only when something else guards the port (a host-only publish, a "
        "firewall, an authenticating proxy).",
    )
    allowed_hosts: str = Field(
        default="",
        description="Host names the server answers to besides IP addresses, localhost and the "
        "name it listens on, comma-separated ('*': any). Refusing other names stops DNS "
        "rebinding; a container reached by its service name needs that name here.",
    )
    cors_origins: str = Field(
        default="",
        description="Web page origins (scheme://host[:port]) that may call the API from a "
        "browser, comma-separated; none by default. Pages of other origins may not change "
        "anything.",
    )
    server_api_keys: SecretStr | None = Field(
        default=None,
        description="API keys the server accepts besides those of 'facelens keys create' "
        "(comma-separated, each at least 16 characters): for a container's env file or a "
        "Kubernetes Secret. Any key turns keys on.",
    )
    compat_open_networks: str = Field(
        default="",
        description="Networks (CIDR, comma-separated, e.g. 192.168.1.0/24) whose clients may "
        "call the DeepStack and CompreFace compatibility routes without an API key when keys "
        "are on: for CodeProject.AI clients, which cannot send one. None by default; the "
        "server warns at start when it is set.",
    )
    compat_key_scan_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1024,
        description="With keys on, how much of a DeepStack form without an X-API-Key header "
        "the server reads looking for its api_key field before refusing it with 401 (the "
        "rest is read only once the key is valid). Double Take sends the key after its "
        "image: this must exceed its largest snapshot.",
    )
    max_body_bytes: int = Field(
        default=20 * 1024 * 1024,
        ge=1024,
        description="Largest request body the server reads, in bytes (413 above it).",
    )
    max_queue: int = Field(
        default=64,
        ge=1,
        description="Requests waiting for a worker beyond this many are refused with 503 "
        "and Retry-After, instead of piling up.",
    )
    max_connections: int = Field(
        default=512,
        ge=1,
        description="Open connections in all. Beyond it the connection idle longest (waiting "
        "for a request) is closed to make room, so held-open sockets cannot lock anyone out; "
        "only when every one is busy are requests refused (503; health checks still answered).",
    )
    max_connections_per_client: int = Field(
        default=64,
        ge=1,
        description="Open connections from one client address (IPv6: one /64); beyond it, that "
        "client's connection idle longest is closed. Not applied to FACELENS_TRUSTED_PROXIES.",
    )
    max_requests: int = Field(
        default=64,
        ge=1,
        description="Requests in progress at once (live views and health checks not counted), "
        "a quarter of them per client; beyond: 503 with Retry-After.",
    )
    max_live_views: int = Field(
        default=32,
        ge=1,
        description="Live views open at once (the event stream, a stream's MJPEG), a quarter "
        "of them per client; beyond: 503 with Retry-After. They have their own budget, as they "
        "last for hours.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Reverse proxies (addresses or networks, comma-separated) whose "
        "X-Forwarded-For / X-Forwarded-Proto are believed: the client address then comes "
        "from them (for FACELENS_COMPAT_OPEN_NETWORKS, the per-client limits and the logs). "
        "None by default: the headers are ignored, from 127.0.0.1 too.",
    )
    read_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A client must send a request's head within this many seconds of "
        "connecting (or of its previous answer), and each part of its body within this of the "
        "last; else the connection is closed, or the request gets 408.",
    )
    request_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest a worker may spend on one request's images; past it the worker "
        "is replaced and the client gets 504 (a photo takes well under a second).",
    )
    url: str = Field(
        default="http://127.0.0.1:5000",
        description="The server the 'facelens remote' commands call.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="The API key 'facelens remote' sends (X-API-Key); unset: none.",
    )
    remote_deadline_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest a 'facelens remote' call may take, its retries included "
        "(connection failures, timeouts, 429 and 5xx are retried with back-off).",
    )
    log_format: LogFormat = Field(
        default="text", description="Server logs: text (one line per request) or json."
    )

    @field_validator("compat_open_networks", "trusted_proxies", "stream_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip():
                try:
                    ipaddress.ip_network(item.strip(), strict=False)
                except ValueError:
                    raise ValueError(
                        f"{item.strip()!r} is not a network: write e.g. 192.168.1.0/24 or "
                        "10.0.0.5, comma-separated"
                    ) from None
        return value

    @field_validator("stream_schemes")
    @classmethod
    def _schemes(cls, value: str) -> str:
        known = ("rtsp", "rtsps", "http", "https", "rtmp", "rtmps")
        for item in value.split(","):
            if item.strip() and item.strip().lower() not in known:
                raise ValueError(
                    f"{item.strip()!r} is not a stream scheme: give some of {', '.join(known)} "
                    "(local files go in FACELENS_STREAM_FOLDERS, cameras in "
                    "FACELENS_STREAM_DEVICES)"
                )
        return value

    @field_validator("stream_folders", "stream_devices")
    @classmethod
    def _absolute(cls, value: str, info: ValidationInfo) -> str:
        device = info.field_name == "stream_devices"
        for item in (i.strip() for i in value.split(",")):
            if item and not item.startswith("/dev/" if device else "/"):
                raise ValueError(
                    f"{item!r} is not {'a device under /dev/' if device else 'an absolute path'}"
                )
        return value

    @field_validator("events_webhook", "events_mqtt", "database_url")
    @classmethod
    def _target_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        schemes, example = _URLS[str(info.field_name)]
        try:
            parts = urlsplit(value.get_secret_value())
            _ = parts.port  # a port out of range raises ValueError
        except ValueError:
            parts = urlsplit("")
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"give {example}")
        return value

    @property
    def open_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """:attr:`compat_open_networks`, parsed."""
        return _parse_networks(self.compat_open_networks)

    @property
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """:attr:`trusted_proxies`, parsed."""
        return _parse_networks(self.trusted_proxies)

    @field_validator("data_dir")
    @classmethod
    def _resolve(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def gallery_path(self) -> Path:
        return self.data_dir / GALLERY_FILE

    @property
    def events_path(self) -> Path:
        return self.data_dir / EVENTS_FILE

    def with_model(self, model: ModelName) -> Settings:
        """These settings with the model profile decided (by the gallery, say)."""
        return self.model_copy(update={"model": model})


def _parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(
        ipaddress.ip_network(item.strip(), strict=False) for item in text.split(",") if item.strip()
    )


# Variables of the test suite and the benchmarks, not of the product.
_NOT_SETTINGS = ("FACELENS_TEST_",)


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``FACELENS_*`` variables that are no setting (a typo is otherwise ignored silently)."""
    names = {f"FACELENS_{field.upper()}" for field in Settings.model_fields}
    return sorted(
        key
        for key in (os.environ if environ is None else environ)
        if key.upper().startswith("FACELENS_")
        and key.upper() not in names
        and not key.upper().startswith(_NOT_SETTINGS)
    )
