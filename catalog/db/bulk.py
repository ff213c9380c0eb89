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
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from catalog.db.floats import split_float
from catalog.db.schema import (
    Base,
    PortCount,
    Run,
    SnapshotPort,
    SnapshotRow,
    SnapshotSetting,
    SnapshotTrigger,
)
from catalog.errors import CatalogError
from catalog.records import NewSnapshot
from catalog.snapshot import Snapshot

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
    params = [_snapshot_row(run_id, stored, order, new) for stored, order, new in rows]
    # One executemany, then the ids by path (unique): an ordered RETURNING makes
    # SQLite insert row by row, ten times slower for a batch of thousands.
    names = list(params[0])
    executemany(
        session, SnapshotRow.__tablename__, names, [tuple(p[c] for c in names) for p in params]
    )
    paths = [stored for stored, _order, _new in rows]
    by_path = ids_by_path(session, paths)
    ids = [by_path[path] for path in paths]
    triggers: list[tuple[Any, ...]] = []
    ports: list[tuple[Any, ...]] = []
    counts: list[tuple[Any, ...]] = []
    settings: list[tuple[Any, ...]] = []
    for snapshot_id, (_stored, _order, new) in zip(ids, rows, strict=True):
        snapshot = new.snapshot
        triggers.extend((snapshot_id, i, t) for i, t in enumerate(snapshot.triggers))
        for position, (port, slot_counts) in enumerate(snapshot.port_message_counts.items()):
            ports.append((snapshot_id, port, position, len(slot_counts)))
            counts.extend(
                (snapshot_id, port, slot, int(count)) for slot, count in enumerate(slot_counts)
            )
        settings.extend(
            (snapshot_id, i, str(k), _json(v)) for i, (k, v) in enumerate(_settings_items(snapshot))
        )
    for model, columns, values in (
        (SnapshotTrigger, ("snapshot_id", "position", "trigger"), triggers),
        (SnapshotPort, ("snapshot_id", "port", "position", "num_slots"), ports),
        (PortCount, ("snapshot_id", "port", "slot", "count"), counts),
        (SnapshotSetting, ("snapshot_id", "position", "name", "value_json"), settings),
    ):
        if values:
            executemany(session, str(model.__tablename__), columns, values)
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


def _snapshot_row(run_id: int, stored: str, order: int, new: NewSnapshot) -> dict[str, Any]:
    snapshot = new.snapshot
    message = snapshot.message
    timestamp, timestamp_nan = split_float(message.timestamp if message else float("nan"))
    next_ts, next_ts_nan = split_float(message.next_timestamp if message else None)
    wallclock, wallclock_nan = split_float(snapshot.wallclock_time)
    now = dt.datetime.now(dt.UTC)
    return {
        "run_id": run_id,
        "instance": new.instance,
        "sequence": new.sequence,
        "submission_order": order,
        "path": stored,
        "snapshot_filename": new.snapshot_filename,
        "format_version": snapshot.format_version,
        "size_bytes": new.size_bytes,
        "sha256": new.sha256,
        "wallclock_time": wallclock,
        "wallclock_time_nan": wallclock_nan,
        "timestamp": timestamp,
        "timestamp_nan": timestamp_nan,
        "next_timestamp": next_ts,
        "next_timestamp_nan": next_ts_nan,
        "is_final_snapshot": bool(snapshot.is_final_snapshot),
        "is_implicit": message is None,
        "status": str(new.status),
        "recorded_at": now,
        "copied_from_snapshot_id": new.copied_from_snapshot_id,
    }


def _settings_items(snapshot: Snapshot) -> list[tuple[str, Any]]:
    overlay = snapshot.settings_overlay
    if overlay is None:
        return []
    return [(str(k), v) for k, v in overlay.items()]


def _json(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value, default=_json_default)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return str(value)
