"""The Catalog: recording snapshots and runs, and querying them back as typed records.

A catalog is one campaign: the runs of one model, their snapshots and the
workflow snapshots (resume points) found among them. It lives in one SQL
database: a SQLite file by default, PostgreSQL when many machines record into
it. Everything that writes does so in short transactions that take the write
lock up front (see :mod:`catalog.db.engine`); everything that reads uses
read-only transactions that never block writers.

Paths are stored relative to the catalog's root (the directory holding a
SQLite catalog file) when they lie below it, so a campaign directory can be
moved or copied off a cluster as a whole; other paths are stored absolute.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, literal_column, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.db.bulk import (
    executemany,
    ids_by_path,
    insert_snapshots,
    lock_run,
    next_submission_order,
    select_in_chunks,
    timestamps_by_id,
)
from catalog.db.children import (
    SnapshotChildren,
    decode_ports,
    decode_settings,
    decode_triggers,
)
from catalog.db.engine import consistent_read, create_catalog_engine
from catalog.db.fast_read import fetch_all, fetch_batches, gc_paused
from catalog.db.identity import members_key
from catalog.db.rows import child_rows, snapshot_row, written_metadata
from catalog.db.schema import (
    Run,
    SnapshotRow,
    WorkflowSnapshotMember,
    WorkflowSnapshotRow,
)
from catalog.db.sqlite_file import check_sqlite_file, read_only_cause
from catalog.db.sqlite_settings import lock_timeout
from catalog.db.times import utc_time
from catalog.db.versioning import ensure_schema, upgrade_location
from catalog.enums import RunStatus, SnapshotStatus, Source, WorkflowStatus
from catalog.errors import CatalogError, CatalogReadOnlyError
from catalog.location import (
    default_catalog_in,
    display_location,
    sqlite_file,
    stored_path,
    to_url,
)
from catalog.naming import instance_sort_key
from catalog.records import (
    MetadataSnapshot,
    NewSnapshot,
    NewWorkflowSnapshot,
    RecordedSnapshot,
    RecordList,
    RunRecord,
    RunSummary,
    SnapshotRecord,
    WorkflowSnapshotRecord,
)
from catalog.snapshot_query import SnapshotFilter

if TYPE_CHECKING:
    from catalog.db.pg_recorder import PgSnapshotRecorder

#: Rows per transaction when recording in bulk (import, reindex).
BULK_BATCH_SIZE = 2000


class Catalog:
    """A snapshot catalog opened on a database; see :func:`open_catalog`.

    Attributes:
        url: The SQLAlchemy URL of the database.
        location: A printable name (file path, or URL without password).
        root: The directory paths are stored relative to, or None (PostgreSQL).
        lock_timeout_s: Seconds a write waits for a lock another process holds.
    """

    def __init__(
        self,
        url: URL,
        *,
        create: bool = False,
        read_only: bool = False,
        network_filesystem: bool | None = None,
        lock_timeout_s: float | None = None,
    ):
        self.url = url
        self.location = display_location(url)
        db_file = sqlite_file(url)
        self.root: Path | None = db_file.parent if db_file is not None else None
        #: Whether writes are refused (asked for, or the file cannot be written).
        self.read_only = read_only
        if db_file is not None:
            self.read_only = check_sqlite_file(db_file, create=create, read_only=read_only)
        self.lock_timeout_s = lock_timeout() if lock_timeout_s is None else lock_timeout_s
        self._pg_recorder_instance: PgSnapshotRecorder | None = None
        self._pg_recorder_lock = threading.Lock()
        self.engine = create_catalog_engine(
            url,
            network_filesystem=network_filesystem,
            read_only=self.read_only,
            lock_timeout_s=self.lock_timeout_s,
        )
        try:
            ensure_schema(self.engine, location=self.location, create=create)
        except BaseException:
            self.engine.dispose()
            raise

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Release the database connections."""
        with self._pg_recorder_lock:
            if self._pg_recorder_instance is not None:
                self._pg_recorder_instance.close()
                self._pg_recorder_instance = None
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({self.location!r})"

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A session in one write transaction, committed on success.

        Raises:
            CatalogReadOnlyError: The catalog was opened read-only.
        """
        if self.read_only:
            db_file = sqlite_file(self.url)
            cause = "opened read-only on purpose" if db_file is None else read_only_cause(db_file)
            raise CatalogReadOnlyError(
                f"The catalog is read-only ({cause}): {self.location} was opened for reading; "
                "nothing was changed. Copy it somewhere writable, or open it without "
                "read_only, to change it."
            )
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session in one read-only transaction that sees one consistent state.

        A record is read in several statements (rows, then their triggers,
        ports and settings), so every statement of a read must see the same
        committed state, or a writer committing in between makes the parts
        disagree (see :func:`catalog.db.engine.consistent_read`).
        """
        with self.engine.connect() as connection:
            connection = consistent_read(connection)
            with Session(bind=connection) as session:
                yield session
                session.rollback()

    @property
    def _dialect(self) -> str:
        return str(self.engine.dialect.name)

    # -- paths -------------------------------------------------------------------------

    def stored_path(self, path: Path | str) -> str:
        """How a path is stored: relative to the root when below it, else absolute."""
        return stored_path(path, self.root)

    def resolve_path(self, stored: str) -> Path:
        """The absolute path of a stored path."""
        path = Path(stored)
        if path.is_absolute() or self.root is None:
            return path
        return self.root / path

    # -- runs --------------------------------------------------------------------------

    def ensure_run(
        self,
        run_dir: Path,
        *,
        name: str | None = None,
        model_name: str | None = None,
        configuration: str | None = None,
        source: Source = Source.LIVE,
        status: RunStatus | None = None,
    ) -> RunRecord:
        """The run recorded for a run directory, recording it if it is new.

        Safe when many processes of one run call it at once: the first one
        creates the row, the others find it.

        Args:
            run_dir: The run directory.
            name: Short name; defaults to the directory's name.
            model_name: The model's name, if known.
            configuration: The yMMSL configuration text, if known.
            source: ``live`` or ``import``.
            status: The status a new run gets (default: ``running`` for live
                runs, ``unknown`` for imported ones); an existing run keeps its own.

        Returns:
            The run's record.
        """
        stored = self.stored_path(self.canonical_run_dir(Path(os.path.abspath(run_dir))))
        fields = {"model_name": model_name, "configuration": configuration}
        if status is None:
            status = RunStatus.RUNNING if source == Source.LIVE else RunStatus.UNKNOWN
        try:
            run_id = self._find_or_create_run(stored, name, source, status, fields)
        except IntegrityError:
            # PostgreSQL: another process created the row between our SELECT and
            # INSERT (SQLite's BEGIN IMMEDIATE rules this out); now it is there.
            run_id = self._find_or_create_run(stored, name, source, status, fields)
        return self.run(run_id)

    def recorded_run_dir(self, directory: Path) -> Path | None:
        """The run directory as recorded for the same real directory, or None if no run has it.

        A run is its real directory: reached through a symlink or its target,
        it is one run. Runs recorded before paths were resolved keep the form
        they were recorded under, so each recorded directory is compared
        resolved (one query over the runs, not their snapshots).
        """
        real = os.path.realpath(directory)
        with self.read_session() as session:
            stored = list(session.scalars(select(Run.run_dir).order_by(Run.id)))
        for form in stored:
            path = self.resolve_path(form)
            if (
                os.path.abspath(path) == os.path.abspath(directory)
                or os.path.realpath(path) == real
            ):
                return path
        return None

    def canonical_run_dir(self, directory: Path) -> Path:
        """The one path a run directory is recorded (and its files looked up) under.

        That is the path an existing run was recorded under, else the
        directory with every symlink resolved, so that recording through a
        symlink and through its target (an instance, the registry, import or
        watch) finds one run with one set of snapshot paths, never two.

        Args:
            directory: The run directory, absolute.
        """
        recorded = self.recorded_run_dir(directory)
        return recorded if recorded is not None else Path(os.path.realpath(directory))

    def _find_or_create_run(
        self,
        stored: str,
        name: str | None,
        source: Source,
        status: RunStatus,
        fields: dict[str, str | None],
    ) -> int:
        with self.write_session() as session:
            run = session.scalars(select(Run).where(Run.run_dir == stored)).one_or_none()
            if run is None:
                run = Run(
                    name=name or PurePosixPath(stored).name or stored,
                    run_dir=stored,
                    source=source,
                    status=status,
                    **fields,
                )
                session.add(run)
                session.flush()
            else:
                for key, value in fields.items():
                    if value and not getattr(run, key):
                        setattr(run, key, value)
            return int(run.id)

    def set_run_lineage(
        self,
        run_id: int,
        resumed_from_run_id: int | None,
        resumed_from_workflow_snapshot_id: int | None = None,
    ) -> None:
        """Record which run (and which of its workflow snapshots) a run resumed from."""
        with self.write_session() as session:
            run = session.get_one(Run, run_id)
            run.resumed_from_run_id = resumed_from_run_id
            run.resumed_from_workflow_snapshot_id = resumed_from_workflow_snapshot_id

    def run(self, run: int | str) -> RunRecord:
        """One run, by id or by name (a name must be unambiguous).

        Only the run asked for is read and counted, not the whole campaign.

        Raises:
            CatalogError: No such run, or the name is ambiguous.
        """
        return self._run_records(Run.id == self.run_id(run))[0]

    def run_id(self, run: int | str) -> int:
        """The id of a run given by id or by name, from the runs table alone.

        Queries filtering by run use this: it reads the ``runs`` table (by its
        name index), never the run's snapshots.

        Raises:
            CatalogError: No such run, or the name is ambiguous.
        """
        with self.read_session() as session:
            if isinstance(run, int):
                ids = list(session.scalars(select(Run.id).where(Run.id == run)))
            else:
                ids = list(session.scalars(select(Run.id).where(Run.name == run)))
                if not ids and run.isdigit():  # "--run 3" on the command line: an id
                    ids = list(session.scalars(select(Run.id).where(Run.id == int(run))))
            if len(ids) == 1:
                return int(ids[0])
            if not ids:
                names = list(session.scalars(select(Run.name).order_by(Run.id)))
                known = ", ".join(names) or "none"
                raise CatalogError(f"No run {run!r} in the catalog {self.location} (runs: {known})")
            found = session.execute(select(Run.id, Run.run_dir).where(Run.id.in_(ids)))
            choices = ", ".join(f"{rid} ({self.resolve_path(d)})" for rid, d in found)
            raise CatalogError(f"Run name {run!r} is ambiguous; use the run id: {choices}")

    def runs(self) -> RecordList[RunRecord]:
        """Every run in the catalog, oldest first."""
        return self._run_records()

    def run_summary(self, run: int | str) -> RunSummary:
        """One run at a glance: its record plus per-instance and per-status counts.

        The record already has the run's dates, status, simulation-time span,
        snapshot and workflow-snapshot counts and bytes; the summary adds how
        many snapshots each instance saved and how many are in each status.

        Raises:
            CatalogError: No such run, or the name is ambiguous.
        """
        run_id = self.run_id(run)
        with self.read_session() as session:
            record = self._run_records_in(session, Run.id == run_id)[0]
            per_instance = {
                str(instance): int(n)
                for instance, n in session.execute(
                    select(SnapshotRow.instance, func.count())
                    .where(SnapshotRow.run_id == run_id)
                    .group_by(SnapshotRow.instance)
                )
            }
            per_status = {
                SnapshotStatus(status): int(n)
                for status, n in session.execute(
                    select(SnapshotRow.status, func.count())
                    .where(SnapshotRow.run_id == run_id)
                    .group_by(SnapshotRow.status)
                )
            }
        ordered = dict(sorted(per_instance.items(), key=lambda item: instance_sort_key(item[0])))
        return RunSummary(
            run=record, snapshots_per_instance=ordered, snapshots_per_status=per_status
        )

    def _run_records(self, *conditions: Any) -> RecordList[RunRecord]:
        with self.read_session() as session:
            return self._run_records_in(session, *conditions)

    def _run_records_in(self, session: Session, *conditions: Any) -> RecordList[RunRecord]:
        """The runs matching ``conditions``, oldest first, each with its own counts.

        The counts, time span and bytes are per-run subqueries served by the
        run_id indexes, so asking for one run never reads the rest of the
        campaign.
        """

        def per_run(*columns: Any) -> Any:
            return select(*columns).where(SnapshotRow.run_id == Run.id).scalar_subquery()

        snapshots = per_run(func.count())
        first = per_run(func.min(SnapshotRow.timestamp))
        last = per_run(func.max(SnapshotRow.timestamp))
        size = per_run(func.sum(SnapshotRow.size_bytes))
        workflows = (
            select(func.count()).where(WorkflowSnapshotRow.run_id == Run.id).scalar_subquery()
        )
        query = (
            select(Run, snapshots, workflows, first, last, size).where(*conditions).order_by(Run.id)
        )
        return RecordList(
            RunRecord(
                id=run.id,
                name=run.name,
                run_dir=self.resolve_path(run.run_dir),
                model_name=run.model_name,
                source=Source(run.source),
                created_at=utc_time(run.created_at),
                finished_at=utc_time(run.finished_at) if run.finished_at else None,
                resumed_from_run_id=run.resumed_from_run_id,
                num_snapshots=int(n),
                status=RunStatus(run.status),
                resumed_from_workflow_snapshot_id=run.resumed_from_workflow_snapshot_id,
                num_workflow_snapshots=int(n_workflows),
                first_timestamp=None if t0 is None else float(t0),
                last_timestamp=None if t1 is None else float(t1),
                size_bytes=int(size_bytes or 0),
            )
            for run, n, n_workflows, t0, t1, size_bytes in session.execute(query)
        )

    def run_configuration(self, run_id: int) -> str | None:
        """The yMMSL configuration text recorded for a run, if any."""
        with self.read_session() as session:
            return session.get_one(Run, run_id).configuration

    def set_run_status(
        self, run_id: int, status: RunStatus, when: dt.datetime | None = None
    ) -> None:
        """Record where a run is in its life; ``finished`` and ``failed`` also set ``finished_at``.

        Args:
            run_id: The run.
            status: Its new status.
            when: When it ended (default: now); ignored for other statuses.
        """
        with self.write_session() as session:
            run = session.get_one(Run, run_id)
            run.status = status
            if status in (RunStatus.FINISHED, RunStatus.FAILED):
                run.finished_at = when or dt.datetime.now(dt.UTC)
            else:
                run.finished_at = None

    # -- recording snapshots -----------------------------------------------------------

    def record_snapshot(self, run_id: int, new: NewSnapshot) -> SnapshotRecord:
        """Record one snapshot in its own transaction and return the record.

        Raises:
            CatalogError: A snapshot with this path is already recorded (the
                existing row is left as it is).
        """
        snapshot_id, _order = self._insert_snapshot(run_id, new)
        return self._records_where(SnapshotFilter(), SnapshotRow.id == snapshot_id)[0]

    def record_snapshot_metadata(self, run_id: int, new: NewSnapshot) -> RecordedSnapshot:
        """Record one snapshot as cheaply as the backend allows; nothing is read back.

        This is the instance side's save (:class:`catalog.instance.SnapshotManager`):
        the manager's metadata is built from the values written
        (:func:`catalog.db.rows.written_metadata`), and equals
        ``to_metadata()`` of the record :meth:`record_snapshot` would read
        back. On PostgreSQL the whole transaction is one network round trip
        (:mod:`catalog.db.pg_recorder`, on a connection of its own, kept
        until :meth:`close`); on SQLite it is the transaction of
        :meth:`record_snapshot` without the read.

        Raises:
            CatalogError: A snapshot with this path is already recorded, or
                there is no run ``run_id``; nothing is written.
        """
        if self._dialect == "postgresql":
            return self._pg_recorder().record(run_id, self.stored_path(new.path), new)
        snapshot_id, order = self._insert_snapshot(run_id, new)
        row = snapshot_row(run_id, self.stored_path(new.path), order, new, dt.datetime.now(dt.UTC))
        children = child_rows(snapshot_id, new.snapshot)
        return RecordedSnapshot(
            snapshot_id, order, written_metadata(row, children, new.snapshot_filename)
        )

    def _insert_snapshot(self, run_id: int, new: NewSnapshot) -> tuple[int, int]:
        """Insert one snapshot through the ORM's session; its id and submission order."""
        stored = self.stored_path(new.path)
        with self.write_session() as session:
            lock_run(session, run_id)
            existing = session.scalar(select(SnapshotRow.id).where(SnapshotRow.path == stored))
            if existing is not None:
                raise CatalogError(
                    f"{new.path} is already recorded in {self.location} (snapshot {existing}); "
                    "a snapshot file is never recorded twice."
                )
            order = next_submission_order(session, run_id)
            snapshot_id = insert_snapshots(session, run_id, [(stored, order, new)])[0]
        return snapshot_id, order

    def _pg_recorder(self) -> PgSnapshotRecorder:
        """The PostgreSQL recorder, on a connection taken from the engine (opened once).

        The connection is detached from the engine's pool, since the recorder
        switches it to autocommit, and has the pool's set-up (``search_path``
        from the URL, ``lock_timeout``). One that broke (the server went
        away) is replaced at the next save.
        """
        from catalog.db.pg_recorder import PgSnapshotRecorder

        with self._pg_recorder_lock:
            recorder = self._pg_recorder_instance
            if recorder is not None and not recorder.usable:
                recorder.close()
                recorder = None
            if recorder is None:
                pooled = self.engine.raw_connection()
                connection = pooled.driver_connection
                if connection is None:  # pragma: no cover - a checked-out connection has one
                    raise CatalogError(f"No database connection to {self.location}")
                pooled.detach()
                connection.autocommit = True
                recorder = PgSnapshotRecorder(connection, self.location)
                self._pg_recorder_instance = recorder
            return recorder

    def record_snapshots(
        self,
        run_id: int,
        items: Iterable[NewSnapshot],
        *,
        batch_size: int = BULK_BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Record many snapshots in batched transactions, skipping recorded paths.

        Submission order follows the order of ``items``. Re-recording the same
        files adds nothing, which makes importing a directory twice harmless.

        Args:
            run_id: The run they belong to.
            items: The snapshots, in submission order.
            batch_size: Rows per transaction.
            progress: Called with the number of items handled after each batch.

        Returns:
            How many new snapshots were recorded.
        """
        added = 0
        batch: list[NewSnapshot] = []
        for item in items:
            batch.append(item)
            if len(batch) >= batch_size:
                added += len(self.record_snapshot_batch(run_id, batch))
                if progress:
                    progress(len(batch))
                batch = []
        if batch:
            added += len(self.record_snapshot_batch(run_id, batch))
            if progress:
                progress(len(batch))
        return added

    def record_snapshot_batch(
        self,
        run_id: int,
        batch: Sequence[NewSnapshot | MetadataSnapshot],
        *,
        stored: Sequence[str] | None = None,
    ) -> dict[str, int]:
        """Record a batch in one transaction, skipping recorded paths; give back the new ids.

        Args:
            run_id: The run they belong to.
            batch: The snapshots, in submission order.
            stored: ``stored_path(item.path)`` of each item, if the caller
                has them already (the registry keys its submissions by them).

        Returns:
            ``stored_path(path)`` -> id for the snapshots recorded now.
        """
        if stored is None:
            stored = [self.stored_path(item.path) for item in batch]
        elif len(stored) != len(batch):
            raise ValueError("record_snapshot_batch: one stored path per snapshot is needed")
        with self.write_session() as session:
            lock_run(session, run_id)
            known = set(ids_by_path(session, stored))
            order = next_submission_order(session, run_id)
            rows = []
            for path, item in zip(stored, batch, strict=True):
                if path in known:
                    continue
                known.add(path)
                rows.append((path, order, item))
                order += 1
            ids = insert_snapshots(session, run_id, rows) if rows else []
        return {path: sid for (path, _order, _item), sid in zip(rows, ids, strict=True)}

    # -- queries -----------------------------------------------------------------------

    def snapshots(
        self,
        run: int | str | None = None,
        instance: str | None = None,
        final: bool | None = None,
        *,
        after_time: float | None = None,
        before_time: float | None = None,
        trigger: str | None = None,
        limit: int | None = None,
        order_by: str = "submission",
    ) -> RecordList[SnapshotRecord]:
        """Recorded snapshots, by default in run and submission order.

        Args:
            run: Only this run (id or name).
            instance: Only this instance (``micro[3]``); a vector's base name
                (``micro``) means all its elements; ``*`` and ``?`` make a
                pattern (``micro[*]``, ``micro*``).
            final: Only final (True) or only intermediate (False) snapshots.
            after_time: Only those at or after this simulation time.
            before_time: Only those at or before this simulation time.
            trigger: Only those with this trigger (exact, or a ``*`` pattern).
            limit: At most this many (after ordering).
            order_by: ``submission`` (default), ``timestamp``,
                ``wallclock_time``, ``recorded_at``, ``instance``, ``id`` or
                ``size_bytes``; ``-`` in front for descending.

        Returns:
            The matching records.

        Raises:
            QueryError: A filter cannot be right (negative limit, unknown ordering...).
            CatalogError: No such run.
        """
        query = self.snapshot_filter(
            run, instance, final, after_time, before_time, trigger, limit, order_by
        )
        return self._records_where(query)

    def iter_snapshots(
        self,
        run: int | str | None = None,
        instance: str | None = None,
        final: bool | None = None,
        *,
        after_time: float | None = None,
        before_time: float | None = None,
        trigger: str | None = None,
        limit: int | None = None,
        order_by: str = "submission",
        batch_size: int = 2000,
    ) -> Iterator[SnapshotRecord]:
        """Like :meth:`snapshots`, but yields records batch by batch in constant memory.

        For exporting catalogs of millions of snapshots (``snapshots --json``):
        rows stream from the database cursor, and each batch's triggers, ports
        and settings are read with it, all in one read transaction, so the
        whole iteration sees one consistent state.
        """
        query = self.snapshot_filter(
            run, instance, final, after_time, before_time, trigger, limit, order_by
        )
        with self.read_session() as session:
            names = _run_names(session, query.run_id)
            children = SnapshotChildren()
            for rows in fetch_batches(session, self._snapshot_select(query), batch_size):
                children.load(session, _ids_of(rows, None))
                yield from self._build_records(rows, children, names)

    def snapshot_filter(
        self,
        run: int | str | None = None,
        instance: str | None = None,
        final: bool | None = None,
        after_time: float | None = None,
        before_time: float | None = None,
        trigger: str | None = None,
        limit: int | None = None,
        order_by: str = "submission",
    ) -> SnapshotFilter:
        """The checked filter of a snapshot query (the run looked up by id or name)."""
        return SnapshotFilter(
            run_id=None if run is None else self.run_id(run),
            instance=instance,
            final=final,
            after_time=after_time,
            before_time=before_time,
            trigger=trigger,
            limit=limit,
            order_by=order_by,
        )

    def snapshots_frame(
        self,
        run: int | str | None = None,
        instance: str | None = None,
        final: bool | None = None,
        *,
        after_time: float | None = None,
        before_time: float | None = None,
        trigger: str | None = None,
        limit: int | None = None,
        order_by: str = "submission",
    ) -> Any:
        """The matching snapshots as a pandas DataFrame, read straight from SQL.

        Takes the filters of :meth:`snapshots`. No record is built per row, so
        this is the way to analyse millions of snapshots; see
        :mod:`catalog.frames` for the columns (typed: datetimes as UTC
        datetimes, booleans as bools, NaN timestamps as NaN, paths absolute).
        Needs the ``pandas`` extra.
        """
        from catalog.frames import snapshots_frame

        query = self.snapshot_filter(
            run, instance, final, after_time, before_time, trigger, limit, order_by
        )
        return snapshots_frame(self, query)

    def snapshot_by_path(self, path: Path | str) -> SnapshotRecord | None:
        """The record of a snapshot file, or None if it is not recorded."""
        found = self._records_where(SnapshotFilter(), SnapshotRow.path == self.stored_path(path))
        return found[0] if found else None

    def snapshot_ids_by_sha256(self, digests: Sequence[str]) -> dict[str, list[int]]:
        """Ids of the present snapshots whose file has each content hash, oldest first.

        A run directory copied or moved off a cluster keeps its files' bytes,
        so the hash recognises a snapshot whatever its path now is.

        Returns:
            sha256 -> snapshot ids, for the digests that are recorded.
        """
        query = (
            select(SnapshotRow.sha256, SnapshotRow.id)
            .where(SnapshotRow.status == SnapshotStatus.PRESENT)
            .order_by(SnapshotRow.id)
        )
        found: dict[str, list[int]] = {}
        with self.read_session() as session:
            for digest, sid in select_in_chunks(
                session, query, SnapshotRow.sha256, list(dict.fromkeys(digests))
            ):
                found.setdefault(str(digest), []).append(sid)
        return found

    def snapshot_runs(self, snapshot_ids: Iterable[int]) -> dict[int, int]:
        """The run of each snapshot, by id, without loading whole records."""
        query = select(SnapshotRow.id, SnapshotRow.run_id)
        with self.read_session() as session:
            rows = select_in_chunks(
                session, query, SnapshotRow.id, list(dict.fromkeys(snapshot_ids))
            )
            return {sid: run_id for sid, run_id in rows}

    def snapshot_ids(
        self, paths: Sequence[Path | str], *, already_stored: bool = False
    ) -> dict[str, int]:
        """Ids of recorded snapshot files, in one query per few hundred paths.

        Args:
            paths: Snapshot files (absolute, or relative to the working directory).
            already_stored: The paths are already as :meth:`stored_path` gives
                them (saves converting them again in bulk work).

        Returns:
            ``stored_path(path)`` -> id, for the paths that are recorded.
        """
        keys = (str(p) for p in paths) if already_stored else (self.stored_path(p) for p in paths)
        with self.read_session() as session:
            return ids_by_path(session, list(dict.fromkeys(keys)))

    def snapshot_paths(self, snapshot_ids: Iterable[int]) -> dict[int, Path]:
        """Where snapshot files are now (absolute), by id, without loading whole records."""
        ids = list(dict.fromkeys(snapshot_ids))
        query = select(SnapshotRow.id, SnapshotRow.path)
        with self.read_session() as session:
            rows = select_in_chunks(session, query, SnapshotRow.id, ids)
            return {sid: self.resolve_path(path) for sid, path in rows}

    def snapshot(self, snapshot_id: int) -> SnapshotRecord:
        """One snapshot by id.

        Raises:
            CatalogError: No such snapshot.
        """
        found = self._records_where(SnapshotFilter(), SnapshotRow.id == snapshot_id)
        if not found:
            raise CatalogError(f"No snapshot with id {snapshot_id} in {self.location}")
        return found[0]

    def _snapshot_select(self, query: SnapshotFilter, *extra: Any) -> Any:
        """The SELECT of snapshot rows (the columns records are built from)."""
        statement: Any = (
            select(*_RECORD_COLUMNS)
            .where(*query.conditions(self._dialect), *extra)
            .order_by(*query.ordering())
        )
        return statement if query.limit is None else statement.limit(query.limit)

    def _records_where(self, query: SnapshotFilter, *extra: Any) -> RecordList[SnapshotRecord]:
        """Records matching a filter, read in five statements of one consistent transaction.

        The children (triggers, ports, settings) are read after the rows,
        one statement per table (see :mod:`catalog.db.children`): all of
        them for an unfiltered read, by id range when the rows' ids lie close
        together (a run in submission order), else by the same filter as the
        rows. The runs' names are read apart, once per run rather than per row.
        """
        statement = self._snapshot_select(query, *extra)
        with self.read_session() as session, gc_paused():
            rows = fetch_all(session, statement)
            children = SnapshotChildren()
            names: dict[int, str] = {}
            if rows:
                conditions = query.conditions(self._dialect)
                if query.limit is None and not extra and not conditions:
                    ids: Any = None  # every snapshot: no need to restrict the children
                else:
                    matching = select(SnapshotRow.id).where(*conditions, *extra)
                    if query.limit is not None:
                        matching = matching.order_by(*query.ordering()).limit(query.limit)
                    ids = _ids_of(rows, matching)
                children.load(session, ids)
                names = _run_names(session, query.run_id)
            records = RecordList(self._build_records(rows, children, names))
            # Dropped before collection resumes, so that it need not walk them.
            del rows, children
        return records

    def _build_records(
        self, rows: Sequence[Sequence[Any]], children: SnapshotChildren, run_names: dict[int, str]
    ) -> Iterator[SnapshotRecord]:
        """Records from rows of :data:`_RECORD_COLUMNS`, their children and their runs' names.

        Kept lean, since a notebook may ask for a hundred thousand records at
        once: no ORM objects, each directory's :class:`~pathlib.Path` built
        once and the file name joined to it, times, statuses and children
        (see :class:`~catalog.db.children.SnapshotChildren`) decoded once per
        distinct value. A frozen dataclass's ``__init__`` sets each field
        through ``object.__setattr__``, which costs more than the rest of
        building a record, so the fields are stored straight into the
        record's instance dict, in field order: the same fields, so the
        record is equal and frozen alike (see :func:`_fills_every_field` for
        when the constructor is used instead). Stored one by one in that
        order, the dicts of all records share one table of keys, which makes
        each a third of the size of a dict built apart and copied in, and
        faster to fill.
        """
        root = None if self.root is None else str(self.root)
        triggers, ports, settings = children.triggers, children.ports, children.settings
        trigger_values = children.trigger_values
        port_values = children.port_values
        setting_values = children.setting_values
        nan = math.nan  # the one NaN object, so that equal records compare equal
        directories: dict[str, Path] = {}
        child = _CHILD_PATH
        times: dict[Any, dt.datetime] = {}
        statuses = _STATUSES
        new = object.__new__
        fast: bool | None = None  # decided on the first row
        for (
            sid, run_id, instance, sequence, order, stored, filename, version,
            size, sha, wallclock, timestamp, next_ts, flags, status, recorded_at, copied_from,
            changed_at,
        ) in rows:  # fmt: skip
            head, slash, name = stored.rpartition("/")
            head += slash  # "dir/", "/" or "": a relative and an absolute head differ
            directory = directories.get(head)
            if directory is None:
                directory = directories[head] = (
                    Path(head) if root is None or head.startswith("/") else Path(root, head)
                )
            recorded = times.get(recorded_at)
            if recorded is None:
                recorded = times[recorded_at] = utc_time(recorded_at)
            text = triggers.get(sid)
            snapshot_triggers = trigger_values.get(text)
            if snapshot_triggers is None:
                snapshot_triggers = trigger_values[text] = decode_triggers(text)  # type: ignore[arg-type]
            text = ports.get(sid)
            snapshot_ports = port_values.get(text)
            if snapshot_ports is None:
                snapshot_ports = port_values[text] = decode_ports(text)  # type: ignore[arg-type]
            text = settings.get(sid)
            snapshot_settings = setting_values.get(text)
            if snapshot_settings is None:
                snapshot_settings = setting_values[text] = decode_settings(text)  # type: ignore[arg-type]
            if fast:
                record = new(SnapshotRecord)
                fields = record.__dict__
            else:
                fields = {}
            fields["id"] = sid
            fields["run"] = run_names[run_id]
            fields["run_id"] = run_id
            fields["instance"] = instance
            fields["sequence"] = sequence
            fields["submission_order"] = order
            fields["path"] = child(directory, name) if name and name != "." else directory / name
            fields["snapshot_filename"] = filename
            fields["format_version"] = version
            fields["size_bytes"] = size
            fields["sha256"] = sha
            fields["triggers"] = snapshot_triggers
            fields["wallclock_time"] = nan if flags & _WALLCLOCK_NAN else (wallclock or 0.0)
            fields["timestamp"] = nan if flags & _TIMESTAMP_NAN or timestamp is None else timestamp
            fields["next_timestamp"] = nan if flags & _NEXT_TIMESTAMP_NAN else next_ts
            fields["port_message_counts"] = (
                {port: counts.copy() for port, counts in snapshot_ports}
                if snapshot_ports.__class__ is tuple
                else snapshot_ports()  # type: ignore[operator]
            )
            fields["is_final_snapshot"] = flags & _FINAL != 0
            fields["is_implicit"] = flags & _IMPLICIT != 0
            fields["settings_overlay"] = (
                dict(snapshot_settings)
                if snapshot_settings.__class__ is tuple
                else snapshot_settings()  # type: ignore[operator]
            )
            fields["status"] = statuses.get(status) or SnapshotStatus(status)
            fields["recorded_at"] = recorded
            fields["copied_from_snapshot_id"] = copied_from
            fields["status_changed_at"] = utc_time(changed_at) if changed_at else None
            if fast:
                yield record
                continue
            if fast is None:
                fast = _fills_every_field(fields)
            if fast:
                record = new(SnapshotRecord)
                record.__dict__.update(fields)
                yield record
            else:
                yield SnapshotRecord(**fields)

    # -- workflow snapshots -------------------------------------------------------------

    def record_workflow_snapshots(
        self, run_id: int, items: Sequence[NewWorkflowSnapshot]
    ) -> list[int]:
        """Record workflow snapshots of a run in one transaction, in the order given.

        A workflow snapshot is its run and its members: one the run already
        has (found earlier by the registry, import, reindex or watch), or one
        given twice, is skipped. The run's row lock makes the check and the
        insert one step for concurrent writers, and a unique constraint on
        the members' key backs it up in the database.

        Returns:
            The ids of those recorded now, in order (skipped ones left out).
        """
        if not items:
            return []
        with self.write_session() as session:
            lock_run(session, run_id)
            known_keys = set(
                session.scalars(
                    select(WorkflowSnapshotRow.members_key).where(
                        WorkflowSnapshotRow.run_id == run_id,
                        WorkflowSnapshotRow.members_key.is_not(None),
                    )
                )
            )
            last = session.scalar(
                select(func.max(WorkflowSnapshotRow.sequence)).where(
                    WorkflowSnapshotRow.run_id == run_id
                )
            )
            first = sequence = 0 if last is None else int(last)
            member_ids = {m for item in items for m in item.members.values() if m is not None}
            times = _finite_timestamps(session, member_ids)
            now = dt.datetime.now(dt.UTC)  # one transaction, one time of creation
            rows: list[tuple[Any, ...]] = []
            recorded: list[NewWorkflowSnapshot] = []
            for item in items:
                key = members_key(item.members)
                if key in known_keys:
                    continue
                known_keys.add(key)
                sequence += 1
                member_times = [times[m] for m in item.members.values() if m in times]
                resume_file = self.stored_path(item.resume_file) if item.resume_file else None
                rows.append(
                    (
                        run_id, sequence, item.completed_by_snapshot_id,
                        max(member_times) if member_times else None, item.description,
                        resume_file, str(item.source), now, str(WorkflowStatus.RESUMABLE), key,
                    )
                )  # fmt: skip
                recorded.append(item)
            if not rows:
                return []
            # Bulk rows, as snapshots are recorded: the ORM's insert and flush per
            # workflow snapshot cost more than its thousand member rows. The column
            # types' bind processors (executemany's convert) store what the ORM stores.
            executemany(session, WorkflowSnapshotRow.__tablename__, _WORKFLOW_COLUMNS, rows)
            new_ids = session.execute(
                select(WorkflowSnapshotRow.sequence, WorkflowSnapshotRow.id).where(
                    WorkflowSnapshotRow.run_id == run_id,
                    WorkflowSnapshotRow.sequence > first,
                    WorkflowSnapshotRow.sequence <= sequence,
                )
            )
            by_sequence = {int(number): int(workflow_id) for number, workflow_id in new_ids}
            ids = [by_sequence[first + index] for index in range(1, len(rows) + 1)]
            executemany(
                session,
                WorkflowSnapshotMember.__tablename__,
                ("workflow_snapshot_id", "instance", "snapshot_id"),
                [
                    (workflow_id, instance, snapshot_id)
                    for workflow_id, item in zip(ids, recorded, strict=True)
                    for instance, snapshot_id in item.members.items()
                ],
            )
        return ids

    def delete_workflow_snapshots(self, run_id: int, source: Source | None = None) -> int:
        """Forget a run's workflow snapshots (before recomputing them); files stay.

        Args:
            run_id: The run.
            source: Only those with this source (``registry``, ``import``,
                ``reindex``); all if None.

        Returns:
            How many were deleted.
        """
        conditions = [WorkflowSnapshotRow.run_id == run_id]
        if source is not None:
            conditions.append(WorkflowSnapshotRow.source == source)
        with self.write_session() as session:
            lock_run(session, run_id)
            rows = list(session.scalars(select(WorkflowSnapshotRow).where(*conditions)))
            for row in rows:
                session.delete(row)
        return len(rows)

    def workflow_snapshots(
        self, run: int | str | None = None
    ) -> RecordList[WorkflowSnapshotRecord]:
        """Recorded workflow snapshots, per run in the order they were found."""
        conditions: list[Any] = []
        if run is not None:
            conditions.append(WorkflowSnapshotRow.run_id == self.run_id(run))
        return self._workflow_records_where(*conditions)

    def workflow_snapshots_with_member(
        self, snapshot_id: int
    ) -> RecordList[WorkflowSnapshotRecord]:
        """The recorded workflow snapshots that have this snapshot as a member."""
        having = select(WorkflowSnapshotMember.workflow_snapshot_id).where(
            WorkflowSnapshotMember.snapshot_id == snapshot_id
        )
        return self._workflow_records_where(WorkflowSnapshotRow.id.in_(having))

    def workflow_snapshot_ids_by_members(
        self, run_id: int, member_sets: Sequence[dict[str, int | None]]
    ) -> dict[str, int]:
        """Which of these member sets the run has recorded as workflow snapshots.

        Returns:
            members key (:func:`catalog.db.identity.members_key`) -> workflow snapshot id.
        """
        keys = list(dict.fromkeys(members_key(members) for members in member_sets))
        query = select(WorkflowSnapshotRow.members_key, WorkflowSnapshotRow.id).where(
            WorkflowSnapshotRow.run_id == run_id
        )
        with self.read_session() as session:
            rows = select_in_chunks(session, query, WorkflowSnapshotRow.members_key, keys)
            return {str(key): int(wid) for key, wid in rows}

    def workflow_snapshot(self, workflow_snapshot_id: int) -> WorkflowSnapshotRecord:
        """One workflow snapshot by id.

        Raises:
            CatalogError: No such workflow snapshot.
        """
        found = self._workflow_records_where(WorkflowSnapshotRow.id == workflow_snapshot_id)
        if not found:
            raise CatalogError(
                f"No workflow snapshot with id {workflow_snapshot_id} in {self.location}"
            )
        return found[0]

    def latest_workflow_snapshot(
        self, run: int | str | None = None, before_time: float | None = None
    ) -> WorkflowSnapshotRecord | None:
        """The newest workflow snapshot by simulation time.

        A workflow snapshot's simulation time is its largest finite member
        timestamp; ties go to the one found last. With ``before_time``, only
        workflow snapshots whose members are all at or before that time count.
        Workflow snapshots marked ``unresumable`` are passed over; to also
        check the member files, use :func:`catalog.resume.choose_workflow_snapshot`.

        Args:
            run: Only this run (id or name); default: the whole campaign.
            before_time: Latest simulation time allowed.

        Returns:
            The record, or None if there is none.
        """
        # Those marked unresumable (a member missing, corrupt or deleted; see
        # ``muscle-catalog verify``) are never offered as resume points. The
        # newest is the largest timestamp (unknown ones last), then the newest
        # run and sequence: the order of the timestamp indexes, so this reads
        # one index entry or a few, however long the run.
        conditions: list[Any] = [WorkflowSnapshotRow.status != WorkflowStatus.UNRESUMABLE]
        if run is not None:
            conditions.append(WorkflowSnapshotRow.run_id == self.run_id(run))
        if before_time is not None:
            conditions.append(
                (WorkflowSnapshotRow.timestamp <= before_time)
                | WorkflowSnapshotRow.timestamp.is_(None)
            )
        newest = (
            select(WorkflowSnapshotRow.id)
            .where(*conditions)
            .order_by(
                WorkflowSnapshotRow.timestamp.desc().nulls_last(),
                WorkflowSnapshotRow.run_id.desc(),
                WorkflowSnapshotRow.sequence.desc(),
            )
            .limit(1)
        )
        with self.read_session() as session:
            found = session.scalar(newest)
        if found is None:
            return None
        return self._workflow_records_where(WorkflowSnapshotRow.id == found)[0]

    def _workflow_records_where(self, *conditions: Any) -> RecordList[WorkflowSnapshotRecord]:
        query = (
            select(WorkflowSnapshotRow, Run.name)
            .join(Run, Run.id == WorkflowSnapshotRow.run_id)
            .where(*conditions)
            .order_by(WorkflowSnapshotRow.run_id, WorkflowSnapshotRow.sequence)
        )
        with self.read_session() as session:
            rows = list(session.execute(query))
            ids = select(WorkflowSnapshotRow.id).where(*conditions).scalar_subquery()
            members: dict[int, list[tuple[str, int | None, str | None]]] = defaultdict(list)
            for wid, inst, sid, fname in session.execute(
                select(
                    WorkflowSnapshotMember.workflow_snapshot_id,
                    WorkflowSnapshotMember.instance,
                    WorkflowSnapshotMember.snapshot_id,
                    SnapshotRow.snapshot_filename,
                )
                .outerjoin(SnapshotRow, SnapshotRow.id == WorkflowSnapshotMember.snapshot_id)
                .where(WorkflowSnapshotMember.workflow_snapshot_id.in_(ids))
            ):
                members[wid].append((inst, sid, fname))
            completed_by = WorkflowSnapshotRow.completed_by_snapshot_id
            completed: dict[int, str] = {
                wid: fname
                for wid, fname in session.execute(
                    select(WorkflowSnapshotRow.id, SnapshotRow.snapshot_filename)
                    .join(SnapshotRow, SnapshotRow.id == completed_by)
                    .where(WorkflowSnapshotRow.id.in_(ids))
                )
            }
            records = RecordList[WorkflowSnapshotRecord]()
            for row, run_name in rows:
                ordered = sorted(members[row.id], key=lambda m: instance_sort_key(m[0]))
                records.append(
                    WorkflowSnapshotRecord(
                        id=row.id,
                        run=run_name,
                        run_id=row.run_id,
                        sequence=row.sequence,
                        members={inst: fname for inst, _sid, fname in ordered},
                        member_ids={inst: sid for inst, sid, _fname in ordered},
                        completed_by=completed.get(row.id),
                        timestamp=row.timestamp,
                        description=row.description,
                        resume_file=self.resolve_path(row.resume_file) if row.resume_file else None,
                        source=Source(row.source),
                        created_at=utc_time(row.created_at),
                        status=WorkflowStatus(row.status),
                    )
                )
            return records

    # -- schema ------------------------------------------------------------------------

    @staticmethod
    def upgrade(
        path_or_url: str | os.PathLike[str],
    ) -> tuple[str | None, str, Path | None]:
        """Upgrade a catalog to this release's schema (SQLite files are backed up first).

        Kept here for the notebook API; :func:`catalog.db.versioning.upgrade_location`
        does the work.

        Returns:
            ``(old revision, new revision, backup file or None)``.
        """
        return upgrade_location(path_or_url)


#: The columns :meth:`Catalog.record_workflow_snapshots` writes, in its rows' order.
_WORKFLOW_COLUMNS = (
    "run_id",
    "sequence",
    "completed_by_snapshot_id",
    "timestamp",
    "description",
    "resume_file",
    "source",
    "created_at",
    "status",
    "members_key",
)


def _finite_timestamps(session: Session, snapshot_ids: set[int]) -> dict[int, float]:
    """Finite timestamps of the given snapshots (NaN and infinities left out)."""
    return {
        sid: ts
        for sid, ts in timestamps_by_id(session, sorted(snapshot_ids)).items()
        if ts is not None and abs(ts) != float("inf")
    }


#: The bits of the flags column of :data:`_RECORD_COLUMNS`, one per boolean column.
_WALLCLOCK_NAN, _TIMESTAMP_NAN, _NEXT_TIMESTAMP_NAN, _FINAL, _IMPLICIT = 1, 2, 4, 8, 16


def _flags(*bits: tuple[Any, int]) -> Any:
    """One integer column of boolean columns (each set bit a true one).

    Every column a row hands over costs the driver as much as a small
    integer; the five booleans of a snapshot row come as one.
    """
    total: Any = None
    for column, bit in bits:
        term = case((column, literal_column(str(bit))), else_=literal_column("0"))
        total = term if total is None else total + term
    return total


#: The columns a :class:`SnapshotRecord` is built from, in the order ``_build_records`` unpacks.
_RECORD_COLUMNS = (
    SnapshotRow.id,
    SnapshotRow.run_id,
    SnapshotRow.instance,
    SnapshotRow.sequence,
    SnapshotRow.submission_order,
    SnapshotRow.path,
    SnapshotRow.snapshot_filename,
    SnapshotRow.format_version,
    SnapshotRow.size_bytes,
    SnapshotRow.sha256,
    SnapshotRow.wallclock_time,
    SnapshotRow.timestamp,
    SnapshotRow.next_timestamp,
    _flags(
        (SnapshotRow.wallclock_time_nan, _WALLCLOCK_NAN),
        (SnapshotRow.timestamp_nan, _TIMESTAMP_NAN),
        (SnapshotRow.next_timestamp_nan, _NEXT_TIMESTAMP_NAN),
        (SnapshotRow.is_final_snapshot, _FINAL),
        (SnapshotRow.is_implicit, _IMPLICIT),
    ),
    SnapshotRow.status,
    SnapshotRow.recorded_at,
    SnapshotRow.copied_from_snapshot_id,
    SnapshotRow.status_changed_at,
)


def _fills_every_field(fields: dict[str, Any]) -> bool:
    """Whether a record can be built by filling its dict with ``fields``.

    Only if they are exactly the dataclass's fields and nothing else runs on
    construction (no ``__post_init__``, no slots); should
    :class:`~catalog.records.SnapshotRecord` ever change that way, records
    are built by its constructor again, slower but right.
    """
    names = {f.name for f in dataclasses.fields(SnapshotRecord)}
    return (
        set(fields) == names
        and not hasattr(SnapshotRecord, "__post_init__")
        and "__slots__" not in vars(SnapshotRecord)
    )


def _run_names(session: Session, run_id: int | None) -> dict[int, str]:
    """Run id -> name, of one run or of all (a read of the runs table alone)."""
    query = select(Run.id, Run.name)
    if run_id is not None:
        query = query.where(Run.id == run_id)
    return {rid: name for rid, name in session.execute(query)}


def _ids_of(rows: Sequence[Sequence[Any]], otherwise: Any) -> Any:
    """How to select the children of ``rows`` (whose first column is the id).

    Ids close together (a run in submission order) give their id range: one
    range scan per child table, a few children of other snapshots read along
    and never looked up. Other ids give ``otherwise`` (a SELECT of the ids
    by the rows' own filter), or, when that is None, the ids themselves.
    """
    ids = list(map(itemgetter(0), rows))
    low, high = min(ids), max(ids)
    if high - low < 2 * len(ids):
        return range(low, high + 1)
    return ids if otherwise is None else otherwise


#: ``directory / name`` for a plain file name, without parsing the name again: pathlib's
#: own helper for ``iterdir`` where Python has it (3.11-3.13), else the operator. Three
#: times faster, which matters for a hundred thousand records.
_CHILD_PATH: Callable[[Path, str], Path] = getattr(
    Path, "_make_child_relpath", lambda directory, name: directory / name
)
#: Each snapshot status by its stored text (a dict lookup per row beats an enum call).
_STATUSES: dict[str, SnapshotStatus] = {status.value: status for status in SnapshotStatus}


def open_catalog(
    path_or_url: str | os.PathLike[str] | None = None,
    *,
    create: bool = False,
    read_only: bool = False,
    network_filesystem: bool | None = None,
    lock_timeout_s: float | None = None,
) -> Catalog:
    """Open a snapshot catalog (and with ``create=True``, create it if it is new).

    Args:
        path_or_url: A SQLite file path or a SQLAlchemy URL such as
            ``postgresql+psycopg://user@host/campaign``. Defaults to the
            ``MUSCLE_SNAPSHOT_CATALOG`` environment variable, else the
            nearest ``snapshot_catalog.sqlite`` here or above, else
            ``./snapshot_catalog.sqlite``.
        create: Create the catalog if the file is missing or the database
            empty. Off by default, so that a mistyped path is an error
            rather than a new, empty catalog.
        read_only: Never write: SQLite opens the file with ``mode=ro``, and
            writing methods raise :class:`~catalog.errors.CatalogReadOnlyError`.
            A file that cannot be written (permissions, a read-only mount) is
            opened this way by itself.
        network_filesystem: SQLite only: force (True) or disable (False) the
            journal mode for network filesystems; None detects it.
        lock_timeout_s: Seconds a write waits for a lock another process
            holds before failing; None: ``MUSCLE_CATALOG_LOCK_TIMEOUT``, else
            60 (see :func:`catalog.db.sqlite_settings.lock_timeout`).

    Returns:
        The open catalog; use it as a context manager or call ``close()``.

    Raises:
        CatalogNotFoundError: There is no catalog file and ``create`` is False.
        NotACatalogError: The file or database holds something else.
        CatalogTooOldError: The catalog needs ``muscle-catalog upgrade``.
        CatalogTooNewError: The catalog was written by a newer release.
        DatabaseDriverError: The URL's database driver is not installed or supported.
    """
    if path_or_url is None:
        path_or_url = default_catalog_in(Path())
    return Catalog(
        to_url(path_or_url),
        create=create,
        read_only=read_only,
        network_filesystem=network_filesystem,
        lock_timeout_s=lock_timeout_s,
    )
