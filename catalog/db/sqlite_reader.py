"""Listing a SQLite catalog's runs with the stdlib ``sqlite3`` alone, for ``muscle-catalog runs``.

Why this exists: importing SQLAlchemy costs about five times what starting a
click program costs, and ``muscle-catalog runs`` (the command people type
most, to see where a campaign stands) needs one query. For a SQLite catalog
at this release's revision this module answers it with that one query,
without importing SQLAlchemy; anything else (another revision, PostgreSQL,
a file that is not a catalog) is left to :class:`catalog.catalog.Catalog`,
which opens, refuses or explains as it always does.

It is a second reader of the same table, so what keeps it in step:

* it answers only at exactly :data:`catalog.db.revision.SCHEMA_REVISION`;
* a test compares its answer with :meth:`catalog.catalog.Catalog.runs`,
  field for field, on real catalogs.

Like :class:`catalog.catalog.Catalog` opened read-only, it never writes:
no journal mode is set, and a file this process cannot write is opened with
``mode=ro`` (see :mod:`catalog.db.sqlite_file`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from catalog.db.revision import SCHEMA_REVISION, VERSION_TABLE
from catalog.db.sqlite_file import reading_uri
from catalog.db.sqlite_settings import SQLITE_BUSY_TIMEOUT_S, apply_busy_timeout
from catalog.db.times import utc_time
from catalog.enums import RunStatus, Source
from catalog.records import RecordList, RunRecord

#: The query of :meth:`catalog.catalog.Catalog.runs`: each run with its own counts.
_RUNS = """
SELECT r.id, r.name, r.run_dir, r.model_name, r.source, r.created_at, r.finished_at,
       r.resumed_from_run_id, r.status, r.resumed_from_workflow_snapshot_id,
       (SELECT count(*) FROM snapshots AS s WHERE s.run_id = r.id),
       (SELECT count(*) FROM workflow_snapshots AS w WHERE w.run_id = r.id),
       (SELECT min(s.timestamp) FROM snapshots AS s WHERE s.run_id = r.id),
       (SELECT max(s.timestamp) FROM snapshots AS s WHERE s.run_id = r.id),
       (SELECT sum(s.size_bytes) FROM snapshots AS s WHERE s.run_id = r.id)
FROM runs AS r ORDER BY r.id
"""


def sqlite_runs(db_file: Path) -> RecordList[RunRecord] | None:
    """Every run of a SQLite catalog at this release's revision, oldest first.

    Args:
        db_file: The catalog file (absolute), already checked to be a catalog
            (:func:`catalog.db.sqlite_file.check_sqlite_file`).

    Returns:
        The runs as :meth:`catalog.catalog.Catalog.runs` gives them, or None
        when this module may not answer (another revision, an unreadable
        file): the caller then opens the full catalog.
    """
    try:
        connection = sqlite3.connect(reading_uri(db_file), uri=True, timeout=SQLITE_BUSY_TIMEOUT_S)
    except sqlite3.Error:
        return None
    try:
        apply_busy_timeout(connection)
        connection.execute("BEGIN")  # one consistent read of the revision and the runs
        revision = connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
        if revision != [(SCHEMA_REVISION,)]:
            return None
        rows = connection.execute(_RUNS).fetchall()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    root = db_file.parent
    return RecordList(
        RunRecord(
            id=row[0],
            name=row[1],
            run_dir=_resolve(row[2], root),
            model_name=row[3],
            source=Source(row[4]),
            created_at=utc_time(row[5]),
            finished_at=utc_time(row[6]) if row[6] is not None else None,
            resumed_from_run_id=row[7],
            num_snapshots=int(row[10]),
            status=RunStatus(row[8]),
            resumed_from_workflow_snapshot_id=row[9],
            num_workflow_snapshots=int(row[11]),
            first_timestamp=None if row[12] is None else float(row[12]),
            last_timestamp=None if row[13] is None else float(row[13]),
            size_bytes=int(row[14] or 0),
        )
        for row in rows
    )


def _resolve(stored: str, root: Path) -> Path:
    """A stored path made absolute, as :meth:`catalog.catalog.Catalog.resolve_path` does."""
    path = Path(stored)
    return path if path.is_absolute() else root / path
