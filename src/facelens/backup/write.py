"""``facelens backup``: the data directory's databases copied (SQLite's online backup, one
step each) and archived beside the target's name, then renamed into place."""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import json
import os
import secrets
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from facelens import __version__
from facelens.backup import DATABASES, FORMAT, FORMAT_VERSION, MANIFEST, describe, holding
from facelens.errors import GalleryDamaged, InputPathError, StorageError
from facelens.models.weights import sha256_of
from facelens.settings import GALLERY_FILE, Settings
from facelens.storage.errors import (
    damage_message,
    not_ours,
    os_storage_error,
)
from facelens.storage.sqlite import connect_read_only, online_copy, quick_check_file


@dataclass(frozen=True, slots=True)
class BackupReport:
    target: Path
    size: int  # bytes of the archive
    manifest: dict[str, Any]


def _online_copy(source: Path, target: Path) -> None:
    """SQLite's online backup of ``source`` (read only: it may be in use) into the new file
    ``target`` (mode 0600), in one step, so the copy is one consistent state of the file."""
    what = holding(source.name)
    try:
        reader = connect_read_only(source, what)
    except GalleryDamaged:  # told as the gallery's: say which file it is
        if source.name == GALLERY_FILE:
            raise
        raise GalleryDamaged(_damaged(source, ["not a database, or a damaged one"])) from None
    try:
        online_copy(
            reader,
            target,
            lambda _: GalleryDamaged(_damaged(source, ["not a database, or a damaged one"])),
            what=what,
        )
    finally:
        reader.close()


def _damaged(source: Path, problems: list[str]) -> str:
    if source.name == GALLERY_FILE:
        return damage_message(source, problems) + " No backup was written."
    return (
        f"{source} is damaged ({problems[0]}); no backup was written. Move it away (the "
        "events and streams in it are lost; facelens makes a new one) and back up again."
    )


def check_target(target: Path) -> None:
    """Before any work: ``target`` is new and its folder can take it (made if missing)."""
    if target.exists() or target.is_symlink():
        raise InputPathError(f"{target}: already exists; give a new file name.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputPathError(
            f"{target.parent}: cannot create the folder ({exc.strerror or exc})."
        ) from None
    if not target.parent.is_dir():
        raise InputPathError(f"{target.parent}: not a folder.")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        why = not_ours(target) or "permission denied"
        raise InputPathError(f"{target.parent}: cannot write there: {why}.")


def _publish(partial: Path, target: Path) -> None:
    """Give the finished ``partial`` its name ``target``, never replacing a file that appeared
    there meanwhile (a hard link is atomic and refuses to; a filesystem without hard links gets
    a rename after one more look)."""
    try:
        os.link(partial, target)
    except FileExistsError:
        raise InputPathError(f"{target}: already exists; give a new file name.") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise os_storage_error(target, exc, "write the backup") from None
        if target.exists():
            raise InputPathError(f"{target}: already exists; give a new file name.") from None
        os.replace(partial, target)
    else:
        partial.unlink()
    with contextlib.suppress(OSError):  # the rename made durable; not all filesystems can
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _write_archive(partial: Path, manifest: dict[str, Any], copies: dict[str, Path]) -> None:
    """The tar.gz: the manifest first (restore reads it before anything else), then the copies."""
    fd = os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as raw:
        with (
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as packed,
            tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            text = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
            tar.addfile(_member(MANIFEST, len(text)), io.BytesIO(text))
            for name, path in copies.items():
                with path.open("rb") as handle:
                    tar.addfile(_member(name, path.stat().st_size), handle)
        raw.flush()
        os.fsync(raw.fileno())


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(datetime.now(UTC).timestamp())
    return info


def write_backup(settings: Settings, target: Path) -> BackupReport:
    """Write every database of ``settings.data_dir`` to the new archive ``target``."""
    data = settings.data_dir
    if not (data / GALLERY_FILE).is_file():
        raise StorageError(f"There is no gallery at {data / GALLERY_FILE}: nothing to back up.")
    target = target.absolute()
    check_target(target)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:
        # The copies wait beside the archive, in a folder of the owner's only.
        with tempfile.TemporaryDirectory(prefix=".facelens-backup-", dir=target.parent) as work:
            copies: dict[str, Path] = {}
            files: dict[str, dict[str, Any]] = {}
            for name in DATABASES:
                source = data / name
                if not source.is_file():
                    continue
                copy = Path(work) / name
                _online_copy(source, copy)
                files[name] = {"size": copy.stat().st_size, "sha256": sha256_of(copy)}
                problems = quick_check_file(copy, holding(name))
                if problems:
                    raise GalleryDamaged(_damaged(source, problems))
                copies[name] = copy
            manifest: dict[str, Any] = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "facelens_version": __version__,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "data_dir": str(data),
                "files": files,
                **{name.split(".")[0]: describe(name, path) for name, path in copies.items()},
            }
            try:
                _write_archive(partial, manifest, copies)
            except OSError as exc:
                raise os_storage_error(target, exc, "write the backup") from None
            _publish(partial, target)
    except OSError as exc:  # the work folder: made or removed
        raise os_storage_error(target.parent, exc, "write the backup into") from None
    finally:
        partial.unlink(missing_ok=True)
    return BackupReport(target, target.stat().st_size, manifest)
