"""Helpers for the backup and restore tests: the ``facelens`` command as a process, what a data
directory holds (every row of every table, every file with its SHA-256), and archives made by
hand."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sqlite3
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from tests.support.server import FACELENS


def facelens(data: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FACELENS, "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the SQLite file ``path``, in order (blobs as bytes)."""
    db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        names = [
            str(row[0]) for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return {
            name: db.execute(f'SELECT * FROM "{name}" ORDER BY rowid').fetchall()
            for name in sorted(names)
        }
    finally:
        db.close()


def contents(data: Path) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """Every table of both databases of the data directory ``data``."""
    return {
        name: tables(data / name)
        for name in ("gallery.sqlite3", "events.sqlite3")
        if (data / name).exists()
    }


def files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (folders as 'dir'), with its SHA-256."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): "dir"
        if p.is_dir()
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
    }


def members(archive: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """The members of an archive, with their contents."""
    found = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            found.append((member, None if handle is None else handle.read()))
    return found


def manifest_of(archive: Path) -> dict[str, Any]:
    for member, data in members(archive):
        if member.name == "manifest.json" and data is not None:
            loaded: dict[str, Any] = json.loads(data)
            return loaded
    raise AssertionError(f"{archive} has no manifest")


def write_archive(
    path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]], *, gz: bool = True
) -> Path:
    """An archive of ``entries`` as given (sizes from the data unless the entry sets them)."""
    with tarfile.open(path, "w:gz" if gz else "w") as tar:
        for info, data in entries:
            if data is not None and info.isreg() and info.size == 0:
                info.size = len(data)
            tar.addfile(info, None if data is None else io.BytesIO(data))
    return path


def entry(name: str, data: bytes | None = None, **fields: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = 0 if data is None else len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    return info, b"" if data is None else data


def raw_archive(path: Path, entries: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    """A gzipped tar written header by header, so that a header may claim any size (a member
    of a terabyte followed by a few bytes)."""
    stream = bytearray()
    for info, data in entries:
        stream += info.tobuf(format=tarfile.PAX_FORMAT)
        stream += data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)
    stream += b"\0" * (2 * tarfile.BLOCKSIZE)
    path.write_bytes(gzip.compress(bytes(stream)))
    return path
