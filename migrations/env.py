"""Alembic environment for the snapshot catalog.

Used both by ``muscle-catalog upgrade`` / :func:`catalog.open_catalog` (which
hand over an open connection in ``config.attributes["connection"]``, so the
schema check and the upgrade happen in one locked transaction) and by the
plain ``alembic`` command run from the repository (which builds an engine
from ``sqlalchemy.url`` in ``alembic.ini`` or ``MUSCLE_SNAPSHOT_CATALOG``).
Upgrades of existing catalogs (``muscle-catalog upgrade``, and the
``alembic`` command here) run in
:func:`catalog.db.versioning.migration_transaction`, which on SQLite keeps
batch-mode table rebuilds from firing ``ON DELETE`` actions;
:func:`catalog.open_catalog` only ever migrates an empty database.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from catalog.db.engine import create_catalog_engine
from catalog.db.schema import VERSION_TABLE, Base
from catalog.db.versioning import migration_transaction
from catalog.location import to_url

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on one we open."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = os.environ.get("MUSCLE_SNAPSHOT_CATALOG") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "No catalog to migrate: set MUSCLE_SNAPSHOT_CATALOG or sqlalchemy.url in alembic.ini"
        )
    engine = create_catalog_engine(to_url(url))
    try:
        with migration_transaction(engine) as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("Offline (--sql) migrations are not supported for the snapshot catalog")
run_migrations_online()
