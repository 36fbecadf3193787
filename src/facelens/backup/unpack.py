"""An archive checked while it is unpacked: its manifest first (a facelens backup, of a format
this version reads), then each member (a plain file the manifest names, of the size it says,
with its SHA-256; nothing more than it declares is read, so a huge header or a decompression
bomb stops early). Every failure says what is wrong; nothing outside the folder given is
written."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from facelens.backup import DATABASES, FORMAT, FORMAT_VERSION, MANIFEST
from facelens.errors import InputPathError
from facelens.settings import GALLERY_FILE
from facelens.storage.errors import os_storage_error

MAX_MANIFEST_BYTES = 1 << 20
HEADERS_BYTES = 1 << 20  # room for the tar's own headers and padding beyond its members
_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


class _Overrun(Exception):
    """The archive goes on past what its manifest declares."""


class _Limited(io.RawIOBase):
    """A reader that refuses to give more than ``limit`` bytes in all: what tarfile reads of a
    hostile archive (a huge header or member, a decompression bomb) is bounded by it."""

    def __init__(self, source: io.BufferedIOBase, limit: int) -> None:
        self._source = source
        self.limit = limit
        self.done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._source.read(min(len(view), self.limit - self.done + 1))
        self.done += len(data)
        if self.done > self.limit:
            raise _Overrun
        view[: len(data)] = data
        return len(data)


def bad(archive: Path, why: str) -> InputPathError:
    return InputPathError(f"{archive} is not a sound facelens backup: {why}. Nothing was changed.")


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a member must not be unpacked, whatever its name: a path leading anywhere but the
    folder it is unpacked in, or anything but a plain file."""
    name = member.name
    path = PurePosixPath(name)
    if path.is_absolute():
        return f"its member {name!r} has an absolute path"
    if ".." in path.parts or "\\" in name:
        return f"its member {name!r} leads out of the folder it would be unpacked in"
    if member.issym() or member.islnk():
        return f"its member {name!r} is a link"
    if not member.isreg():
        return f"its member {name!r} is not a plain file"
    return None


def _manifest(archive: Path, text: bytes) -> dict[str, Any]:
    """The manifest, checked: a facelens backup of a format this version reads, whose files
    are databases of a data directory, each with its size and SHA-256."""
    try:
        manifest = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise bad(archive, "its manifest is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise bad(archive, "its manifest is not a facelens backup's")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad(archive, "its manifest has no format version")
    if version > FORMAT_VERSION:
        raise bad(archive, f"it was made by a newer facelens (format {version}); upgrade facelens")
    files = manifest.get("files")
    if not isinstance(files, dict) or GALLERY_FILE not in files:
        raise bad(archive, f"its manifest lists no {GALLERY_FILE}")
    for name, entry in files.items():
        if name not in DATABASES:
            raise bad(archive, f"its manifest lists {name!r}, which is no file of facelens")
        size = entry.get("size") if isinstance(entry, dict) else None
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise bad(archive, f"its manifest gives {name} no size")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise bad(archive, f"its manifest gives {name} no SHA-256")
    return manifest


def unpack(archive: Path, into: Path, room: Callable[[int], None]) -> dict[str, Any]:
    """Check the archive and unpack its databases into the folder ``into``; ``room(bytes)``
    raises if the disk cannot take them. Returns the manifest."""
    try:
        with archive.open("rb") as raw:
            packed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            source: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="rb") if packed else raw
            limited = _Limited(source, MAX_MANIFEST_BYTES + HEADERS_BYTES)
            with tarfile.open(fileobj=limited, mode="r|") as tar:
                return _unpack_members(archive, tar, limited, into, room)
    except _Overrun:
        raise bad(archive, "it holds more than its manifest declares") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        why = str(exc) or type(exc).__name__
        raise bad(archive, f"it is no archive, or a damaged or truncated one ({why})") from None


def _unpack_members(
    archive: Path,
    tar: tarfile.TarFile,
    limited: _Limited,
    into: Path,
    room: Callable[[int], None],
) -> dict[str, Any]:
    first = tar.next()
    if first is None:
        raise bad(archive, "it is empty")
    problem = _member_problem(first)
    if problem:
        raise bad(archive, problem)
    if first.name != MANIFEST:
        raise bad(archive, f"it does not begin with {MANIFEST}")
    if first.size > MAX_MANIFEST_BYTES:
        raise bad(archive, f"its {MANIFEST} is {first.size} bytes, far more than a manifest")
    handle = tar.extractfile(first)
    assert handle is not None  # a plain file
    manifest = _manifest(archive, handle.read())
    files: dict[str, dict[str, Any]] = manifest["files"]
    needed = sum(int(entry["size"]) for entry in files.values())
    room(needed)
    limited.limit = limited.done + needed + HEADERS_BYTES
    while (member := tar.next()) is not None:
        problem = _member_problem(member)
        if problem:
            raise bad(archive, problem)
        entry = files.get(member.name)
        if entry is None:
            raise bad(archive, f"its member {member.name!r} is not in its manifest")
        target = into / member.name
        if target.exists():
            raise bad(archive, f"it holds {member.name} twice")
        if member.size != entry["size"]:
            raise bad(
                archive,
                f"its {member.name} is {member.size} bytes where its manifest says {entry['size']}",
            )
        if _copy_out(tar, member, target) != entry["sha256"]:
            raise bad(archive, f"the SHA-256 of its {member.name} is not its manifest's")
    missing = sorted(set(files) - {p.name for p in into.iterdir()})
    if missing:
        raise bad(archive, f"it lacks {', '.join(missing)}, which its manifest lists")
    return manifest


def _copy_out(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> str:
    """Write the member into the new file ``target`` (mode 0600); its SHA-256. Failures to read
    the archive go up as they are; failures to write are the disk's."""
    handle = tar.extractfile(member)
    assert handle is not None  # a plain file
    digest = hashlib.sha256()
    try:
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        raise os_storage_error(target.parent, exc, "unpack the backup into") from None
    with os.fdopen(fd, "wb") as out:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            try:
                out.write(chunk)
            except OSError as exc:
                raise os_storage_error(target.parent, exc, "unpack the backup into") from None
        try:
            out.flush()
            os.fsync(out.fileno())
        except OSError as exc:
            raise os_storage_error(target.parent, exc, "unpack the backup into") from None
    return digest.hexdigest()
