"""Alembic migrations of the snapshot catalog schema, packaged as ``catalog.migrations``."""
