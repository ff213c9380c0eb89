"""Engines for SQLite and PostgreSQL, set up the way a concurrent catalog needs.

Many instance processes of one run save snapshots into the same catalog at the
same moment, and a notebook may read it meanwhile. On SQLite that only works
reliably when:

* writers take the write lock when their transaction starts (``BEGIN
  IMMEDIATE``): a deferred transaction that reads and then writes fails with
  "database is locked" under contention, whatever the busy timeout, because
  SQLite cannot wait for a lock it would have to upgrade;
* readers use plain deferred transactions, so they never take a write lock;
* the journal is a write-ahead log (readers and one writer do not block each
  other) with ``synchronous=NORMAL``, durable across application crashes;
* a busy timeout lets writers queue instead of failing.

WAL needs shared memory between processes and does not work on network
filesystems (NFS, Lustre, GPFS, ...). There we fall back to
``journal_mode=DELETE`` with ``synchronous=FULL``. This is detected from
``/proc/mounts`` and can be forced either way with the
``MUSCLE_CATALOG_NETWORK_FS`` environment variable (``1``/``0``) or the
``network_filesystem`` argument.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL

from catalog.location import sqlite_file

#: Seconds a SQLite writer waits for the lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 60.0

#: Environment variable forcing (``1``) or disabling (``0``) network-filesystem mode.
NETWORK_FS_ENV = "MUSCLE_CATALOG_NETWORK_FS"

#: Execution option marking a connection as read-only (plain ``BEGIN`` on SQLite).
READ_ONLY = "catalog_read_only"

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


def _network_mode(db_file: Path, network_filesystem: bool | None) -> bool:
    if network_filesystem is not None:
        return network_filesystem
    forced = os.environ.get(NETWORK_FS_ENV, "").strip().lower()
    if forced in {"1", "true", "yes", "on"}:
        return True
    if forced in {"0", "false", "no", "off"}:
        return False
    return is_network_filesystem(db_file)


def create_catalog_engine(url: URL, *, network_filesystem: bool | None = None) -> Engine:
    """Create an engine for a catalog URL with the right per-backend settings.

    Args:
        url: The catalog URL (see :func:`catalog.location.to_url`).
        network_filesystem: Force (True) or disable (False) the network
            filesystem journal mode for SQLite; None detects it.

    Returns:
        The engine. On SQLite, transactions begin with ``BEGIN IMMEDIATE``
        unless the connection has the :data:`READ_ONLY` execution option.
    """
    backend = url.get_backend_name()
    if backend == "sqlite":
        db_file = sqlite_file(url)
        network = db_file is not None and _network_mode(db_file, network_filesystem)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        _configure_sqlite(engine, wal=db_file is not None and not network)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _configure_sqlite(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself; pysqlite's
        # own implicit transactions would always be deferred.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if wal:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        else:
            cursor.execute("PRAGMA journal_mode = DELETE")
            cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
