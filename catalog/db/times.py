"""Stored times back as aware UTC datetimes, for every path that reads them.

The catalog stores every time in UTC. PostgreSQL gives them back aware;
SQLite gives them back naive through SQLAlchemy, and as text (with or
without a ``+00:00`` zone, as the ORM and the ``sqlite3`` adapter spell them)
through the driver. One function turns each of those into the same aware
datetime, so records read by any path (the ORM, the driver, plain
``sqlite3``, a catalog copy) compare equal. Standard library only, so the
``sqlite3``-only readers can use it without importing SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt


def utc_time(value: dt.datetime | str) -> dt.datetime:
    """A stored time as an aware UTC datetime, whether the driver gave text or a datetime."""
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
