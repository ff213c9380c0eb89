"""Checking and upgrading a catalog's schema revision with Alembic.

Opening a catalog never changes an existing one behind the user's back:

* an empty database is created at the newest revision;
* a catalog at an older revision is refused with a message naming
  ``muscle-catalog upgrade`` (which backs a SQLite file up first);
* a catalog at a revision this code does not know was written by a newer
  release and is refused untouched.

The check and the creation happen in one write transaction (``BEGIN
IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so that the many
instances of a run that open a fresh catalog at the same moment create it
exactly once.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from catalog.db.engine import sqlite_file
from catalog.db.schema import VERSION_TABLE
from catalog.errors import CatalogTooNewError, CatalogTooOldError, SchemaVersionError

#: Arbitrary but fixed key for PostgreSQL's advisory lock around schema work.
_PG_SCHEMA_LOCK_KEY = 0x4D5553434C45  # "MUSCLE"


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("catalog.migrations")))
    return config


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    """Every schema revision this code knows."""
    script = ScriptDirectory.from_config(_alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def current_revision(connection: Connection) -> str | None:
    """The revision recorded in the catalog, or None if it has none."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _lock_schema(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK_KEY})


def _upgrade_on(connection: Connection) -> None:
    config = _alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def ensure_schema(engine: Engine, *, location: str, create: bool = True) -> None:
    """Make sure the catalog is at the head revision, creating it if it is empty.

    Args:
        engine: The catalog's engine.
        location: How to name the catalog in messages (path or URL without password).
        create: Create the schema in an empty database; if False an empty
            database is an error.

    Raises:
        CatalogTooOldError: The catalog needs ``muscle-catalog upgrade``.
        CatalogTooNewError: The catalog was written by a newer release.
        SchemaVersionError: The database has tables but is not a catalog.
    """
    head = head_revision()
    with engine.begin() as connection:
        _lock_schema(connection)
        revision = current_revision(connection)
        if revision == head:
            return
        if revision is None:
            if "snapshots" in inspect(connection).get_table_names():
                raise SchemaVersionError(
                    f"{location} has a 'snapshots' table but no {VERSION_TABLE} table, so it "
                    "is not a snapshot catalog (or it was damaged). Use another file or database."
                )
            if not create:
                raise SchemaVersionError(
                    f"{location} is not a snapshot catalog yet. Create it with "
                    f"`muscle-catalog --catalog {location} upgrade`, or import a run into it."
                )
            _upgrade_on(connection)
            return
        _raise_for_revision(revision, head, location)


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
        "muscle-snapshot-catalog); the catalog was not touched."
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
    """
    head = head_revision()
    with engine.connect() as connection:
        before = current_revision(connection)
        connection.rollback()
    if before == head:
        return before, head, None
    if before is not None and before not in known_revisions():
        _raise_for_revision(before, head, location)
    db_file = sqlite_file(engine.url)
    backup = backup_sqlite(db_file, before) if db_file and before is not None else None
    with engine.begin() as connection:
        _lock_schema(connection)
        _upgrade_on(connection)
    return before, head, backup
