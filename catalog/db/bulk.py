"""Bulk SQL: inserting snapshot rows with their child rows, and looking many keys up at once.

Import and the registry record thousands of snapshots at a time, each with a
row per trigger, port, port slot and setting; a thousand-slot macro port is a
thousand ``port_counts`` rows. Going through the ORM row by row would cost
more than the database's own work, so this module talks to the driver's
``executemany`` directly, doing each column's type conversion once.

Lookups by a list of keys (paths, ids) go through :func:`select_in_chunks`,
which keeps every ``IN (...)`` list below the bound-parameter limits of SQLite
and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from catalog.db.rows import CHILD_TABLES, SNAPSHOTS, child_rows, snapshot_row
from catalog.db.schema import Base, Run, SnapshotRow
from catalog.errors import CatalogError
from catalog.records import NewSnapshot

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
    """Stored path -> id of the recorded snapshots among ``paths``."""
    query = select(SnapshotRow.path, SnapshotRow.id)
    return {path: sid for path, sid in select_in_chunks(session, query, SnapshotRow.path, paths)}


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
    session: Session, run_id: int, rows: Sequence[tuple[str, int, NewSnapshot]]
) -> list[int]:
    """Insert snapshot rows and their child rows.

    Args:
        session: The write session (with the run locked).
        run_id: The run they belong to.
        rows: ``(stored path, submission order, snapshot)`` per new row.

    Returns:
        The new ids, in the order of ``rows``.
    """
    params = [
        snapshot_row(run_id, stored, order, new, dt.datetime.now(dt.UTC))
        for stored, order, new in rows
    ]
    # One executemany, then the ids by path (unique): an ordered RETURNING makes
    # SQLite insert row by row, ten times slower for a batch of thousands.
    names = list(params[0])
    executemany(session, SNAPSHOTS, names, [tuple(p[c] for c in names) for p in params])
    paths = [stored for stored, _order, _new in rows]
    by_path = ids_by_path(session, paths)
    ids = [by_path[path] for path in paths]
    children: dict[str, list[tuple[Any, ...]]] = {table: [] for table, _columns in CHILD_TABLES}
    for snapshot_id, (_stored, _order, new) in zip(ids, rows, strict=True):
        for table, values in child_rows(snapshot_id, new.snapshot).items():
            children[table].extend(values)
    for table, columns in CHILD_TABLES:
        if children[table]:
            executemany(session, table, columns, children[table])
    return ids


def executemany(
    session: Session, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert many rows with the driver's ``executemany``.

    Bulk rows (port counts above all: one per slot) outnumber anything else;
    SQLAlchemy's per-row parameter handling would cost more than the
    database's work. Each column's type conversion (booleans and datetimes on
    SQLite, say) is looked up once and applied here instead.
    """
    connection = session.connection()
    dialect = connection.dialect
    table_columns = Base.metadata.tables[table].c
    converted = [
        (index, processor)
        for index, name in enumerate(columns)
        if (processor := table_columns[name].type.bind_processor(dialect)) is not None
    ]
    if converted:
        rows = [_converted(row, converted) for row in rows]
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    quote = dialect.identifier_preparer.quote
    statement = (
        f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join([marker] * len(columns))})"
    )
    connection.exec_driver_sql(statement, list(rows))


def _converted(
    row: tuple[Any, ...], converted: Sequence[tuple[int, Callable[[Any], Any]]]
) -> tuple[Any, ...]:
    values = list(row)
    for index, processor in converted:
        values[index] = processor(values[index])
    return tuple(values)
