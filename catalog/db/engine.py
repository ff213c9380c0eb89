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
* a busy timeout lets writers queue instead of failing;
* only writers set the journal mode (before a connection's first write
  transaction): switching it rewrites the file's header, which a command
  that only reads must never do, least of all to a file it then refuses.

A catalog that cannot be written (or that the caller only reads) gets a
read-only engine: SQLite opens it with ``mode=ro`` and every transaction is
a plain ``BEGIN`` (see :mod:`catalog.db.sqlite_file`).

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

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL

from catalog.db.sqlite_file import is_writable, read_only_uri
from catalog.db.sqlite_settings import (
    NETWORK_FS_ENV,
    SQLITE_BUSY_TIMEOUT_S,
    apply_journal_mode,
    apply_reader_pragmas,
    is_network_filesystem,
    lock_timeout,
    network_mode,
)
from catalog.errors import DatabaseDriverError
from catalog.location import display_location, sqlite_file

__all__ = [
    "NETWORK_FS_ENV",
    "READ_ONLY",
    "SQLITE_BUSY_TIMEOUT_S",
    "consistent_read",
    "create_catalog_engine",
    "is_network_filesystem",
]

#: Execution option marking a connection as read-only (plain ``BEGIN`` on SQLite).
READ_ONLY = "catalog_read_only"


def consistent_read(connection: Connection) -> Connection:
    """The connection, set up for a read that sees one committed state throughout.

    A read of several statements (a record's rows and children; the schema
    check's version table, then its table list) must not see a writer's
    commit between them. SQLite gives that to any transaction (its WAL
    snapshot is taken at the first read and held to the end); PostgreSQL's
    default READ COMMITTED does not, so there the read runs at REPEATABLE
    READ, one snapshot for the whole transaction. Neither blocks writers,
    and on SQLite the transaction is a plain ``BEGIN`` (:data:`READ_ONLY`).
    """
    options: dict[str, Any] = {READ_ONLY: True}
    if connection.dialect.name != "sqlite":
        options["isolation_level"] = "REPEATABLE READ"
    return connection.execution_options(**options)


#: The backends a catalog can live in (SQLAlchemy backend names).
SUPPORTED_BACKENDS = ("sqlite", "postgresql")

#: What to install for PostgreSQL's driver.
POSTGRES_EXTRA = "pip install 'muscle-snapshot-catalog[postgres]'"

#: Key in a pooled connection's ``info``: its journal mode is set for writing.
_JOURNAL_SET = "catalog_journal_set"


def create_catalog_engine(
    url: URL,
    *,
    network_filesystem: bool | None = None,
    read_only: bool = False,
    lock_timeout_s: float | None = None,
) -> Engine:
    """Create an engine for a catalog URL with the right per-backend settings.

    Args:
        url: The catalog URL (see :func:`catalog.location.to_url`).
        network_filesystem: Force (True) or disable (False) the network
            filesystem journal mode for SQLite; None detects it.
        read_only: SQLite: never write: every transaction is a plain
            ``BEGIN`` and the journal mode is left as it is; a file this
            process cannot write is opened with ``mode=ro`` (as immutable when
            it cannot be read otherwise, see :mod:`catalog.db.sqlite_file`).
        lock_timeout_s: Seconds a statement waits for a lock held by another
            process before failing (SQLite's busy timeout, PostgreSQL's
            ``lock_timeout``); None: ``MUSCLE_CATALOG_LOCK_TIMEOUT``, else
            :data:`SQLITE_BUSY_TIMEOUT_S`.

    Returns:
        The engine. On SQLite, transactions begin with ``BEGIN IMMEDIATE``
        unless the connection has the :data:`READ_ONLY` execution option (or
        the engine is read-only), and the journal mode is set before a
        connection's first write transaction, never by readers.

    Raises:
        DatabaseDriverError: The backend is not SQLite or PostgreSQL, or its
            driver is not installed; the message says what to install.
    """
    seconds = lock_timeout() if lock_timeout_s is None else lock_timeout_s
    backend = url.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise DatabaseDriverError(
            f"Cannot use the catalog {display_location(url)}: the {backend} backend is not "
            "supported; a catalog lives in a SQLite file or a PostgreSQL database "
            "(postgresql+psycopg://user@host/db)."
        )
    try:
        if backend == "sqlite":
            return _sqlite_engine(
                url,
                network_filesystem=network_filesystem,
                read_only=read_only,
                busy_timeout_s=seconds,
            )
        engine = create_engine(url, pool_pre_ping=True)
    except ImportError as exc:
        raise DatabaseDriverError(_missing_driver(url, exc)) from exc
    _configure_postgresql(engine, lock_timeout_s=seconds)
    return engine


def _missing_driver(url: URL, exc: ImportError) -> str:
    driver = url.get_driver_name()
    where = f"Cannot use the catalog {display_location(url)}"
    if url.get_backend_name() == "postgresql" and driver == "psycopg":
        return f"{where}: its driver psycopg is not installed. Install it with {POSTGRES_EXTRA}."
    if url.get_backend_name() == "postgresql":
        return (
            f"{where}: its driver {driver} is not installed. Name the psycopg driver in the "
            f"URL (postgresql+psycopg://...) and install it with {POSTGRES_EXTRA}, "
            f"or install {driver}."
        )
    return f"{where}: its database driver is not installed ({exc})."


def _sqlite_engine(
    url: URL, *, network_filesystem: bool | None, read_only: bool, busy_timeout_s: float
) -> Engine:
    db_file = sqlite_file(url)
    connect_args: dict[str, Any] = {"timeout": busy_timeout_s}
    if read_only and db_file is not None and not is_writable(db_file):
        # A file we may write is read through an ordinary connection that never
        # writes: SQLite then removes the -wal and -shm files it made when it
        # closes, which a mode=ro connection cannot do.
        url = URL.create("sqlite", database=read_only_uri(db_file), query={"uri": "true"})
    network = db_file is not None and network_mode(db_file, network_filesystem)
    engine = create_engine(url, connect_args=connect_args)
    _configure_sqlite(
        engine,
        wal=db_file is not None and not network,
        read_only=read_only,
        busy_timeout_s=busy_timeout_s,
    )
    return engine


def _configure_sqlite(engine: Engine, *, wal: bool, read_only: bool, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself; pysqlite's
        # own implicit transactions would always be deferred.
        dbapi_connection.isolation_level = None
        apply_reader_pragmas(dbapi_connection, busy_timeout_s)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if read_only or connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
            return
        if not connection.info.get(_JOURNAL_SET):
            apply_journal_mode(connection.connection.dbapi_connection, wal=wal)
            connection.info[_JOURNAL_SET] = True
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
