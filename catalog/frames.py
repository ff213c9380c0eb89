"""Snapshot rows as a pandas DataFrame, read straight from SQL for notebooks.

:meth:`catalog.catalog.Catalog.snapshots` builds one record per row, with its
triggers, ports and settings: right for a few thousand snapshots, slow for a
million. :func:`snapshots_frame` instead hands one SELECT to
``pandas.read_sql`` and fixes the column types afterwards, column by column
(vectorised), so it costs little more than pandas' own read of the same
columns.

Columns, one row per snapshot:

==========================  ==========================================================
``id``                      the snapshot's catalog id (``show``, ``resume --id`` take it)
``run``, ``run_id``         the run's name (categorical) and id
``instance``                e.g. ``micro[3]`` (categorical)
``sequence``                the number in the file name (nullable integer)
``submission_order``        its place in the run's recording order
``path``                    absolute path of the ``.pack`` file
``snapshot_filename``       the name as submitted to the manager
``timestamp``               simulation time; NaN for implicit snapshots
``next_timestamp``          the message's next timestamp; NaN if none
``wallclock_time``          seconds since the manager started
``is_final_snapshot``       bool
``is_implicit``             bool (no message: a stateless instance)
``status``                  present / missing / corrupt / deleted (categorical)
``format_version``          1 (MUSCLE3 0.7-0.10) or 2 (0.11)
``size_bytes``, ``sha256``  the file when recorded
``recorded_at``             when the catalog recorded it (UTC datetime)
``copied_from_snapshot_id`` for a resumed run's copy: the original (nullable integer)
==========================  ==========================================================

Triggers, port counts and settings are left out (they are lists and maps);
``cat.snapshots(...).to_dataframe()`` has them, for fewer rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, literal, select

from catalog.db.schema import Run, SnapshotRow
from catalog.records import import_pandas

if TYPE_CHECKING:
    from catalog.catalog import Catalog
    from catalog.snapshot_query import SnapshotFilter

#: The columns of the frame, in order, as SELECTed.
FRAME_COLUMNS = (
    SnapshotRow.id,
    Run.name.label("run"),
    SnapshotRow.run_id,
    SnapshotRow.instance,
    SnapshotRow.sequence,
    SnapshotRow.submission_order,
    SnapshotRow.path,
    SnapshotRow.snapshot_filename,
    SnapshotRow.timestamp,
    SnapshotRow.next_timestamp,
    SnapshotRow.wallclock_time,
    SnapshotRow.is_final_snapshot,
    SnapshotRow.is_implicit,
    SnapshotRow.status,
    SnapshotRow.format_version,
    SnapshotRow.size_bytes,
    SnapshotRow.sha256,
    SnapshotRow.recorded_at,
    SnapshotRow.copied_from_snapshot_id,
)

#: Where ``path`` is in :data:`FRAME_COLUMNS`.
_PATH = next(i for i, column in enumerate(FRAME_COLUMNS) if column is SnapshotRow.path)
_CATEGORIES = ("run", "instance", "status")
_BOOLEANS = ("is_final_snapshot", "is_implicit")
_FLOATS = ("timestamp", "next_timestamp", "wallclock_time")
_NULLABLE_INTS = ("sequence", "size_bytes", "copied_from_snapshot_id")


def snapshots_frame(cat: Catalog, query: SnapshotFilter) -> Any:
    """The snapshots a filter selects, as a typed DataFrame (see the module docstring)."""
    pd = import_pandas()
    dialect = cat.engine.dialect
    columns: list[Any] = list(FRAME_COLUMNS)
    if cat.root is not None:
        # Relative paths made absolute by the database as it reads them: a
        # string operation per row in C, where pandas' would cost a second
        # per million rows.
        columns[_PATH] = _absolute_path(str(cat.root)).label("path")
    statement = (
        select(*columns)
        .join(Run, Run.id == SnapshotRow.run_id)
        .where(*query.conditions(dialect.name))
        .order_by(*query.ordering())
    )
    if query.limit is not None:
        statement = statement.limit(query.limit)
    with cat.read_session() as session:
        connection = session.connection()
        if dialect.name == "sqlite":
            # Hand the DBAPI connection to pandas: its own sqlite3 path is the
            # fastest there is, and what the benchmark compares against.
            compiled = statement.compile(dialect=dialect)
            params = [compiled.params[name] for name in compiled.positiontup or ()]
            raw = connection.connection.driver_connection
            frame = pd.read_sql_query(str(compiled), raw, params=params)
        else:
            frame = pd.read_sql_query(statement, connection)
    return _typed(pd, frame)


def _absolute_path(root: str) -> Any:
    """``snapshots.path`` with ``root/`` in front unless it is absolute already."""
    path = SnapshotRow.path
    return case((func.substr(path, 1, 1) == "/", path), else_=literal(root + "/") + path)


def _typed(pd: Any, frame: Any) -> Any:
    """Fix the column types pandas guessed from the driver's values."""
    for name in _FLOATS:
        frame[name] = frame[name].astype("float64")
    for name in _BOOLEANS:
        frame[name] = frame[name].astype(bool)
    for name in _NULLABLE_INTS:
        frame[name] = frame[name].astype("Int64")
    for name in _CATEGORIES:
        frame[name] = frame[name].astype("category")
    frame["recorded_at"] = pd.to_datetime(frame["recorded_at"], utc=True, format="ISO8601")
    return frame
