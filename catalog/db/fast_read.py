"""Reading many rows without SQLAlchemy's per-row work, for the big snapshot reads.

A read of a hundred thousand snapshots (``cat.snapshots(run=...)``,
``iter_snapshots``) spent more time in SQLAlchemy's ORM result rows and type
processors than in SQLite. On SQLite the statement is therefore compiled and
run as driver SQL on the session's own connection (so inside the session's
read transaction, seeing the same state as its other statements), and the
rows are the driver's plain tuples. The only processing the catalog's
columns need then is turning the text SQLite keeps for a datetime back into
a datetime, which :func:`utc_time` does as SQLAlchemy would
(``datetime.fromisoformat``); booleans are 0/1, which the records test as
such. Other backends go through SQLAlchemy as before.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from catalog.db.times import utc_time as utc_time


def _driver_result(session: Session, statement: Any) -> Any | None:
    """``statement`` run as driver SQL on SQLite (plain rows, no type processing), else None.

    ``exec_driver_sql`` rather than the DBAPI cursor itself, so that the
    statement still passes SQLAlchemy's events (logging, ``echo``, tests
    that look at the query plans).
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return None
    compiled = statement.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    params = compiled.construct_params()
    positional = tuple(params[name] for name in compiled.positiontup or ())
    return connection.exec_driver_sql(str(compiled), positional)


def fetch_all(session: Session, statement: Any) -> Sequence[Sequence[Any]]:
    """Every row of a SELECT (datetimes still text on SQLite; see :func:`utc_time`)."""
    result = _driver_result(session, statement)
    if result is None:
        return session.execute(statement).all()
    try:
        # The driver's own tuples: wrapping each in a Row costs more than SQLite's read.
        return result.cursor.fetchall()  # type: ignore[no-any-return]
    finally:
        result.close()


def fetch_batches(
    session: Session, statement: Any, batch_size: int
) -> Iterator[Sequence[Sequence[Any]]]:
    """The rows of a SELECT, ``batch_size`` at a time, streamed from the database cursor."""
    result = _driver_result(session, statement)
    if result is None:
        result = session.execute(statement, execution_options={"yield_per": batch_size})
        yield from result.partitions()
        return
    try:
        while rows := result.cursor.fetchmany(batch_size):
            yield rows
    finally:
        result.close()


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while building many records at once.

    A hundred thousand records are millions of new objects with no cycles;
    each collection the allocations trigger walks the whole (growing) heap
    again, which costs a third of building them. Collection resumes after,
    as it was.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
