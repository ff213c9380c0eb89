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
    lock_timeout,
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


def create_catalog_engine(
    url: URL, *, network_filesystem: bool | None = None, lock_timeout_s: float | None = None
) -> Engine:
    """Create an engine for a catalog URL with the right per-backend settings.

    Args:
        url: The catalog URL (see :func:`catalog.location.to_url`).
        network_filesystem: Force (True) or disable (False) the network
            filesystem journal mode for SQLite; None detects it.
        lock_timeout_s: Seconds a statement waits for a lock held by another
            process before failing (SQLite's busy timeout, PostgreSQL's
            ``lock_timeout``); None: ``MUSCLE_CATALOG_LOCK_TIMEOUT``, else
            :data:`SQLITE_BUSY_TIMEOUT_S`.

    Returns:
        The engine. On SQLite, transactions begin with ``BEGIN IMMEDIATE``
        unless the connection has the :data:`READ_ONLY` execution option.
    """
    seconds = lock_timeout() if lock_timeout_s is None else lock_timeout_s
    backend = url.get_backend_name()
    if backend == "sqlite":
        db_file = sqlite_file(url)
        network = db_file is not None and network_mode(db_file, network_filesystem)
        engine = create_engine(url, connect_args={"timeout": seconds})
        _configure_sqlite(engine, wal=db_file is not None and not network, busy_timeout_s=seconds)
        return engine
    engine = create_engine(url, pool_pre_ping=True)
    if backend == "postgresql":
        _configure_postgresql(engine, lock_timeout_s=seconds)
    return engine


def _configure_sqlite(engine: Engine, *, wal: bool, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself; pysqlite's
        # own implicit transactions would always be deferred.
        dbapi_connection.isolation_level = None
        apply_connection_pragmas(dbapi_connection, wal=wal, busy_timeout_s=busy_timeout_s)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _configure_postgresql(engine: Engine, *, lock_timeout_s: float) -> None:
    """Bound every wait for a lock (a run's row lock, the schema lock), as SQLite's busy timeout.

    Set per connection with ``SET`` (committed at once) rather than through
    the URL's ``options``, which the caller may use already (``search_path``).
    """
    # PostgreSQL reads 0 as "wait forever"; SQLite's 0 means "do not wait".
    milliseconds = max(1, round(lock_timeout_s * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"SET lock_timeout = {milliseconds}")
        finally:
            cursor.close()
        dbapi_connection.commit()
