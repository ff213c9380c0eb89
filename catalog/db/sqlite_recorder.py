"""Recording an instance's saves into a SQLite catalog with the stdlib ``sqlite3`` alone.

Why this exists: every instance process of a run records its snapshots, and
through :class:`catalog.catalog.Catalog` each one pays for importing
SQLAlchemy and compiling the ORM statements of its first save (about half a
second of CPU per process, all starting at once), then about 5 ms per save
for a dozen ORM statements in two transactions and reading the new row back.
Inside a run the catalog is nearly always a SQLite file already at this
release's schema revision (the registry or ``muscle-catalog init`` created
it), and then one save is a handful of plain INSERTs: this module does just
that, in one ``BEGIN IMMEDIATE`` transaction, and gives back the metadata
built from the values it wrote. A save is as few statements as SQLite
allows: the snapshot row's INSERT computes its submission order and gives
back its id (``RETURNING``), one INSERT per child table (all its rows in
one statement), and the checks
("a path is recorded once", "the run exists") are the database's own
constraints, turned into the full Catalog's errors when they refuse a row.

It is a second writer of the same tables, so what keeps it in step with the
schema:

* the column names and values come from :mod:`catalog.db.rows`, which the
  SQLAlchemy path (:mod:`catalog.db.bulk`) uses too;
* the connection settings come from :mod:`catalog.db.sqlite_settings`, which
  :mod:`catalog.db.engine` uses too;
* it only writes a catalog whose recorded revision is exactly
  :data:`catalog.db.revision.SCHEMA_REVISION`; anything else (no file, an
  older or newer revision, not SQLite) is left to the full :class:`Catalog`,
  which creates, refuses or explains as it always does;
* a test records the same snapshots through both paths and compares every
  row of every table.

The rules it repeats from :class:`Catalog` (submission order, "a path is
never recorded twice", run creation, stored paths) say where they come from.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import sqlite3
from pathlib import Path, PurePosixPath
from typing import Any

from catalog.db.revision import (
    SCHEMA_REVISION,
    VERSION_TABLE,
    empty_version_table_error,
    several_revisions_error,
)
from catalog.db.rows import (
    CHILD_TABLES,
    SNAPSHOTS,
    child_rows,
    snapshot_row,
    written_metadata,
)
from catalog.db.sqlite_settings import (
    SQLITE_BUSY_TIMEOUT_S,
    apply_busy_timeout,
    apply_connection_pragmas,
    network_mode,
)
from catalog.enums import RunStatus, Source
from catalog.errors import CatalogError, VersionTableError
from catalog.location import stored_path
from catalog.records import NewSnapshot
from catalog.snapshot import SnapshotMetadata

#: How SQLAlchemy's SQLite ``DateTime`` stores a time the ORM writes (as text,
#: without zone: times are UTC), e.g. ``runs.created_at``.
_ORM_DATETIME = "%Y-%m-%d %H:%M:%S.%f"

_INSERT_RUN = (
    "INSERT INTO runs (name, run_dir, model_name, configuration, source, status, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def orm_time(when: dt.datetime) -> str:
    """A UTC time as the ORM stores it in SQLite (``runs.created_at``)."""
    return when.astimezone(dt.UTC).strftime(_ORM_DATETIME)


def driver_time(when: dt.datetime) -> str:
    """A UTC time as :func:`catalog.db.bulk.executemany` stores it in SQLite.

    That path hands the aware datetime to the ``sqlite3`` driver, whose
    adapter stores ``isoformat(" ")`` (``snapshots.recorded_at``). SQLAlchemy
    reads both spellings back.
    """
    return when.astimezone(dt.UTC).isoformat(" ")


#: Child rows up to this many go in one multi-row INSERT (half the cost of
#: ``executemany`` for a save's few rows); more go through ``executemany``,
#: well below SQLite's limit on bound parameters.
_ROWS_PER_INSERT = 64


@functools.cache
def _insert(table: str, columns: tuple[str, ...], rows: int = 1) -> str:
    """An INSERT of ``rows`` rows (one statement, cached per table and count)."""
    quoted = ", ".join(f'"{c}"' for c in columns)
    row = f"({', '.join('?' * len(columns))})"
    return f'INSERT INTO "{table}" ({quoted}) VALUES {", ".join([row] * rows)}'


def _insert_snapshot(columns: tuple[str, ...]) -> str:
    """The INSERT of a snapshot row that computes its submission order and gives it back.

    The order is the rule of :func:`catalog.db.bulk.next_submission_order`
    (one more than the run's largest); the write lock taken by ``BEGIN
    IMMEDIATE`` keeps it from racing other writers. The parameters are the
    values of ``columns``, then the run's id once more.
    """
    quoted = ", ".join(f'"{c}"' for c in (*columns, "submission_order"))
    return (
        f'INSERT INTO "{SNAPSHOTS}" ({quoted}) VALUES ({", ".join("?" * len(columns))}, '
        f'(SELECT COALESCE(MAX(submission_order), 0) + 1 FROM "{SNAPSHOTS}" WHERE run_id = ?)) '
        "RETURNING id, submission_order"
    )


class SqliteSnapshotRecorder:
    """Records snapshots into one SQLite catalog file at the head revision.

    Open it with :meth:`open`, which gives None when this catalog is not one
    it may write (the caller then uses :class:`catalog.catalog.Catalog`).

    Attributes:
        db_file: The catalog file.
        root: The directory paths are stored relative to (the file's).
    """

    def __init__(self, connection: sqlite3.Connection, db_file: Path) -> None:
        self._connection = connection
        self._statements: dict[tuple[str, ...], str] = {}
        self.db_file = db_file
        self.root = db_file.parent

    @classmethod
    def open(
        cls,
        db_file: Path,
        *,
        network_filesystem: bool | None = None,
        busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S,
    ) -> SqliteSnapshotRecorder | None:
        """Open a catalog file for recording, if it is a SQLite catalog at the head revision.

        The revision is read before the connection's journal mode is set,
        since switching it rewrites the file's header: a catalog that the
        full Catalog would refuse is left byte for byte as it was. A damaged
        version table is refused here, with the error the full Catalog gives.

        Args:
            db_file: The catalog file (absolute).
            network_filesystem: As for :func:`catalog.catalog.open_catalog`.
            busy_timeout_s: Seconds a save waits for a write lock another
                process holds (see :func:`catalog.db.sqlite_settings.lock_timeout`).

        Returns:
            The recorder, or None when the file is missing, not SQLite, is
            at another revision, or cannot be opened: the full Catalog then
            creates, refuses or explains it.

        Raises:
            VersionTableError: The version table holds several revisions, or
                none while the catalog's tables exist; nothing was written.
        """
        if not db_file.is_file():
            return None
        try:
            # mode=rw: never create a file here; creating is the full Catalog's job.
            connection = sqlite3.connect(
                f"{db_file.as_uri()}?mode=rw",
                uri=True,
                timeout=busy_timeout_s,
                isolation_level=None,  # we issue BEGIN IMMEDIATE ourselves
            )
        except sqlite3.Error:
            return None
        try:
            apply_busy_timeout(connection, busy_timeout_s)
            rows = connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
            if rows != [(SCHEMA_REVISION,)]:
                problem = _version_table_problem(connection, rows, str(db_file))
                connection.close()
                if problem is not None:
                    raise problem
                return None
            apply_connection_pragmas(
                connection,
                wal=not network_mode(db_file, network_filesystem),
                busy_timeout_s=busy_timeout_s,
            )
        except sqlite3.Error:
            connection.close()
            return None
        return cls(connection, db_file)

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()

    def stored_path(self, path: Path | str) -> str:
        """How a path is stored, by the rule of :meth:`catalog.catalog.Catalog.stored_path`."""
        return stored_path(path, self.root)

    def record(
        self,
        run_id: int | None,
        new: NewSnapshot,
        *,
        run_dir: Path,
        model_name: str | None = None,
        configuration: str | None = None,
    ) -> tuple[int, int, SnapshotMetadata]:
        """Record one snapshot (and with the first, its run) in one write transaction.

        Args:
            run_id: The run recorded by an earlier call, or None to find the
                run of ``run_dir`` or create it (as
                :meth:`catalog.catalog.Catalog.ensure_run` does for a live run).
            new: The snapshot.
            run_dir: The run directory (used when ``run_id`` is None).
            model_name: The model's name, for a new run or one without it.
            configuration: The yMMSL text, for a new run or one without it.

        Returns:
            ``(run id, snapshot id, metadata)``: the metadata is built from
            the values written, so the manager is told what was recorded.

        Raises:
            CatalogError: The path is already recorded, or the run ``run_id``
                no longer exists; nothing is written.
            sqlite3.Error: The database could not be written.
        """
        connection = self._connection
        stored = self.stored_path(new.path)
        now = dt.datetime.now(dt.UTC)
        row = snapshot_row(0, stored, 0, new, now)
        row["recorded_at"] = driver_time(now)
        del row["submission_order"]  # computed by the INSERT itself
        columns = tuple(row)
        statement = self._statements.get(columns)
        if statement is None:
            statement = self._statements[columns] = _insert_snapshot(columns)
        connection.execute("BEGIN IMMEDIATE")
        try:
            if run_id is None:
                run_id = self._find_or_create_run(run_dir, model_name, configuration, now)
            row["run_id"] = run_id
            try:
                ((snapshot_id, order),) = connection.execute(
                    statement, (*row.values(), run_id)
                ).fetchall()
            except sqlite3.IntegrityError as exc:
                raise self._refused(exc, run_id, stored, new) from exc
            children = child_rows(snapshot_id, new.snapshot)
            for table, table_columns in CHILD_TABLES:
                rows = children[table]
                if 0 < len(rows) <= _ROWS_PER_INSERT:
                    connection.execute(
                        _insert(table, table_columns, len(rows)),
                        [value for values in rows for value in values],
                    )
                elif rows:
                    connection.executemany(_insert(table, table_columns), rows)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        row["submission_order"] = order
        return run_id, snapshot_id, written_metadata(row, children, new.snapshot_filename)

    def _refused(
        self, exc: sqlite3.IntegrityError, run_id: int, stored: str, new: NewSnapshot
    ) -> Exception:
        """The error for a snapshot row the database refused (the caller holds the lock).

        The constraints say it, as :meth:`Catalog.record_snapshot`'s checks
        would: the path's UNIQUE (already recorded) or the run's foreign key.
        """
        if "snapshots.path" in str(exc):
            (existing,) = self._connection.execute(
                "SELECT id FROM snapshots WHERE path = ?", (stored,)
            ).fetchone()
            return CatalogError(
                f"{new.path} is already recorded in {self.db_file} (snapshot {existing}); "
                "a snapshot file is never recorded twice."
            )
        if "FOREIGN KEY" in str(exc):
            return CatalogError(f"No run with id {run_id} in the catalog")
        return exc

    def _canonical_run_dir(self, run_dir: Path) -> str:
        """One run per real directory, by the rule of :meth:`Catalog.canonical_run_dir`.

        The form an existing run was recorded under (compared as given and
        with symlinks resolved), else the directory with symlinks resolved.
        """
        absolute, real = os.path.abspath(run_dir), os.path.realpath(run_dir)
        for (form,) in self._connection.execute("SELECT run_dir FROM runs ORDER BY id"):
            path = form if os.path.isabs(form) else os.path.join(self.root, form)
            if os.path.abspath(path) == absolute or os.path.realpath(path) == real:
                return str(path)
        return real

    def _find_or_create_run(
        self, run_dir: Path, model_name: str | None, configuration: str | None, now: dt.datetime
    ) -> int:
        """The run of ``run_dir``, created as a live running run if new (the caller holds the lock).

        An existing run gets the model name and configuration it lacks, as
        :meth:`catalog.catalog.Catalog.ensure_run` does.
        """
        connection = self._connection
        stored = self.stored_path(self._canonical_run_dir(run_dir))
        found = connection.execute(
            "SELECT id, model_name, configuration FROM runs WHERE run_dir = ?", (stored,)
        ).fetchone()
        if found is None:
            name = PurePosixPath(stored).name or stored
            cursor = connection.execute(
                _INSERT_RUN,
                (
                    name,
                    stored,
                    model_name,
                    configuration,
                    str(Source.LIVE),
                    str(RunStatus.RUNNING),
                    orm_time(now),
                ),
            )
            if cursor.lastrowid is None:  # pragma: no cover - sqlite3 always sets it
                raise CatalogError(f"SQLite gave no id for the new run {run_dir}")
            return cursor.lastrowid
        run_id, has_model_name, has_configuration = found
        for column, value, present in (
            ("model_name", model_name, has_model_name),
            ("configuration", configuration, has_configuration),
        ):
            if value and not present:
                connection.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, run_id))
        return int(run_id)


def _version_table_problem(
    connection: sqlite3.Connection, rows: list[Any], location: str
) -> VersionTableError | None:
    """The error for a damaged version table, or None for a plain other revision."""
    if len(rows) > 1:
        return several_revisions_error([row[0] for row in rows], location)
    if not rows:
        tables = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SNAPSHOTS,)
        ).fetchone()
        if tables is not None:
            return empty_version_table_error(location)
    return None
