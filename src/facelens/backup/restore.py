"""``facelens restore``: a data directory put back as a ``facelens backup`` archive holds it.

The whole archive is checked before anything is changed: its manifest first (a facelens
backup, of a format this version reads), then each member as it is unpacked into a folder of
its own inside the data directory (a plain file named as the manifest says, of the size it
says, with its SHA-256, nothing more than the manifest declares, and room for it on the disk),
then each database (SQLite's quick_check; a gallery of a schema this version knows). Only then
are the files swapped: those replaced are moved, with their ``-wal`` and ``-shm``, into
``before-restore-<time>/`` beside them, and the restored ones renamed into place. The gallery is
then opened as any command opens it, which upgrades an older schema (with its own ``.bak``).

Nothing is restored under a running server, ``watch`` or ``frigate``: SQLite marks a database
in use by a shared lock on its ``-shm`` file, which is looked for before and right before the
swap. A data directory that holds data is replaced only with ``force``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from facelens.backup import DATABASES, describe, holding
from facelens.backup.unpack import HEADERS_BYTES, bad, unpack
from facelens.errors import Conflict, InputPathError, ModelError, StorageError
from facelens.gallery.schema import LATEST
from facelens.settings import GALLERY_FILE, Settings
from facelens.storage.errors import not_ours, os_storage_error
from facelens.storage.sqlite import connect_read_only, quick_check_file

_SIDE_FILES = ("-wal", "-shm", "-journal")  # SQLite's files beside a database, moved with it
# The unix VFS's wal-index lock bytes (sqlite.org/walformat.html): every connection to a
# database in WAL mode holds a shared lock on the DMS byte of its -shm file while it is open.
_DMS_BYTE = 128


@dataclass(frozen=True, slots=True)
class RestoreReport:
    archive: Path
    data_dir: Path
    manifest: dict[str, Any]
    restored: dict[str, dict[str, Any]]  # per database: what it holds now (as in the manifest)
    before: Path | None  # where the files it replaced were moved; None if there were none
    upgraded_from: int | None  # the gallery's schema version, when opening it upgraded it


def in_use(database: Path) -> bool:
    """Whether another process has ``database`` open (facelens opens every database in WAL
    mode). Our own process's connections are not seen, and closing the descriptor opened here
    would drop their locks: call it with none open on this file."""
    shm = database.with_name(database.name + "-shm")
    try:
        fd = os.open(shm, os.O_RDWR)
    except FileNotFoundError:  # no process has it open in WAL mode
        return False
    except OSError as exc:
        raise os_storage_error(shm, exc, "check who uses") from None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _DMS_BYTE)
        except OSError:
            return True
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, _DMS_BYTE)
        return False
    finally:
        os.close(fd)


def _refuse_if_in_use(data: Path) -> None:
    used = [name for name in DATABASES if in_use(data / name)]
    if used:
        raise StorageError(
            f"{' and '.join(str(data / n) for n in used)} {'are' if len(used) > 1 else 'is'} "
            "in use by another process (facelens serve, watch or frigate, or a command still "
            "running): stop it first, then restore. Nothing was changed."
        )


def _holds_data(path: Path) -> bool:
    """Whether the database ``path`` holds anything (a row in any table but the gallery's
    ``meta``); one that cannot be read counts as holding data."""
    if not (path.exists() or path.is_symlink()):
        return False
    wal = path.with_name(path.name + "-wal")
    # Read as it stands when no -wal holds changes: a read-only connection would leave an empty
    # -wal and -shm beside it otherwise.
    settled = not wal.exists() or wal.stat().st_size == 0
    try:
        db = sqlite3.connect(
            f"{path.absolute().as_uri()}?mode=ro{'&immutable=1' * settled}", uri=True, timeout=30
        )
    except sqlite3.Error:
        return True
    try:
        tables = [
            str(row[0])
            for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if row[0] != "meta" and not str(row[0]).startswith("sqlite_")
        ]
        return any(db.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() for t in tables)
    except sqlite3.Error:
        return True
    finally:
        db.close()


def _check_databases(archive: Path, into: Path) -> dict[str, dict[str, Any]]:
    """Each unpacked database is sound, and the gallery one this version can open; what each
    holds."""
    found: dict[str, dict[str, Any]] = {}
    for name in DATABASES:
        path = into / name
        if not path.is_file():
            continue
        problems = quick_check_file(path, holding(name))
        if problems:
            raise bad(archive, f"its {name} is damaged ({problems[0]})")
        if name == GALLERY_FILE and not _has_table(path, "meta"):
            raise bad(archive, f"its {name} is not a facelens gallery")
        found[name] = describe(name, path)
    version = int(found[GALLERY_FILE]["schema_version"])
    if version > LATEST:
        raise ModelError(
            f"{archive} holds a gallery of schema version {version}, made by a newer facelens "
            f"than this one (which knows up to {LATEST}); upgrade facelens. Nothing was changed."
        )
    return found


def _has_table(path: Path, table: str) -> bool:
    db = connect_read_only(path)
    try:
        found = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
    except sqlite3.Error:
        return False
    finally:
        db.close()
    return found is not None


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # not every filesystem can; the renames are done
            os.fsync(fd)
    finally:
        os.close(fd)


def _before_folder(data: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = data / f"before-restore-{stamp}"
    number = 1
    while folder.exists():
        number += 1
        folder = data / f"before-restore-{stamp}-{number}"
    return folder


def _swap(data: Path, unpacked: Path) -> Path | None:
    """Move the data directory's databases (with their side files) into a new
    ``before-restore-*`` folder, and the unpacked ones into their place; undone on failure.
    Returns the folder, or None when there was nothing to move."""
    before = _before_folder(data)
    done: list[tuple[Path, Path]] = []
    try:
        for name in DATABASES:
            for path in (data / (name + side) for side in ("", *_SIDE_FILES)):
                if path.exists() or path.is_symlink():
                    before.mkdir(mode=0o700, exist_ok=True)
                    os.rename(path, before / path.name)
                    done.append((path, before / path.name))
        for name in DATABASES:
            if (unpacked / name).is_file():
                os.rename(unpacked / name, data / name)
                done.append((unpacked / name, data / name))
    except BaseException as exc:  # an interruption too: never leave the files half swapped
        for origin, moved in reversed(done):
            with contextlib.suppress(OSError):
                os.rename(moved, origin)
        with contextlib.suppress(OSError):
            before.rmdir()  # made here, and empty again
        if isinstance(exc, OSError):
            raise os_storage_error(data, exc, "put the restored files into") from None
        raise
    _fsync_folder(data)
    return before if before.exists() else None


def _prepare(data: Path) -> bool:
    """The data directory, made if missing (its owner's only); whether it was made."""
    if data.is_dir():
        if not os.access(data, os.W_OK | os.X_OK):
            why = not_ours(data / GALLERY_FILE) or "permission denied"
            raise StorageError(f"Cannot restore into {data}: {why}.")
        return False
    try:
        data.mkdir(mode=0o700, parents=True)
    except OSError as exc:
        raise os_storage_error(data, exc, "create the data directory") from None
    return True


def restore_backup(settings: Settings, archive: Path, *, force: bool = False) -> RestoreReport:
    """Put ``settings.data_dir`` back as the backup ``archive`` holds it (see the module)."""
    if not archive.exists():
        raise InputPathError(f"{archive}: no such file.")
    if not archive.is_file():
        raise InputPathError(f"{archive}: not a file.")
    data = settings.data_dir
    made = _prepare(data)
    try:
        _refuse_if_in_use(data)
        holding = [name for name in DATABASES if _holds_data(data / name)]
        if holding and not force:
            raise Conflict(
                f"{data} holds data ({', '.join(holding)}): restoring replaces it. Give --force "
                "to replace it (the files replaced are kept in a before-restore folder beside "
                "them). Nothing was changed."
            )

        def room(needed: int) -> None:
            free = shutil.disk_usage(data).free
            if needed + HEADERS_BYTES > free:
                raise StorageError(
                    f"{archive} needs {needed:,} bytes on the disk of {data}, which has "
                    f"{free:,} free; free some space. Nothing was changed."
                )

        with tempfile.TemporaryDirectory(prefix=".restore-", dir=data) as work:
            unpacked = Path(work)
            manifest = unpack(archive, unpacked, room)
            restored = _check_databases(archive, unpacked)
            _refuse_if_in_use(data)  # again: the unpacking took a while
            before = _swap(data, unpacked)
    except BaseException:
        if made:
            shutil.rmtree(data, ignore_errors=True)  # it was made here, and holds nothing else
        raise
    upgraded = _open_as_usual(settings, before, int(restored[GALLERY_FILE]["schema_version"]))
    return RestoreReport(archive, data, manifest, restored, before, upgraded)


def _open_as_usual(settings: Settings, before: Path | None, version: int) -> int | None:
    """Open the restored gallery as every command does: an older schema is upgraded (with its
    own copy beside it). Returns the version it was upgraded from, if it was."""
    from facelens.errors import FaceLensError
    from facelens.gallery.sqlite import SQLiteGallery

    try:
        SQLiteGallery(settings.gallery_path).close()
    except FaceLensError as exc:
        kept = f"; the files it replaced are in {before}" if before else ""
        exc.message = (
            f"The backup was restored into {settings.data_dir}{kept}, but opening its gallery "
            f"failed: {exc.message}"
        )
        raise
    return version if version < LATEST else None
