"""The schema revision this code writes, and where a catalog records its own.

Kept apart from :mod:`catalog.db.schema` (the SQLAlchemy models) so that
the instance side can check a SQLite catalog's revision with the stdlib
``sqlite3`` before it records into it (:mod:`catalog.db.sqlite_recorder`),
without importing SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Sequence

from catalog.errors import VersionTableError

#: The schema revision the models of :mod:`catalog.db.schema` describe: the
#: newest migration in ``migrations/versions`` (a test holds the two
#: together). Opening a catalog compares its recorded revision with this,
#: without importing Alembic.
SCHEMA_REVISION = "0003"

#: Alembic's version table, under a name of our own so that a catalog can live
#: in a PostgreSQL database that other Alembic-managed applications use too.
VERSION_TABLE = "muscle_catalog_alembic_version"


def several_revisions_error(revisions: Sequence[object], location: str) -> VersionTableError:
    """The error for a version table with more than one row (a damaged catalog).

    Alembic keeps exactly one row per branch, and this schema has one branch:
    several rows mean the table was edited by hand, or two tools migrated
    the same database, and no revision can be trusted. Kept here, free of
    SQLAlchemy, because the instance side's light recorder
    (:mod:`catalog.db.sqlite_recorder`) refuses such a catalog too, before
    writing anything.

    Args:
        revisions: The rows' revisions.
        location: The catalog, as messages name it.
    """
    found = ", ".join(sorted(str(revision) for revision in revisions))
    return VersionTableError(
        f"The catalog {location} is damaged: its version table {VERSION_TABLE} holds "
        f"{len(revisions)} revisions ({found}) instead of one, so its schema is unknown; "
        "nothing was changed. Restore the catalog from a backup, or keep only the row of the "
        f"revision its tables are at (this release writes {SCHEMA_REVISION}): "
        f"DELETE FROM {VERSION_TABLE} WHERE version_num <> '<that revision>'."
    )


def empty_version_table_error(location: str) -> VersionTableError:
    """The error for a catalog whose tables exist but whose version table has no row."""
    return VersionTableError(
        f"The catalog {location} is damaged: it has a snapshots table, but its version table "
        f"{VERSION_TABLE} is empty, so its schema is unknown; nothing was changed. Restore the "
        "catalog from a backup, or record the revision its tables are at (this release writes "
        f"{SCHEMA_REVISION}): INSERT INTO {VERSION_TABLE} (version_num) VALUES ('<revision>')."
    )
