"""Storage failures told apart and said in our words: damage (the file's content) from a full
disk, a read-only filesystem, permissions, locks and I/O errors (where the file is fine), each
with what to do, never advising to discard a file that is not damaged."""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from pathlib import Path

from facelens.errors import GalleryDamaged, StorageError

# SQLite's primary result codes (the low byte of an extended code such as SQLITE_IOERR_SHMSIZE).
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR = 3, 5, 6, 8, 10
_CORRUPT, _FULL, _CANTOPEN, _NOTADB = 11, 13, 14, 26
# Failures to reach the file, which say nothing about its content.
_UNREACHABLE = frozenset({_PERM, _READONLY, _IOERR, _FULL, _CANTOPEN})


def _primary(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def is_damage(exc: sqlite3.Error) -> bool:
    """SQLite found the file malformed or not a database (SQLITE_CORRUPT, SQLITE_NOTADB): its
    content is damaged. A full disk, a read-only filesystem or an I/O error is not damage."""
    code = _primary(exc)
    if code is None:  # raised by Python's sqlite3 module itself: only its text tells
        text = str(exc)
        return "malformed" in text or "not a database" in text
    return code in (_CORRUPT, _NOTADB)


def damage_message(path: Path, problems: list[str], what: str = "Gallery") -> str:
    """What to say of a damaged file (``what`` it holds), and what to do: restore or move
    away, never write."""
    more = f", and {len(problems) - 1} more problems" if len(problems) > 1 else ""
    state = (
        f"is not a facelens {what.lower()} or is damaged"
        if any("not a database" in p for p in problems)
        else "is damaged"
    )
    if what != "Gallery":  # the event log: the people are in the gallery, another file
        return (
            f"The {what.lower()} {path} {state} ({problems[0]}{more}); nothing more is "
            "written to it. Restore it from a backup ('facelens backup' makes one, 'facelens "
            "restore' puts it back; stop the server first), or move it away to start afresh "
            "(the gallery, a file of its own, keeps its people)."
        )
    return (
        f"The gallery {path} {state} ({problems[0]}{more}); nothing more is written to it. "
        "Restore it from a backup ('facelens gallery backup' makes one; stop the server "
        "first), or move it away to start afresh; 'facelens gallery check' lists what is wrong."
    )


_NOT_DAMAGE = "keep the file: this is no sign of damage"
_NEARLY_FULL_BYTES = 1 << 20  # SQLite fails to grow a file or make its -shm below this


def _disk_state(path: Path) -> str | None:
    """'read only' or 'full' when the filesystem holding ``path`` is, else None (SQLite's I/O
    errors do not say which: SQLITE_IOERR_SHMSIZE is what a full disk gives, for one)."""
    try:
        found = os.statvfs(path.parent)
    except OSError:
        return None
    if found.f_flag & os.ST_RDONLY:
        return "read only"
    return "full" if found.f_bavail * found.f_frsize < _NEARLY_FULL_BYTES else None


def not_ours(path: Path) -> str | None:
    """Why this process may not write ``path`` (a file, or the folder to hold it) and what to
    do: whose it is and whose we are, with the ``chown`` that fixes it. None if it may.

    Containers meet this first: a host folder bind-mounted as root's, or an image run as an
    arbitrary uid (OpenShift) on a volume another uid made."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # the folder to be made in
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        culprit = folder
    elif path.exists() and not os.access(path, os.W_OK):
        culprit = path
    else:
        return None
    try:
        st = culprit.stat()
    except OSError:
        return None
    uid, gid = os.geteuid(), os.getegid()
    fix = folder if culprit == path else culprit
    return (
        f"{culprit} belongs to uid {st.st_uid} and gid {st.st_gid} (mode "
        f"{stat.S_IMODE(st.st_mode):o}) and this process runs as uid {uid}, gid {gid}, which "
        f"may not write it: give the folder to this user ('chown -R {uid} {fix}'; for a "
        "container, the host folder mounted there), or to a group it is in ('chgrp -R "
        f"{gid} {fix} && chmod -R g+rwX {fix}'), or choose another --data-dir / "
        "FACELENS_DATA_DIR"
    )


def storage_error(path: Path, exc: sqlite3.Error, what: str = "Gallery") -> StorageError:
    """Our error for a failure of SQLite on ``path`` (``what`` it holds: "Gallery", "Event
    log"): :class:`GalleryDamaged` for damage, else a :class:`StorageError` that says what to
    fix and never advises discarding the file."""
    text = str(exc)
    if is_damage(exc):
        return GalleryDamaged(damage_message(path, [text], what))
    code = _primary(exc)
    name = getattr(exc, "sqlite_errorname", None) or text
    if code is None:  # raised by Python's sqlite3 module itself: only its text tells
        code = _FULL if "full" in text else _READONLY if "readonly" in text else None
    disk = _disk_state(path) if code in _UNREACHABLE else None
    ownership = not_ours(path) if code in (_READONLY, _CANTOPEN, _PERM) else None
    if code == _FULL or disk == "full":
        hint = f"the disk is full; free some space and run the command again ({_NOT_DAMAGE})"
    elif ownership is not None and disk is None:
        hint = ownership
    elif code == _READONLY or disk == "read only":
        hint = (
            "it is read only (a read-only filesystem or mount, or its permissions); make it "
            f"writable or choose another --data-dir ({_NOT_DAMAGE})"
        )
    elif code in (_CANTOPEN, _PERM):
        hint = (
            "it cannot be opened (its permissions or its folder's: SQLite also needs to make "
            "its -wal and -shm files beside it); fix that or choose another --data-dir"
        )
    elif code == _IOERR:
        hint = (
            "the disk could not be read or written (a failing device, or a network share that "
            f"went away); fix the storage and run again ({_NOT_DAMAGE}; 'facelens gallery "
            "check' tells afterwards)"
        )
    elif code in (_BUSY, _LOCKED):
        hint = "another process holds it locked for longer than 30 s; run the command again"
    else:
        hint = text
    return StorageError(f"{what} {path}: {hint} ({text}; {name}).")


def os_storage_error(path: Path, exc: OSError, doing: str) -> StorageError:
    """Our error for an operating-system failure ``doing`` something to ``path``."""
    hints = {
        errno.ENOSPC: "the disk is full; free some space and run the command again",
        errno.EDQUOT: "the disk quota is used up; free some space and run the command again",
        errno.EROFS: "the filesystem is read only; choose a writable place",
        errno.EACCES: "permission denied; fix its permissions or choose another place",
        errno.EPERM: "permission denied; fix its permissions or choose another place",
    }
    hint = hints.get(exc.errno or 0, exc.strerror or str(exc))
    return StorageError(f"Cannot {doing} {path}: {hint}.")
