"""What a web browser may do with the service: pages of other origins may not change it, and
names that merely point at it (DNS rebinding) are not answered.

With no key on 127.0.0.1, any web page the user opens could otherwise ``fetch`` a multipart
POST to the server (browsers send that "simple" request without asking first) and enrol a
stranger under someone's name; and a page on a name the attacker controls, re-pointed at
127.0.0.1, is same-origin for the browser and could read the answers too. So:

- ``Host`` must be an IP literal (a page cannot be served from one it does not own),
  ``localhost``, the name the server listens on, or a name in ``FACELENS_ALLOWED_HOSTS``
  (``*`` for any). Otherwise ``400 host_not_allowed``. A request with no ``Host`` (HTTP/1.0)
  comes from no browser and is answered.
- A request that is not GET, HEAD or OPTIONS and that a browser marks as coming from another
  origin (``Sec-Fetch-Site``, else an ``Origin`` that is not this host) is refused with
  ``403 cross_origin``, unless that origin is in ``FACELENS_CORS_ORIGINS``. Programs that are
  not browsers send neither header and are not affected; nor is the server's own page.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from facelens.api.errors import send_error

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def split_host(value: str) -> str:
    """The host part of a ``Host`` header or origin's netloc, lower-case, no port or brackets."""
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:5000
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def origins(text: str) -> frozenset[str]:
    """``scheme://host[:port]`` origins from a comma-separated setting, normalised."""
    return frozenset(o.strip().rstrip("/").lower() for o in text.split(",") if o.strip())


class BrowserGuard:
    """Pure ASGI middleware applying the rules of this module."""

    def __init__(
        self, app: ASGIApp, *, bound_host: str, allowed_hosts: str, cors_origins: str
    ) -> None:
        self.app = app
        names = {h.strip().lower() for h in allowed_hosts.split(",") if h.strip()}
        self.any_host = "*" in names
        self.hosts = frozenset(names | {"localhost", split_host(bound_host)})
        self.cors_origins = origins(cors_origins)

    def host_allowed(self, host_header: str) -> bool:
        host = split_host(host_header)
        return self.any_host or is_ip_literal(host) or host in self.hosts

    @staticmethod
    def cross_origin(origin: str | None, site: str | None, host_header: str) -> bool:
        if site is not None:
            return site not in ("same-origin", "none")
        if origin is None:
            return False  # not a browser
        if origin == "null":
            return True
        return urlsplit(origin).netloc.lower() != host_header.strip().lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host")
        state = scope.setdefault("state", {})
        # No Host at all (HTTP/1.0, a plain script): not a browser, which always names the
        # host, so no rebound page can be behind it.
        if host is not None and not self.host_allowed(host):
            state["error_code"] = "host_not_allowed"
            await send_error(
                send,
                400,
                "host_not_allowed",
                f"This server does not answer to the name {split_host(host)!r}. If it is yours, "
                "add it to FACELENS_ALLOWED_HOSTS (comma-separated; '*' for any name).",
            )
            return
        origin = headers.get("origin")
        if (
            scope["method"] not in SAFE_METHODS
            and self.cross_origin(origin, headers.get("sec-fetch-site"), host or "")
            and (origin or "").rstrip("/").lower() not in self.cors_origins
        ):
            state["error_code"] = "cross_origin"
            await send_error(
                send,
                403,
                "cross_origin",
                f"A web page from another origin ({origin or 'unknown'}) may not send this "
                "request. To let that page use the API, add its origin to "
                "FACELENS_CORS_ORIGINS.",
            )
            return
        await self.app(scope, receive, send)
