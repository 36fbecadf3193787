"""The facelens exception hierarchy.

Every error carries a stable ``code`` (for JSON and, later, HTTP) and a message that tells the
user what to do. The CLI maps them to exit codes in one place (``cli.py``); the HTTP layer will
map them to status codes in one place (``api/``).
"""

from __future__ import annotations


class FaceLensError(Exception):
    """Base class: a failure we foresaw, with a message meant for the user."""

    code = "facelens_error"

    def __init__(self, message: str, *, api_message: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # What an HTTP client is told, where the message suits only the command line (a
        # 'facelens ...' command to run): the API's own way to do it instead.
        self.api_message = api_message or message

    def __str__(self) -> str:
        return self.message


class ImageError(FaceLensError):
    """The bytes are not an image we can read (corrupt, truncated, unsupported, not an image)."""

    code = "bad_image"


class ImageTooLarge(ImageError):
    """The image declares more pixels than the configured limit (decompression-bomb guard)."""

    code = "image_too_large"


class ImageTooComplex(ImageTooLarge):
    """The image would cost far more to decode than any photo (thousands of JPEG scans, a
    1-pixel-wide strip): refused before decoding, like a decompression bomb."""

    code = "image_too_complex"


class NoFaceFound(FaceLensError):
    """An operation needed a face and the image has none."""

    code = "no_face"


class NothingEnrolled(NoFaceFound):
    """No photo of a request gave a face to enrol, so the person it was to create was not."""

    code = "nothing_enrolled"


class InputPathError(FaceLensError):
    """A path given by the user does not exist, is the wrong kind, or holds nothing usable."""

    code = "bad_path"


class StorageError(FaceLensError):
    """The data directory or gallery cannot be created, written or read (permissions, full disk)."""

    code = "storage_error"


class GalleryDamaged(StorageError):
    """The gallery file is damaged (SQLite finds it malformed, or not a database at all):
    nothing more is written to it until it is restored or moved away."""

    code = "gallery_damaged"


class DatabaseUnavailable(StorageError):
    """The shared database (PostgreSQL) cannot be reached now: nothing was written; retry
    later (recognition goes on from what each server holds in memory)."""

    code = "database_unavailable"


class NotFound(FaceLensError):
    """A named thing (a person, a face) does not exist."""

    code = "not_found"


class PersonNotFound(NotFound):
    """No person has the name asked for."""


class Conflict(FaceLensError):
    """The change would break a uniqueness rule (a person name already taken)."""

    code = "conflict"


class InvalidValue(FaceLensError):
    """A value given by the user is not acceptable (an empty or control-character name)."""

    code = "invalid_value"


class CannotListen(FaceLensError):
    """A port cannot be listened on: another program uses it, it needs privileges, or the
    address is not this machine's. Its own kind (and exit code), so that a script can tell a
    busy port, worth another port or a retry, from a mistake in what it asked."""

    code = "cannot_listen"


class UnsafeSettings(FaceLensError):
    """Settings that together would expose biometric data (a server listening beyond loopback
    with no API key); refused before anything starts, saying how to make them safe."""

    code = "unsafe_settings"


class ModelError(FaceLensError):
    """A model cannot be loaded, or the gallery was built with a different model."""

    code = "model_error"


class MissingExtra(ModelError):
    """What was asked for needs an optional part of facelens (``facelens[dlib]``, ...) that is
    not installed; the message names it and how to install it."""

    code = "missing_extra"


class PayloadTooLarge(FaceLensError):
    """A request body is larger than the configured limit."""

    code = "payload_too_large"


class UnsupportedMediaType(FaceLensError):
    """A request body comes in a content type the endpoint does not read."""

    code = "unsupported_media_type"


class Unauthorized(FaceLensError):
    """An API key is required and the request has none, or one that is not valid."""

    code = "unauthorized"


class KeyMissing(Unauthorized):
    """Keys are required and the request sent none (as opposed to a wrong one)."""


class Forbidden(FaceLensError):
    """The API key is valid but lacks the scope the request needs."""

    code = "forbidden"


class Unavailable(FaceLensError):
    """The service cannot take the request now (workers busy or restarting); retry later."""

    code = "unavailable"


class RequestTimeout(FaceLensError):
    """The client stopped sending the request's body."""

    code = "request_timeout"


class WorkTimeout(FaceLensError):
    """The work for one request ran past the time limit; it was stopped."""

    code = "timeout"


class ClientGone(FaceLensError):
    """The client closed the connection before the answer; its work was stopped."""

    code = "client_gone"
    status = 499  # nginx's "client closed request"; only logs and metrics see it


class BadBase64(ImageError):
    """A body that should be base64 is not."""

    code = "bad_base64"


class EmptyBody(ImageError):
    """A request that needs an image has an empty body."""

    code = "empty_body"


class IdempotencyKeyReused(InvalidValue):
    """An Idempotency-Key already used for a different request."""

    code = "idempotency_key_reused"


class SourceNotAllowed(InvalidValue):
    """A stream source the settings do not let the server read (a scheme, folder, device or
    network not allowed); the message is the same whether or not such a path exists."""

    code = "source_not_allowed"


class TooManyStreams(Conflict):
    """The server runs as many streams as ``FACELENS_MAX_STREAMS`` allows."""

    code = "too_many_streams"


class APIError(FaceLensError):
    """A facelens server answered with an error (after any retries): its HTTP status, its
    error ``code`` and message, and how long it asked to wait (``Retry-After``), if it did."""

    def __init__(
        self, message: str, *, status: int, code: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Busy, restarting or failing servers are worth another try; other 4xx never."""
        return self.status == 429 or self.status >= 500


class ServerUnreachable(Unavailable):
    """No answer came from the server (refused, reset, timed out) within the tries allowed."""

    code = "unreachable"


def error_class(code: str) -> type[FaceLensError] | None:
    """Our exception class whose ``code`` is ``code`` (a server's answer → a local kind)."""
    pending: list[type[FaceLensError]] = [FaceLensError]
    while pending:
        cls = pending.pop()
        if cls.code == code and cls is not APIError:
            return cls
        pending.extend(cls.__subclasses__())
    return None
