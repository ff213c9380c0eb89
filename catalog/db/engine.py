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
``network_filesystem`` argument. The settings themselves are in
:mod:`catalog.db.sqlite_settings`, shared with the ``sqlite3`` connection of
:mod:`catalog.db.sqlite_recorder`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL

from catalog.db.sqlite_settings import (
    NETWORK_FS_ENV,
    SQLITE_BUSY_TIMEOUT_S,
    apply_connection_pragmas,
    is_network_filesystem,
    network_mode,
)
from catalog.location import sqlite_file

__all__ = [
    "NETWORK_FS_ENV",
    "READ_ONLY",
    "SQLITE_BUSY_TIMEOUT_S",
    "create_catalog_engine",
    "is_network_filesystem",
]

#: Execution option marking a connection as read-only (plain ``BEGIN`` on SQLite).
READ_ONLY = "catalog_read_only"


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
        network = db_file is not None and network_mode(db_file, network_filesystem)
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
        apply_connection_pragmas(dbapi_connection, wal=wal)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
