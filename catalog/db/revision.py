"""The schema revision this code writes, and where a catalog records its own.

Kept apart from :mod:`catalog.db.schema` (the SQLAlchemy models) so that
the instance side can check a SQLite catalog's revision with the stdlib
``sqlite3`` before it records into it (:mod:`catalog.db.sqlite_recorder`),
without importing SQLAlchemy.
"""

from __future__ import annotations

#: The schema revision the models of :mod:`catalog.db.schema` describe: the
#: newest migration in ``migrations/versions`` (a test holds the two
#: together). Opening a catalog compares its recorded revision with this,
#: without importing Alembic.
SCHEMA_REVISION = "0003"

#: Alembic's version table, under a name of our own so that a catalog can live
#: in a PostgreSQL database that other Alembic-managed applications use too.
VERSION_TABLE = "muscle_catalog_alembic_version"
