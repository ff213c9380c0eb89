"""Recording one snapshot into a PostgreSQL catalog in one network round trip.

Why this exists: through the ORM path (:meth:`catalog.catalog.Catalog.record_snapshot`)
one save is thirteen statements, each waiting for its answer (lock the run,
check the path, find the next submission order, insert the row, look its id
up, insert the children, commit, then read the record back in four more), so
an instance's save cost several times a bare INSERT and COMMIT, and more
with every millisecond between the instance and the database server.

Here the whole write is sent at once in psycopg's pipeline mode and waited
for once:

* ``BEGIN`` (the connection is in autocommit mode: psycopg's own BEGIN
  would be sent and waited for on its own);
* ``SELECT ... FOR UPDATE`` of the run's row, the lock every writer of a run
  takes (:func:`catalog.db.bulk.lock_run`), so that submission orders are
  handed out one writer at a time;
* one INSERT of the snapshot row whose submission order is computed in the
  statement (one more than the run's largest, the rule of
  :func:`catalog.db.bulk.next_submission_order`; under READ COMMITTED the
  statement sees what the previous holder of the lock committed), with its
  child rows inserted by data-modifying CTEs from arrays (``unnest``), giving
  back the new id and submission order;
* ``COMMIT``.

The row values come from :mod:`catalog.db.rows`, as for the other writers,
and the manager's metadata is built from them
(:func:`catalog.db.rows.written_metadata`) rather than read back.

Failures are told apart by the constraint the database names: a path
already recorded (``uq_snapshots_path``) and a run that does not exist (the
snapshot's foreign key to ``runs``) become the :class:`CatalogError` the
ORM path gives, with nothing written; anything else (the server gone, a lock
waited for longer than ``lock_timeout``) is psycopg's error, rolled back.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq

from catalog.db.rows import (
    PORTS,
    SETTINGS,
    SNAPSHOTS,
    TRIGGERS,
    child_rows,
    snapshot_row,
    written_metadata,
)
from catalog.errors import CatalogError
from catalog.records import NewSnapshot, RecordedSnapshot

#: The constraint that keeps a path from being recorded twice (schema naming convention).
PATH_CONSTRAINT = "uq_snapshots_path"
#: The foreign key from a snapshot to its run.
RUN_CONSTRAINT = "fk_snapshots_run_id_runs"

#: The SQL type of each child column, for the arrays they are sent in.
_ARRAY_TYPES = {
    "position": "integer[]",
    "num_slots": "integer[]",
    "trigger": "text[]",
    "port": "text[]",
    "counts": "text[]",
    "name": "text[]",
    "value_json": "text[]",
}

_LOCK_RUN = "SELECT id FROM runs WHERE id = %s FOR UPDATE"


def _quote(name: str) -> str:
    return f'"{name}"'


def record_statement(columns: Sequence[str]) -> str:
    """The one statement that inserts a snapshot row and its child rows.

    Args:
        columns: The ``snapshots`` columns given as parameters (every column
            of :func:`catalog.db.rows.snapshot_row` but ``submission_order``,
            which the statement computes); each is the named parameter of
            the same name. The child tables' columns are the parameters
            ``<table>__<column>``, each an array with one element per row.

    Returns:
        The SQL, giving one row: the new snapshot's id and submission order.
    """
    names = ", ".join(_quote(c) for c in (*columns, "submission_order"))
    values = ", ".join(f"%({c})s" for c in columns)
    parts = [
        f"s AS (INSERT INTO {_quote(SNAPSHOTS)} ({names}) VALUES ({values}, "
        f"(SELECT COALESCE(MAX(submission_order), 0) + 1 FROM {_quote(SNAPSHOTS)} "
        "WHERE run_id = %(run_id)s)) RETURNING id, submission_order)"
    ]
    for index, (table, table_columns) in enumerate((TRIGGERS, PORTS, SETTINGS)):
        data = table_columns[1:]  # snapshot_id comes from s
        arrays = ", ".join(f"%({table}__{c})s::{_ARRAY_TYPES[c]}" for c in data)
        parts.append(
            f"c{index} AS (INSERT INTO {_quote(table)} "
            f"({', '.join(_quote(c) for c in table_columns)}) "
            f"SELECT s.id, {', '.join(f'r.{_quote(c)}' for c in data)} "
            f"FROM s, unnest({arrays}) AS r({', '.join(_quote(c) for c in data)}))"
        )
    return "WITH " + ",\n".join(parts) + "\nSELECT id, submission_order FROM s"


class PgSnapshotRecorder:
    """Records snapshots into a PostgreSQL catalog, one round trip per snapshot.

    It writes through one psycopg connection in autocommit mode (each save
    sends its own BEGIN and COMMIT), which it uses for nothing else; one
    save at a time (a lock keeps threads apart).

    Args:
        connection: The psycopg connection, in autocommit mode, with the
            catalog's ``search_path`` and ``lock_timeout`` set (the Catalog's
            engine sets them).
        location: The catalog as messages name it.
    """

    def __init__(self, connection: psycopg.Connection[Any], location: str) -> None:
        self._connection = connection
        self.location = location
        self._statements: dict[tuple[str, ...], str] = {}
        self._lock = threading.Lock()

    @property
    def usable(self) -> bool:
        """False once the connection is closed or broken (the server went away)."""
        return not (self._connection.closed or self._connection.broken)

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()

    def record(self, run_id: int, stored: str, new: NewSnapshot) -> RecordedSnapshot:
        """Record one snapshot in one transaction, sent and answered in one round trip.

        Args:
            run_id: The run it belongs to.
            stored: Its path as stored (:func:`catalog.location.stored_path`).
            new: The snapshot.

        Returns:
            Its id, submission order and the manager's metadata.

        Raises:
            CatalogError: The path is already recorded, or there is no run
                ``run_id``; nothing is written.
            psycopg.Error: The database could not be written (rolled back).
        """
        row = snapshot_row(run_id, stored, 0, new, dt.datetime.now(dt.UTC))
        del row["submission_order"]  # computed by the statement, under the run's lock
        children = child_rows(0, new.snapshot)
        params: dict[str, Any] = dict(row)
        for table, columns in (TRIGGERS, PORTS, SETTINGS):
            rows = children[table]
            for index, column in enumerate(columns[1:], start=1):
                params[f"{table}__{column}"] = [values[index] for values in rows]
        key = tuple(row)
        statement = self._statements.get(key)
        if statement is None:
            statement = self._statements[key] = record_statement(key)
        with self._lock:
            snapshot_id, order = self._execute(statement, params, run_id, stored, new)
        row["submission_order"] = order
        return RecordedSnapshot(
            snapshot_id, order, written_metadata(row, children, new.snapshot_filename)
        )

    def _execute(
        self, statement: str, params: dict[str, Any], run_id: int, stored: str, new: NewSnapshot
    ) -> tuple[int, int]:
        """Send BEGIN, the run's lock, the INSERT and COMMIT together; wait for them once."""
        connection = self._connection
        try:
            # Nothing is waited for until the pipeline ends: its Sync sends the
            # lot and reads every answer (BEGIN and COMMIT are ours, since
            # psycopg's own BEGIN in a pipeline is sent and waited for alone).
            with connection.pipeline():
                connection.execute("BEGIN")
                connection.execute(_LOCK_RUN, (run_id,), prepare=True)
                cursor = connection.execute(statement, params, prepare=True)
                connection.execute("COMMIT")
            found = cursor.fetchone()
        except pg_errors.UniqueViolation as exc:
            self._rollback()
            if exc.diag.constraint_name == PATH_CONSTRAINT:
                raise self._already_recorded(stored, new) from exc
            raise
        except pg_errors.ForeignKeyViolation as exc:
            self._rollback()
            if exc.diag.constraint_name == RUN_CONSTRAINT:
                raise CatalogError(f"No run with id {run_id} in the catalog") from exc
            raise
        except BaseException:
            self._rollback()
            raise
        if found is None:  # pragma: no cover - the INSERT gives one row or fails
            raise CatalogError(f"PostgreSQL gave no id for the new snapshot {new.path}")
        return int(found[0]), int(found[1])

    def _already_recorded(self, stored: str, new: NewSnapshot) -> CatalogError:
        """The error :meth:`Catalog.record_snapshot` gives, naming the snapshot with the path."""
        connection = self._connection
        try:
            found = connection.execute(
                f"SELECT id FROM {_quote(SNAPSHOTS)} WHERE path = %s", (stored,)
            ).fetchone()
        except psycopg.Error:
            found = None
        existing = found[0] if found is not None else "another"
        return CatalogError(
            f"{new.path} is already recorded in {self.location} (snapshot {existing}); "
            "a snapshot file is never recorded twice."
        )

    def _rollback(self) -> None:
        """End a failed transaction; a connection already broken has nothing to end."""
        try:
            if self._connection.info.transaction_status != pq.TransactionStatus.IDLE:
                self._connection.execute("ROLLBACK")
        except psycopg.Error:
            pass
