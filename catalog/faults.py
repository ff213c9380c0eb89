"""What went wrong when a save touched the disk or the catalog, in words a user acts on.

A save fails in few ways that matter to whoever runs the simulation: the
disk is full, the filesystem is read-only, permission is denied, the catalog
is locked by another process, or the catalog file is damaged. The operating
system and the database drivers report these as numbers and terse strings
("database or disk is full", "disk I/O error", SQLSTATE 53100); this module
turns them into the cause in words and what to do about it, for
:mod:`catalog.store` (the ``.pack`` file) and :mod:`catalog.instance` (the
catalog row).

It also holds the documented choice of what a save does when the catalog
cannot record a file that is already safe on disk: ``MUSCLE_CATALOG_ON_ERROR``
(see ``docs/saving.md``).

Only the standard library is imported: every instance process loads this.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from catalog.errors import CatalogError, SettingError

#: Environment variable choosing what a save does when the catalog cannot record its file.
ON_ERROR_ENV = "MUSCLE_CATALOG_ON_ERROR"

#: Log a warning and go on (the default): the file is kept and can be imported later.
WARN = "warn"

#: Raise :class:`catalog.errors.CatalogWriteError` once the file is safely on disk.
RAISE = "raise"

DISK_FULL = "disk full"
QUOTA_EXCEEDED = "disk quota exceeded"
READ_ONLY_FS = "read-only file system"
PERMISSION_DENIED = "permission denied"

#: Below this many free bytes, an I/O error on a catalog file is taken for a full disk.
_NEARLY_FULL_BYTES = 1 << 20

_OS_CAUSES = {
    errno.ENOSPC: DISK_FULL,
    errno.EDQUOT: QUOTA_EXCEEDED,
    errno.EROFS: READ_ONLY_FS,
    errno.EACCES: PERMISSION_DENIED,
    errno.EPERM: PERMISSION_DENIED,
}


def on_error_policy() -> str:
    """What a save does when the catalog cannot record its file: :data:`WARN` or :data:`RAISE`.

    Raises:
        SettingError: :data:`ON_ERROR_ENV` is set to anything else.
    """
    raw = os.environ.get(ON_ERROR_ENV, "").strip()
    policy = raw.lower() or WARN
    if policy not in (WARN, RAISE):
        raise SettingError(
            f"{ON_ERROR_ENV}={raw!r} is not a choice: set it to 'warn' (the default: log and "
            "go on, the file is kept) or 'raise' (stop the save with an error)."
        )
    return policy


def os_cause(exc: OSError) -> str:
    """The cause of a failed file operation in words: ``disk full``, ``permission denied``, ..."""
    if exc.errno in _OS_CAUSES:
        return _OS_CAUSES[exc.errno]
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


def os_fix(cause: str, directory: Path) -> str:
    """What to do about a failed write of a file into ``directory``, given its cause."""
    if cause == DISK_FULL:
        return (
            f"Free space on the filesystem holding {directory}, or give the run a "
            "directory on another filesystem."
        )
    if cause == QUOTA_EXCEEDED:
        return f"Free space within your quota on the filesystem holding {directory}."
    if cause == READ_ONLY_FS:
        return (
            f"The filesystem holding {directory} is mounted read-only: remount it read-write, "
            "or give the run a directory on a writable filesystem."
        )
    if cause == PERMISSION_DENIED:
        return f"Make {directory} writable for this user, or give the run another directory."
    return f"Check free disk space and permissions of {directory}."


def _free_bytes(path: Path) -> int | None:
    """Bytes available to this user on the filesystem holding ``path``, or None if unknown."""
    target = path
    while not target.exists() and target != target.parent:
        target = target.parent
    try:
        stat = os.statvfs(target)
    except (OSError, AttributeError):  # pragma: no cover - no statvfs (Windows)
        return None
    return stat.f_bavail * stat.f_frsize


def on_read_only_fs(path: Path) -> bool:
    """Whether ``path`` is on a read-only mount (False when that cannot be told).

    A path that does not exist yet is judged by its nearest existing parent.
    """
    target = path
    while not target.exists() and target != target.parent:
        target = target.parent
    try:
        return bool(os.statvfs(target).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # pragma: no cover - no statvfs (Windows)
        return False


def catalog_failure(exc: BaseException, catalog_file: Path | None, lock_timeout_s: float) -> str:
    """Why a catalog could not record a snapshot, in words (no trailing period).

    Args:
        exc: What recording raised: a :class:`CatalogError` (already in
            words), a ``sqlite3`` error, a SQLAlchemy error wrapping a
            driver's, or an :class:`OSError`.
        catalog_file: The SQLite catalog file, or None (PostgreSQL).
        lock_timeout_s: How long the save waited for a lock.

    Returns:
        The cause, e.g. ``catalog locked by another process for 10 s`` or
        ``disk full (SQLite: database or disk is full)``.
    """
    if isinstance(exc, CatalogError):
        return _one_line(exc)
    driver = getattr(exc, "orig", None) or exc
    if isinstance(driver, sqlite3.Error):
        return _sqlite_failure(driver, catalog_file, lock_timeout_s)
    sqlstate = getattr(driver, "sqlstate", None)
    if isinstance(sqlstate, str):
        return _postgresql_failure(driver, sqlstate, lock_timeout_s)
    if isinstance(driver, OSError):
        return f"{os_cause(driver)} ({_one_line(driver)})"
    return _one_line(driver)


def _sqlite_failure(exc: sqlite3.Error, catalog_file: Path | None, lock_timeout_s: float) -> str:
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    said = f"SQLite: {_one_line(exc)}"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in str(exc):
        return (
            f"catalog locked by another process for {lock_timeout_s:g} s (the wait is set by "
            "MUSCLE_CATALOG_LOCK_TIMEOUT)"
        )
    if name == "SQLITE_FULL":
        return f"{DISK_FULL} ({said})"
    if name.startswith("SQLITE_IOERR"):
        free = _free_bytes(catalog_file) if catalog_file is not None else None
        if free is not None and free < _NEARLY_FULL_BYTES:
            return f"{DISK_FULL} ({free} bytes free; {said})"
        return f"disk I/O error ({said})"
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        if catalog_file is not None and on_read_only_fs(catalog_file):
            return f"{READ_ONLY_FS} ({said})"
        return f"{PERMISSION_DENIED}: the catalog file or its directory is not writable ({said})"
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or name.startswith("SQLITE_CORRUPT"):
        return (
            f"the catalog file is corrupt ({said}); restore it from a backup, or move it "
            "aside so that a new one is made"
        )
    return said


def _postgresql_failure(exc: BaseException, sqlstate: str, lock_timeout_s: float) -> str:
    said = f"PostgreSQL {sqlstate}: {_one_line(exc)}"
    if sqlstate in ("55P03", "40P01"):  # lock_not_available, deadlock_detected
        return (
            f"catalog locked by another process for {lock_timeout_s:g} s (the wait is set by "
            f"MUSCLE_CATALOG_LOCK_TIMEOUT; {said})"
        )
    if sqlstate == "53100":
        return f"{DISK_FULL} on the database server ({said})"
    if sqlstate == "25006":
        return f"the database is read-only ({said})"
    return said


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).rstrip(".")
    return text or type(exc).__name__
