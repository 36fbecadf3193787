"""Secrets in URLs never shown: ``user:password@`` and the values of query keys that look
secret (``?token=``, ``?api_key=``, ``&password=``, ``&X-Amz-Signature=`` ...) are masked in
anything we print, log, answer or store as an error, and in the logs of the HTTP client
library (httpx logs every request's full URL at INFO).

Which query values: those of keys that *contain* a secret-looking word (see ``_SECRET_WORDS``),
not every value, so that a camera's ``?channel=1&subtype=0`` still tells streams apart in logs
and status; a key holding a secret under a harmless name (``?k=``) is the price of that.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import re
import sys
import threading
from urllib.parse import urlsplit

# A key is masked when its name contains one of these (case-insensitive): token, access_token,
# key, api_key, apikey, password, pass, passwd, pwd, secret, client_secret, auth, sig,
# signature, credential, session, jwt.
_SECRET_WORDS = (
    "token",
    "key",
    "pass",
    "pwd",
    "secret",
    "auth",
    "sig",
    "credential",
    "session",
    "jwt",
)
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s'\"]+@")
_QUERY_VALUE = re.compile(
    r"(?P<key>[?&;][^=&#\s'\"]*(?:" + "|".join(_SECRET_WORDS) + r")[^=&#\s'\"]*=)[^&#\s'\"]*",
    re.IGNORECASE,
)
HIDDEN = "***"
# A line of standard error longer than this is masked and passed on in pieces (FFmpeg's lines
# are short; a URL of a stream source is at most 2,000 characters).
_LONGEST_LINE = 16_384
_PIPE_BYTES = 1 << 20  # what standard error may hold while the relay catches up


def mask(text: str) -> str:
    """``text`` (a URL, or a message holding URLs) with any ``user:password@`` replaced by
    ``***@`` and the values of secret-looking query keys by ``***``."""
    return _QUERY_VALUE.sub(rf"\g<key>{HIDDEN}", _CREDENTIALS.sub(f"{HIDDEN}@", text))


# Control characters (C0 but tab, DEL, C1, and the bidi overrides) in a message: a peer's
# text (a webhook receiver's answer, a camera's error) could otherwise clear the terminal,
# forge log lines (CR, LF) or reorder what a reader sees.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control characters shown as escapes (``\x1b``, ``\n``, ``\u202e``)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def endpoint(url: str) -> str:
    """Where ``url`` goes, shown as ``scheme://host[:port]/…``: its path and query hidden as
    well as its credentials (``***@``), for a webhook's path may be its secret (a Home
    Assistant webhook id, a token in the path)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a port out of range, a bad IPv6 literal: nothing of it shown
        return HIDDEN
    if not parts.scheme or not host:
        return HIDDEN
    shown = f"{parts.scheme}://"
    if "@" in parts.netloc:
        shown += f"{HIDDEN}@"
    shown += f"[{host}]" if ":" in host else host
    if port is not None:
        shown += f":{port}"
    if parts.path.strip("/") or parts.query or parts.fragment:
        shown += "/…"
    return shown


class MaskSecrets(logging.Filter):
    """Masks secrets in URLs of each record it passes (its message and its traceback), and
    shows control characters in its message as escapes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = printable(mask(message))
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True


# Libraries that log URLs we were given (httpx: "HTTP Request: POST <url> ...").
_URL_LOGGERS = ("httpx",)


def guard_logs(*, debug: bool = False) -> None:
    """Mask secrets in every log line: on each handler of the root logger and on the loggers
    of the libraries that log URLs, whose per-request INFO lines are also silenced unless
    ``debug``. Idempotent; called wherever logging is set up (the CLI, the server)."""
    for logger in (logging.getLogger(), *map(logging.getLogger, _URL_LOGGERS)):
        targets: list[logging.Filterer] = [logger] if logger.name != "root" else []
        targets += logger.handlers
        for target in targets:
            if not any(isinstance(f, MaskSecrets) for f in target.filters):
                target.addFilter(MaskSecrets())
    for name in _URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)


def guard_stderr() -> None:
    """Mask secrets in what this process writes to standard error by any means, C libraries
    included (FFmpeg prints the URLs it fails on, a playlist's segment with its token): fd 2
    becomes a pipe, whose lines a thread masks and writes on to the real standard error. For
    the server's stream processes; the lines still written at exit are passed on first."""
    real = os.dup(2)
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):  # a burst while the relay waits does not block
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)
    relay = threading.Thread(
        target=_relay, args=(read_end, real), name="stderr masking", daemon=True
    )
    relay.start()

    def finish() -> None:
        sys.stderr.flush()
        os.dup2(real, 2)  # the pipe's last writer closed: the relay reads to its end
        relay.join(timeout=5)

    atexit.register(finish)


def _relay(read_end: int, real: int) -> None:
    pending = b""
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            pending += chunk
            lines = pending.split(b"\n")
            pending = lines.pop()
            if len(pending) > _LONGEST_LINE:
                lines.append(pending)
                pending = b""
            _write_masked(real, lines)
    if pending:
        _write_masked(real, [pending])


def _write_masked(fd: int, lines: list[bytes]) -> None:
    text = "".join(mask(line.decode("utf-8", "surrogateescape")) + "\n" for line in lines)
    data = memoryview(text.encode("utf-8", "surrogateescape"))
    while data:
        try:
            data = data[os.write(fd, data) :]
        except OSError:  # the real standard error is gone: nothing more to say
            return
