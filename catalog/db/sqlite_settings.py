"""How every SQLite connection to a catalog is set up, whichever library opens it.

Two code paths open SQLite catalogs: SQLAlchemy's engine
(:mod:`catalog.db.engine`) for everything, and the stdlib ``sqlite3``
connection of :mod:`catalog.db.sqlite_recorder`, which records an instance's
saves without importing SQLAlchemy. Both must hold the same lock discipline
and journal settings, or writers of the two kinds would block or lose each
other's work; so the settings are defined once, here, with no SQLAlchemy
import. Why they are what they are is explained in :mod:`catalog.db.engine`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

#: Seconds a writer waits for the catalog's write lock before giving up, by
#: default: ``muscle-catalog`` commands, the registry and scripts.
SQLITE_BUSY_TIMEOUT_S = 60.0

#: The default wait of an instance's save (:mod:`catalog.instance`): the
#: simulation is blocked while it waits, and the file is already safe on disk,
#: so after this long the save gives up recording (see ``docs/saving.md``).
INSTANCE_LOCK_TIMEOUT_S = 10.0

#: Environment variable overriding both defaults above, in seconds.
LOCK_TIMEOUT_ENV = "MUSCLE_CATALOG_LOCK_TIMEOUT"

#: Environment variable forcing (``1``) or disabling (``0``) network-filesystem mode.
NETWORK_FS_ENV = "MUSCLE_CATALOG_NETWORK_FS"

_NETWORK_FS_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smbfs",
        "smb3",
        "lustre",
        "gpfs",
        "beegfs",
        "fuse.sshfs",
        "ceph",
        "fuse.ceph",
        "glusterfs",
        "fuse.glusterfs",
        "9p",
        "afs",
        "panfs",
        "pvfs2",
        "orangefs",
        "wekafs",
    }
)


def is_network_filesystem(path: Path) -> bool:
    """Tell whether ``path`` lives on a network filesystem, from ``/proc/mounts``.

    Args:
        path: A file or directory (need not exist yet; its parent is used).

    Returns:
        True if the longest mount point containing it has a network filesystem
        type; False if unknown (no /proc, e.g. on macOS).
    """
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return False
    target = path.absolute()
    while not target.exists() and target != target.parent:
        target = target.parent
    target = target.resolve()
    best_len, best_type = -1, ""
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        contains = target == Path(mount_point) or Path(mount_point) in target.parents
        if contains and len(mount_point) > best_len:
            best_len, best_type = len(mount_point), fields[2]
    return best_type in _NETWORK_FS_TYPES


def network_mode(db_file: Path, network_filesystem: bool | None) -> bool:
    """Whether a catalog file gets the network-filesystem journal (DELETE, synchronous FULL).

    Args:
        db_file: The catalog file.
        network_filesystem: Force (True) or disable (False); None follows
            :data:`NETWORK_FS_ENV`, else detects it.
    """
    if network_filesystem is not None:
        return network_filesystem
    forced = os.environ.get(NETWORK_FS_ENV, "").strip().lower()
    if forced in {"1", "true", "yes", "on"}:
        return True
    if forced in {"0", "false", "no", "off"}:
        return False
    return is_network_filesystem(db_file)


def lock_timeout(default: float = SQLITE_BUSY_TIMEOUT_S) -> float:
    """Seconds a catalog writer waits for the write lock: :data:`LOCK_TIMEOUT_ENV`, or ``default``.

    Bounding the wait is what turns "the catalog is locked by another
    process" from a hang into an error that says so.

    Raises:
        SettingError: The variable is set to something other than a number of
            seconds >= 0.
    """
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        from catalog.errors import SettingError

        raise SettingError(
            f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds: set it to e.g. 10 "
            "(how long a save waits for a locked catalog), or unset it for the default "
            f"{default:g}."
        )
    return seconds


def apply_busy_timeout(dbapi_connection: Any, seconds: float = SQLITE_BUSY_TIMEOUT_S) -> None:
    """Let a connection wait for the write lock instead of failing (writes nothing)."""
    dbapi_connection.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")


def apply_reader_pragmas(
    dbapi_connection: Any, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S
) -> None:
    """Set up a ``sqlite3`` connection that may only read: busy timeout and foreign keys.

    Neither writes a byte. The journal mode is left as the file has it:
    switching it rewrites the file's header, which a command that only reads
    (or a file that is not a catalog, about to be refused) must never see.

    Args:
        dbapi_connection: The ``sqlite3`` connection.
        busy_timeout_s: Seconds to wait for a lock (see :func:`lock_timeout`).
    """
    apply_busy_timeout(dbapi_connection, busy_timeout_s)
    dbapi_connection.execute("PRAGMA foreign_keys = ON")


def apply_journal_mode(dbapi_connection: Any, *, wal: bool) -> None:
    """Set the journal for writing: WAL with ``synchronous=NORMAL``, else DELETE with FULL.

    Called by writers only, before their first write transaction (outside
    any transaction, as SQLite requires); the mode is stored in the file, so
    it holds for every later connection too.

    Args:
        dbapi_connection: The ``sqlite3`` connection, outside any transaction.
        wal: Use the write-ahead log (False on network filesystems).
    """
    if wal:
        dbapi_connection.execute("PRAGMA journal_mode = WAL")
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")
    else:
        dbapi_connection.execute("PRAGMA journal_mode = DELETE")
        dbapi_connection.execute("PRAGMA synchronous = FULL")


def apply_connection_pragmas(
    dbapi_connection: Any, *, wal: bool, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S
) -> None:
    """Set up a ``sqlite3`` connection that will write, as every catalog writer must be.

    Busy timeout, foreign keys enforced, and the journal: a write-ahead log
    with ``synchronous=NORMAL``, or on a network filesystem (``wal=False``)
    ``journal_mode=DELETE`` with ``synchronous=FULL``. Switching the journal
    mode rewrites the file's header, so callers that must not change a file
    (one at a revision they will refuse, or one they only read) check it
    first, or use :func:`apply_reader_pragmas`.

    Args:
        dbapi_connection: The ``sqlite3`` connection, outside any transaction.
        wal: Use the write-ahead log.
        busy_timeout_s: Seconds to wait for the write lock (see :func:`lock_timeout`).
    """
    apply_reader_pragmas(dbapi_connection, busy_timeout_s)
    apply_journal_mode(dbapi_connection, wal=wal)
