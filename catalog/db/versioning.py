"""Checking and upgrading a catalog's schema revision with Alembic.

Opening a catalog never changes an existing one behind the user's back:

* an empty database is created at the newest revision;
* a catalog at an older revision is refused with a message naming
  ``muscle-catalog upgrade`` (which backs a SQLite file up first);
* a catalog at a revision this code does not know was written by a newer
  release and is refused untouched.

The check is a read-only transaction, so that opening a catalog (every
command, every save) neither waits for writers nor writes a byte; creating
the schema happens in one write transaction (``BEGIN IMMEDIATE`` on SQLite,
an advisory lock on PostgreSQL) that checks again, so that the many
instances of a run that open a fresh catalog at the same moment create it
exactly once.

The Alembic scripts are found beside the package: ``catalog/migrations`` in
an installed copy (the build maps the repository's top-level ``migrations/``
there), ``migrations/`` next to ``catalog/`` in a source checkout, so that a
checkout works without being installed.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from catalog.db.engine import consistent_read, create_catalog_engine
from catalog.db.revision import empty_version_table_error, several_revisions_error
from catalog.db.schema import SCHEMA_REVISION, VERSION_TABLE
from catalog.db.sqlite_file import CATALOG_TABLES
from catalog.errors import (
    CatalogError,
    CatalogTooNewError,
    CatalogTooOldError,
    NotACatalogError,
    SchemaVersionError,
)
from catalog.location import display_location, sqlite_file, to_url

if TYPE_CHECKING:
    from alembic.config import Config

#: Arbitrary but fixed key for PostgreSQL's advisory lock around schema work.
_PG_SCHEMA_LOCK_KEY = 0x4D5553434C45  # "MUSCLE"


#: A file that every copy of our migrations has (a landed revision is never
#: edited or removed), so that some other project's directory that happens
#: to be called ``migrations`` is never taken for ours.
_MIGRATIONS_MARKER = Path("versions") / "0001_initial_schema.py"


def _is_migrations_directory(directory: Path) -> bool:
    return (directory / "env.py").is_file() and (directory / _MIGRATIONS_MARKER).is_file()


@functools.cache
def migrations_directory() -> Path:
    """The directory of this package's Alembic scripts.

    Looked for on the filesystem first, relative to the package, because
    that works for an installed copy and for a plain source checkout alike;
    ``importlib.resources`` only knows the ``catalog.migrations`` package of
    an installed (or editable) copy, so it is the fallback.

    Raises:
        CatalogError: Neither place holds them (a broken installation).
    """
    package = Path(__file__).absolute().parent.parent
    installed, checkout = package / "migrations", package.parent / "migrations"
    for candidate in (installed, checkout):
        if _is_migrations_directory(candidate):
            return candidate
    try:
        resource = files("catalog.migrations")
    except (ImportError, TypeError):
        resource = None
    if isinstance(resource, Path) and _is_migrations_directory(resource):
        return resource
    raise CatalogError(
        "Cannot find the catalog's schema migrations: neither "
        f"{installed} (an installed copy) nor {checkout} (a source checkout) holds them. "
        "Reinstall muscle-snapshot-catalog, or use a complete checkout of it."
    )


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for our migrations, without any ``alembic.ini``.

    Args:
        connection: The connection to migrate on; ``migrations/env.py`` uses
            it (inside its transaction) instead of opening one of its own.

    Returns:
        The configuration, for ``alembic.command`` or ``ScriptDirectory``.
    """
    from alembic.config import Config

    config = Config()
    # Config options go through configparser interpolation: escape '%' in the path.
    config.set_main_option("script_location", str(migrations_directory()).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this code knows (the one its models describe).

    A constant rather than Alembic's answer, so that opening a catalog that
    is already up to date (every save, every command) does not import
    Alembic; a test holds it equal to the newest migration.
    """
    return SCHEMA_REVISION


def alembic_head_revision() -> str:
    """The newest revision among the migration scripts, as Alembic finds it."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise CatalogError(f"No schema migrations found in {migrations_directory()}")
    return head


def known_revisions() -> set[str]:
    """Every schema revision this code knows."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def current_revision(connection: Connection, location: str = "") -> str | None:
    """The revision recorded in the catalog, or None if it has none.

    Args:
        connection: A connection to the catalog.
        location: How to name the catalog in messages (default: its URL).

    Raises:
        VersionTableError: The version table holds more than one revision
            (a damaged catalog, or one that several tools migrated).
    """
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    if len(rows) > 1:
        name = location or connection.engine.url.render_as_string(hide_password=True)
        raise several_revisions_error([row[0] for row in rows], name)
    return str(rows[0][0]) if rows else None


def _lock_schema(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK_KEY})


def _upgrade_on(connection: Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), "head")


def migrate_empty(connection: Connection) -> None:
    """Run every migration on an empty database, in the caller's transaction.

    What creating a catalog means; :mod:`catalog.db.sqlite_head` replays its
    result on SQLite and regenerates that result with this.
    """
    _upgrade_on(connection)


def _create_schema(connection: Connection) -> None:
    """Create the head schema in an empty database (locked, in the caller's transaction).

    On SQLite the migrations' result is replayed (:mod:`catalog.db.sqlite_head`,
    a test holds it identical to what the migrations create) while it is the
    head revision's; otherwise, and on PostgreSQL, the migrations run. Either
    way the migrations must be there: an installation without them is broken
    (it could not upgrade), and says so at once (:func:`migrations_directory`).
    """
    from catalog.db import sqlite_head

    migrations_directory()
    if connection.dialect.name == "sqlite" and sqlite_head.available():
        sqlite_head.create_head_schema(connection.connection.dbapi_connection)
        return
    migrate_empty(connection)


def _sqlite_enforce_foreign_keys(connection: Connection, enforce: bool) -> None:
    # Straight on the driver connection: through SQLAlchemy the statement would
    # start a transaction first, inside which SQLite ignores this pragma.
    cursor = connection.connection.cursor()
    try:
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if enforce else 'OFF'}")
        cursor.execute("PRAGMA foreign_keys")
        row = cursor.fetchone()
    finally:
        cursor.close()
    if row is None or bool(row[0]) != enforce:
        raise SchemaVersionError("Could not switch SQLite's foreign key enforcement to migrate")


def _check_foreign_keys(connection: Connection, location: str) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        table, rowid, parent, _fk = broken[0]
        raise SchemaVersionError(
            f"Migrating the catalog {location} would leave {len(broken)} rows referring to "
            f"rows that do not exist (the first: {table} row {rowid}, into {parent}); "
            "nothing was changed."
        )


@contextmanager
def migration_transaction(engine: Engine, *, location: str = "") -> Iterator[Connection]:
    """One locked write transaction to run migrations in, committed on success.

    On SQLite, foreign keys are not enforced during it, and every foreign key
    is checked before the commit instead. Alembic's batch mode rebuilds a
    table by copying it, dropping the old one and renaming the copy; with
    enforcement on, dropping the old table first deletes its rows *with*
    their ``ON DELETE`` actions, which would empty every child table
    (CASCADE) or fail (RESTRICT). SQLite only switches enforcement outside a
    transaction, so it is switched off before ``BEGIN``, and the connection
    is discarded afterwards rather than returned to the pool without it.

    Args:
        engine: The catalog's engine.
        location: How to name the catalog in messages.

    Yields:
        The connection, in its transaction (pass it to :func:`alembic_config`).

    Raises:
        SchemaVersionError: On SQLite, the migrated data has dangling references.
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        try:
            if sqlite:
                _sqlite_enforce_foreign_keys(connection, False)
            with connection.begin():
                _lock_schema(connection)
                yield connection
                if sqlite:
                    _check_foreign_keys(connection, location or str(engine.url))
        finally:
            if sqlite:
                connection.invalidate()


def ensure_schema(engine: Engine, *, location: str, create: bool = True) -> None:
    """Make sure the catalog is at the head revision, creating it if it is empty.

    The revision is first read in a read-only transaction, which neither
    locks out writers nor writes a byte: opening an up-to-date catalog (every
    command, every save) or refusing one stays that cheap and harmless. Only
    an empty database that is to be created gets the locked write
    transaction, in which the check is repeated (another process may have
    created the schema meanwhile).

    Args:
        engine: The catalog's engine.
        location: How to name the catalog in messages (path or URL without password).
        create: Create the schema in an empty database; if False an empty
            database is an error.

    Raises:
        CatalogTooOldError: The catalog needs ``muscle-catalog upgrade``.
        CatalogTooNewError: The catalog was written by a newer release.
        NotACatalogError: The database holds catalog tables without a
            revision, a SQLite file holds other tables, or the database is
            empty and ``create`` is False.
    """
    head = head_revision()
    revision, tables = _stored_state(engine, location)
    if revision == head:
        return
    if revision is not None:
        _raise_for_revision(revision, head, location)
    check_can_create(tables, location, sqlite=engine.dialect.name == "sqlite", create=create)
    with engine.begin() as connection:
        _lock_schema(connection)
        revision = current_revision(connection, location)
        if revision == head:
            return
        if revision is None:
            _create_schema(connection)
            return
        _raise_for_revision(revision, head, location)


def _stored_state(engine: Engine, location: str) -> tuple[str | None, set[str]]:
    """The stored revision and, when there is none, the database's tables, read consistently.

    Both in one snapshot (:func:`~catalog.db.engine.consistent_read`), so that
    a process creating the catalog cannot commit between the two reads and
    make a half-seen new catalog look damaged. Read-only: the transaction is
    rolled back.
    """
    with engine.connect() as connection:
        connection = consistent_read(connection)
        revision = current_revision(connection, location)
        tables = set(inspect(connection).get_table_names()) if revision is None else set()
        connection.rollback()
    return revision, tables


def check_can_create(tables: set[str], location: str, *, sqlite: bool, create: bool) -> None:
    """Refuse to create a catalog in a database holding no catalog revision, unless it may be.

    A PostgreSQL database may hold other applications' tables (our version
    table has a name of its own); a SQLite file is one database, so one with
    other tables is someone else's file and stays untouched.

    Args:
        tables: The database's tables.
        location: How to name the catalog in messages.
        sqlite: Whether it is a SQLite file.
        create: Whether creating was asked for.

    Raises:
        VersionTableError: It holds catalog tables and an empty version table
            (a damaged catalog, not someone else's tables).
        NotACatalogError: It holds catalog tables without a version table, a
            SQLite file holds other tables, or ``create`` is False.
    """
    ours = tables & CATALOG_TABLES
    if ours and VERSION_TABLE in tables:
        raise empty_version_table_error(location)
    if ours:
        raise NotACatalogError(
            f"{location} has catalog tables ({', '.join(sorted(ours))}) but no {VERSION_TABLE} "
            "table, so it is not a snapshot catalog (or it was damaged); it was not touched. "
            "Use another file or database."
        )
    if sqlite and tables:
        shown = sorted(tables)
        listed = ", ".join(shown[:5]) + (", ..." if len(shown) > 5 else "")
        raise NotACatalogError(
            f"{location} is not a snapshot catalog: it is a SQLite database holding other "
            f"tables ({listed}); it was not touched. Choose another --catalog file."
        )
    if not create:
        raise NotACatalogError(
            f"{location} is not a snapshot catalog yet (it is empty). Create it with "
            f"`muscle-catalog --catalog {location} init`, or import a run into it."
        )


def _raise_for_revision(revision: str, head: str, location: str) -> None:
    if revision in known_revisions():
        raise CatalogTooOldError(
            f"The catalog {location} is at schema revision {revision}, older than this "
            f"release's {head}. Upgrade it with `muscle-catalog --catalog {location} upgrade` "
            "(SQLite files are backed up first); nothing was changed."
        )
    raise CatalogTooNewError(
        f"The catalog {location} is at schema revision {revision}, which this release "
        f"(newest revision {head}) does not know: it was written by a newer "
        "muscle-snapshot-catalog. Upgrade this package (pip install -U "
        "muscle-snapshot-catalog); the catalog was not touched. If no newer release ever "
        f"wrote it, its version table {VERSION_TABLE} was damaged: restore the catalog "
        "from a backup."
    )


def backup_sqlite(db_file: Path, revision: str | None) -> Path:
    """Copy a SQLite catalog consistently (the online backup API) beside itself.

    Args:
        db_file: The catalog file.
        revision: Its current revision, used in the backup's name.

    Returns:
        The backup's path, ``<name>.bak-<revision>-<UTC time>``.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    backup = db_file.with_name(f"{db_file.name}.bak-{revision or 'empty'}-{stamp}")
    source = sqlite3.connect(db_file)
    try:
        target = sqlite3.connect(backup)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    return backup


def upgrade_catalog(engine: Engine, *, location: str) -> tuple[str | None, str, Path | None]:
    """Upgrade a catalog to the head revision, backing a SQLite file up first.

    Args:
        engine: The catalog's engine.
        location: How to name the catalog in messages.

    Returns:
        ``(old revision, new revision, backup path or None)``.

    Raises:
        CatalogTooNewError: The catalog was written by a newer release.
        NotACatalogError: A SQLite file holds other tables.
    """
    head = head_revision()
    before, tables = _stored_state(engine, location)
    if before == head:
        return before, head, None
    if before is None:
        check_can_create(tables, location, sqlite=engine.dialect.name == "sqlite", create=True)
    if before is not None and before not in known_revisions():
        _raise_for_revision(before, head, location)
    db_file = sqlite_file(engine.url)
    backup = backup_sqlite(db_file, before) if db_file and before is not None else None
    with migration_transaction(engine, location=location) as connection:
        _upgrade_on(connection)
    return before, head, backup


def upgrade_location(path_or_url: str | os.PathLike[str]) -> tuple[str | None, str, Path | None]:
    """Upgrade the catalog at a path or URL to the head revision (``muscle-catalog upgrade``).

    An empty database is created at the head revision; a SQLite file at an
    older revision is backed up first.

    Args:
        path_or_url: The catalog, as a SQLite path or a SQLAlchemy URL.

    Returns:
        ``(old revision, new revision, backup path or None)``.

    Raises:
        CatalogTooNewError: The catalog was written by a newer release.
    """
    url = to_url(path_or_url)
    engine = create_catalog_engine(url)
    try:
        return upgrade_catalog(engine, location=display_location(url))
    finally:
        engine.dispose()
