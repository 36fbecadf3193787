"""Secrets in URLs never shown: ``user:password@`` and the values of query keys that look
secret (``?token=``, ``?api_key=``, ``&password=``, ``&X-Amz-Signature=`` ...) are masked in
anything we print, log, answer or store as an error, and in the logs of the HTTP client
library (httpx logs every request's full URL at INFO).

Which query values: those of keys that *contain* a secret-looking word (see ``_SECRET_WORDS``),
not every value, so that a camera's ``?channel=1&subtype=0`` still tells streams apart in logs
and status; a key holding a secret under a harmless name (``?k=``) is the price of that.
"""

from __future__ import annotations

import logging
import re

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
