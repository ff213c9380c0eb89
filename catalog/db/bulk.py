"""Bulk SQL: inserting snapshot rows with their child rows, and looking many keys up at once.

Import and the registry record thousands of snapshots at a time, each with a
row per trigger, port (its slots' counts as one JSON array) and setting.
Going through the ORM row by row would cost more than the database's own
work, so this module builds the rows as tuples and talks to the driver's
``executemany`` directly, doing each column's type conversion once, and
finds the new ids by submission order in one range scan.

Lookups by a list of keys (paths, ids) go through :func:`select_in_chunks`
(or plain driver SQL for paths, :func:`ids_by_path`), which keeps every
``IN (...)`` list below the bound-parameter limits of SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from catalog.db.rows import (
    CHILD_TABLES,
    SNAPSHOT_COLUMNS,
    SNAPSHOTS,
    add_child_rows,
    add_metadata_child_rows,
    metadata_values,
    snapshot_values,
)
from catalog.db.schema import Base, Run, SnapshotRow
from catalog.errors import CatalogError
from catalog.records import MetadataSnapshot, NewSnapshot

#: Largest number of bound parameters we put in one ``IN (...)`` list.
IN_CHUNK = 500

K = TypeVar("K")
Ts = TypeVarTuple("Ts")


def select_in_chunks(
    session: Session,
    query: Select[*Ts],
    column: InstrumentedAttribute[K],
    keys: Sequence[K],
) -> Iterator[Row[*Ts]]:
    """The rows of ``query`` whose ``column`` is one of ``keys``, a few hundred keys per statement.

    Args:
        session: The session to run in (its transaction gives one consistent view).
        query: The SELECT to restrict.
        column: The column the keys are values of.
        keys: The keys; duplicates are harmless.

    Yields:
        The matching rows, chunk by chunk.
    """
    for start in range(0, len(keys), IN_CHUNK):
        yield from session.execute(query.where(column.in_(keys[start : start + IN_CHUNK])))


def ids_by_path(session: Session, paths: Sequence[str]) -> dict[str, int]:
    """Stored path -> id of the recorded snapshots among ``paths``.

    Plain driver SQL: the registry looks up thousands of paths per batch, and
    SQLAlchemy's expanding ``IN`` costs more per statement than the index
    lookups themselves.
    """
    connection = session.connection()
    marker = _marker(connection.dialect.paramstyle)
    found: dict[str, int] = {}
    for start in range(0, len(paths), IN_CHUNK):
        chunk = list(paths[start : start + IN_CHUNK])
        statement = (
            f"SELECT path, id FROM {SNAPSHOTS} WHERE path IN ({', '.join([marker] * len(chunk))})"
        )
        found.update(_driver_rows(connection.exec_driver_sql(statement, tuple(chunk))))
    return found


def lock_run(session: Session, run_id: int) -> None:
    """Serialise writers of one run (PostgreSQL; SQLite already holds the write lock).

    Raises:
        CatalogError: There is no such run.
    """
    found = session.scalar(select(Run.id).where(Run.id == run_id).with_for_update())
    if found is None:
        raise CatalogError(f"No run with id {run_id} in the catalog")


def next_submission_order(session: Session, run_id: int) -> int:
    """The submission order the run's next snapshot gets (call with the run locked)."""
    last = session.scalar(
        select(func.max(SnapshotRow.submission_order)).where(SnapshotRow.run_id == run_id)
    )
    return 1 if last is None else int(last) + 1


def insert_snapshots(
    session: Session, run_id: int, rows: Sequence[tuple[str, int, NewSnapshot | MetadataSnapshot]]
) -> list[int]:
    """Insert snapshot rows and their child rows.

    Args:
        session: The write session (with the run locked).
        run_id: The run they belong to.
        rows: ``(stored path, submission order, snapshot)`` per new row; the
            orders are new in the run. A snapshot known only from its
            metadata (:class:`MetadataSnapshot`) is stored as the
            :class:`NewSnapshot` rebuilt from it would be.

    Returns:
        The new ids, in the order of ``rows``.
    """
    if not rows:
        return []
    now = _driver_value(session, dt.datetime.now(dt.UTC))  # one transaction, one time
    values = [
        metadata_values(run_id, stored, order, new, now)
        if isinstance(new, MetadataSnapshot)
        else snapshot_values(run_id, stored, order, new, now)
        for stored, order, new in rows
    ]
    # The values are typed as the columns' processors would make them (see
    # snapshot_values), so they go to the driver as they are.
    executemany(session, SNAPSHOTS, SNAPSHOT_COLUMNS, values, convert=False)
    # One executemany, then the ids by (run, submission order), which the
    # unique index on those columns serves as one range scan: an ordered
    # RETURNING makes SQLite insert row by row, ten times slower for a batch
    # of thousands, and looking the ids up by path costs a statement per
    # few hundred paths.
    orders = [order for _stored, order, _new in rows]
    by_order = ids_by_order(session, run_id, min(orders), max(orders))
    ids = [by_order[order] for order in orders]
    triggers: list[tuple[Any, ...]] = []
    ports: list[tuple[Any, ...]] = []
    settings: list[tuple[Any, ...]] = []
    for snapshot_id, (_stored, _order, new) in zip(ids, rows, strict=True):
        if isinstance(new, MetadataSnapshot):
            add_metadata_child_rows(snapshot_id, new.metadata, triggers, ports)
        else:
            add_child_rows(snapshot_id, new.snapshot, triggers, ports, settings)
    for (table, columns), values_of in zip(CHILD_TABLES, (triggers, ports, settings), strict=True):
        if values_of:
            executemany(session, table, columns, values_of)
    return ids


def ids_by_order(session: Session, run_id: int, first: int, last: int) -> dict[int, int]:
    """Submission order -> id of a run's snapshots with orders from ``first`` to ``last``."""
    marker = _marker(session.connection().dialect.paramstyle)
    statement = (
        f"SELECT submission_order, id FROM {SNAPSHOTS} WHERE run_id = {marker} "
        f"AND submission_order >= {marker} AND submission_order <= {marker}"
    )
    rows = _driver_rows(session.connection().exec_driver_sql(statement, (run_id, first, last)))
    return {int(order): int(sid) for order, sid in rows}


def executemany(
    session: Session,
    table: str,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    convert: bool = True,
) -> None:
    """Insert many rows with the driver's ``executemany``.

    Bulk rows (port counts above all: one per slot) outnumber anything else;
    SQLAlchemy's per-row parameter handling would cost more than the
    database's work. Each column's type conversion (booleans and datetimes on
    SQLite, say) is looked up once and applied here instead; ``convert=False``
    skips it for rows whose values are already what the driver takes.
    """
    connection = session.connection()
    dialect = connection.dialect
    table_columns = Base.metadata.tables[table].c
    if convert:
        converted = [
            (index, processor)
            for index, name in enumerate(columns)
            if (processor := _bind_processor(table_columns[name].type, dialect)) is not None
        ]
        if converted:
            rows = [_converted(row, converted) for row in rows]
    marker = _marker(dialect.paramstyle)
    quote = dialect.identifier_preparer.quote
    statement = (
        f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join([marker] * len(columns))})"
    )
    connection.exec_driver_sql(statement, list(rows))


def _bind_processor(column_type: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """The conversion the ORM applies to a column's values: its type's, as the dialect has it.

    The generic type's own processor can differ (SQLite's DateTime text format
    is the dialect's); the ORM binds through the dialect's implementation.
    """
    processor: Callable[[Any], Any] | None = column_type.dialect_impl(dialect).bind_processor(
        dialect
    )
    return processor


def _driver_value(session: Session, value: dt.datetime) -> Any:
    """A time as the driver would bind it, converted once for a whole batch.

    ``sqlite3`` turns every datetime parameter into text with its registered
    adapter, once per row; applying that same adapter here once gives the
    same text without thousands of conversions. Other drivers get the datetime.
    """
    if session.connection().dialect.name != "sqlite":
        return value
    adapter = sqlite3.adapters.get((dt.datetime, sqlite3.PrepareProtocol))
    return value if adapter is None else adapter(value)


def timestamps_by_id(session: Session, snapshot_ids: Sequence[int]) -> dict[int, float | None]:
    """Snapshot id -> stored ``timestamp`` column, for the ids among ``snapshot_ids``.

    Plain driver SQL, as :func:`ids_by_path`: a workflow snapshot of a
    thousand instances needs a thousand timestamps, and SQLAlchemy's
    expanding ``IN`` costs more per statement than the lookups.
    """
    connection = session.connection()
    marker = _marker(connection.dialect.paramstyle)
    found: dict[int, float | None] = {}
    for start in range(0, len(snapshot_ids), IN_CHUNK):
        chunk = tuple(snapshot_ids[start : start + IN_CHUNK])
        markers = ", ".join([marker] * len(chunk))
        statement = f"SELECT id, timestamp FROM {SNAPSHOTS} WHERE id IN ({markers})"
        for sid, timestamp in _driver_rows(connection.exec_driver_sql(statement, chunk)):
            found[int(sid)] = None if timestamp is None else float(timestamp)
    return found


def _driver_rows(result: Any) -> list[tuple[Any, ...]]:
    """All rows of a driver-SQL result as the driver's plain tuples, and the result closed.

    Thousands of keys per batch: SQLAlchemy's row objects cost more than the lookup.
    """
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def _marker(paramstyle: str) -> str:
    """The driver's parameter placeholder (``?`` for sqlite3, ``%s`` for psycopg)."""
    return "?" if paramstyle == "qmark" else "%s"


def _converted(
    row: tuple[Any, ...], converted: Sequence[tuple[int, Callable[[Any], Any]]]
) -> tuple[Any, ...]:
    values = list(row)
    for index, processor in converted:
        values[index] = processor(values[index])
    return tuple(values)
