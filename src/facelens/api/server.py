"""``facelens serve``: bind, start the workers, then serve with uvicorn; never debug or reload.

The port is bound first, so a port in use fails at once and not after the models load; the
workers are started and warmed before the first request is accepted.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import signal
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn

from facelens.api.app import create_app
from facelens.api.connections import guarded_protocol
from facelens.api.keys import given_keys
from facelens.api.observability import configure_logging
from facelens.api.services import Services
from facelens.errors import CannotListen, UnsafeSettings
from facelens.settings import Settings
from facelens.system.redact import endpoint

log = logging.getLogger("facelens.server")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_open_without_keys(settings: Settings, keyed: bool) -> None:
    """:class:`UnsafeSettings` for a server that would listen beyond loopback with no API key,
    unless ``FACELENS_ALLOW_NO_KEYS`` says something else guards the port: one skipped step
    (the key of a container's env file) must not open the gallery to the network."""
    if keyed or is_loopback(settings.host) or settings.allow_no_keys:
        return
    raise UnsafeSettings(
        f"Refusing to listen on {settings.host} with no API key: anyone who can reach the port "
        "could read and change the gallery (biometric data). Give the server a key: set "
        "FACELENS_SERVER_API_KEYS (e.g. to the output of 'openssl rand -hex 24'; in a "
        "container, with -e or its env file), or create one with 'facelens --data-dir "
        f"{settings.data_dir} keys create NAME' (for a container, run that command in the "
        "image with the same volume); or listen on this machine only (--host 127.0.0.1). If "
        "something else guards the port (published to 127.0.0.1 only, a firewall, an "
        "authenticating proxy), set FACELENS_ALLOW_NO_KEYS=true (or serve --allow-no-keys)."
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on ``host:port``, or an error that says what to change."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CannotListen(
            f"Cannot listen on {host!r}: {exc.strerror or exc}. Use an address of this machine, "
            "e.g. --host 127.0.0.1 (this machine only) or --host 0.0.0.0 (every network)."
        ) from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hints = {
            errno.EADDRINUSE: "another program uses it; choose another --port",
            errno.EACCES: "ports below 1024 need privileges; choose a --port above 1024",
            errno.EADDRNOTAVAIL: "this machine has no such address; use --host 127.0.0.1 "
            "(this machine only) or --host 0.0.0.0 (every network)",
        }
        hint = hints.get(exc.errno or 0, exc.strerror or str(exc))
        raise CannotListen(f"Cannot listen on {host}:{port}: {hint}.") from None
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, telling ``on_exit`` at once when a signal asks it to stop (before
    its graceful shutdown), so requests still waiting for a worker get a JSON 503 at once."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.on_exit()


def serve(settings: Settings, *, debug: bool = False) -> None:
    """Run the HTTP service until SIGINT/SIGTERM (graceful: requests in flight finish)."""
    configure_logging(settings.log_format, debug=debug)
    secret = settings.server_api_keys
    given = given_keys(secret.get_secret_value() if secret else "")  # before any work
    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    try:
        # Refuses a gallery of another model than the one asked for, before any model loads.
        served = Services.open(settings, given_keys=given)
    except BaseException:
        sock.close()
        raise
    settings, profile = served.settings, served.gallery.profile
    try:
        keyed = served.keys.enabled()
        refuse_open_without_keys(settings, keyed)  # before any model loads
        log.info(
            "starting %d worker processes (loading the %s model: %s)",
            settings.workers,
            profile.name,
            profile.summary,
        )
        served.start()  # the workers, then the streams configured before
        if not keyed and not is_loopback(settings.host):
            log.warning(
                "*** facelens listens on %s with NO API KEYS (FACELENS_ALLOW_NO_KEYS): anyone "
                "who can reach this port can read and change the gallery (biometric data). "
                "Unless something else guards it, set FACELENS_SERVER_API_KEYS or create a key "
                "with 'facelens keys create NAME', and restart. ***",
                settings.host,
            )
        if settings.open_networks:
            log.warning(
                "clients in %s may call the compatibility routes without an API key "
                "(FACELENS_COMPAT_OPEN_NETWORKS): anyone on those networks can read and change "
                "the gallery through them",
                ", ".join(str(n) for n in settings.open_networks),
            )
        for kind, url in (("webhook", settings.events_webhook), ("MQTT", settings.events_mqtt)):
            if url is not None:
                log.info("stream events go to %s %s", kind, endpoint(url.get_secret_value()))
        app = create_app(served)
        trusted = ",".join(str(n) for n in settings.proxy_networks)
        config = uvicorn.Config(
            app,
            # Time limit on request heads; connections limited per client and in all.
            http=guarded_protocol(settings.read_timeout_s, app.state.admission),
            limit_concurrency=None,  # ours: uvicorn's counts idle sockets and locks all out
            # X-Forwarded-* believed only from the configured proxies (uvicorn's default
            # believes 127.0.0.1, so any local process could pose as any address).
            proxy_headers=bool(trusted),
            forwarded_allow_ips=trusted or None,
            timeout_keep_alive=5,
            log_config=None,
            access_log=False,  # ours logs each request with its id and face count
            server_header=False,
            timeout_graceful_shutdown=15,
            reload=False,
        )
        shown = f"[{host}]" if ":" in host else host
        log.info(
            "facelens serving on http://%s:%d (API docs at /docs; API keys %s; data %s)",
            shown,
            port,
            "required" if keyed else "off",
            settings.data_dir,
        )
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the
        # handler it found: make that a no-op so the workers are closed and the exit code is 0.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda number, frame: None)
        server = _Server(config, on_exit=served.pool.drain)
        app.state.stopping = lambda: server.should_exit  # live event streams end with us
        server.run(sockets=[sock])
        log.info("stopped")
    finally:
        served.close()
        sock.close()
