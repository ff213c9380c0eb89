"""The manager side: SnapshotRegistry finds workflow snapshots as submissions arrive.

The interface is MUSCLE3's ``SnapshotRegistry(configuration, snapshot_folder)``
with ``register_snapshot(instance, metadata)`` and ``shutdown()``; adapting to
the exact arguments a MUSCLE3 release's manager passes is the job of
:mod:`catalog.muscle3.manager`. Each submission is checked
(:mod:`catalog.submission`), added to the search graph
(:mod:`catalog.workflow_search`), and when it completes a workflow snapshot
that workflow snapshot is written as a ``snapshot_*.ymmsl`` resume file with
MUSCLE3's content. Recording in the catalog (the submission's snapshot row,
if the instance did not record it itself, then the workflow snapshot) follows,
in submission order.

Differences from MUSCLE3, all deliberate:

* one workflow snapshot per submission, the newest, instead of all of them
  (which can be exponentially many and hang the manager);
* models with a single instance work (MUSCLE3's registry crashes);
* no limit of 100 resume files per second, and an error never ends the
  registry thread silently: it is logged and processing continues;
* work is batched: submissions waiting in the queue are handled together,
  with one catalog lookup, one insert and one workflow-snapshot transaction.

Nothing is lost to the catalog's troubles:

* a malformed submission (wrong types, negative or 64-bit-overflowing counts,
  NUL bytes, an instance the model does not have) is rejected on its
  own, logged with its instance and file, and counted;
* a submission the database refuses is split off its batch
  (:func:`catalog.resilience.record_isolating`), the rest recorded;
* transient errors (a locked SQLite file, a lost or restarted PostgreSQL)
  are retried with capped exponential backoff, 0.05 s to 5 s, for as long as
  the registry runs. The search does not wait for the catalog: submissions
  keep being accepted and searched, and resume files written, in submission
  order; recording catches up, still in order, when the catalog is back;
* what is still unrecorded at shutdown goes to a spill file
  (:mod:`catalog.spill`) that ``muscle-catalog import`` and
  ``muscle-catalog verify --fix`` replay;
* the same file submitted twice is processed once.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, NamedTuple

from catalog.catalog import Catalog, open_catalog
from catalog.db.fast_read import gc_paused
from catalog.enums import RunStatus, Source
from catalog.errors import CatalogError
from catalog.lineage import link_resumed_run
from catalog.location import PathsBelow, default_catalog_in
from catalog.records import NewWorkflowSnapshot
from catalog.resilience import Backoff, is_transient, record_isolating
from catalog.resume_file import MemberSummary, describe, resume_document, write_resume_file
from catalog.run_dir import dump_ymmsl, run_dir_of_resume_folder
from catalog.spill import snapshot_entry, spill_path, workflow_entry, write_spill
from catalog.submission import (
    Submission,
    SubmissionChecker,
    SubmissionError,
    snapshot_to_record,
)
from catalog.topology import Topology
from catalog.workflow_search import SnapshotGraph, SnapshotNode, WorkflowSnapshot

__all__ = ["MAX_BATCH", "RegistryStats", "SnapshotRegistry", "Submission"]

_logger = logging.getLogger(__name__)

#: Most submissions handled in one batch (one set of catalog transactions).
MAX_BATCH = 2000

#: Default seconds ``shutdown`` keeps trying an unavailable catalog before spilling.
SHUTDOWN_RETRY_S = 5.0

_STOP = object()


class _Payload(NamedTuple):
    """What a graph node carries: the submission and its catalog key (stored path).

    A named tuple rather than a frozen dataclass: one is made per submission,
    thousands a second, and a tuple is the cheapest immutable record.
    """

    key: str
    path: str
    submission: Submission


@dataclass(eq=False, slots=True)
class _PendingSnapshot:
    """A submission whose snapshot row is not known to be in the catalog yet."""

    payload: _Payload
    refused: bool = False


@dataclass(eq=False)
class _PendingWorkflow:
    """A workflow snapshot found and written, not yet recorded; members by catalog key."""

    members: dict[str, _Payload | None]
    completed_by: _Payload
    description: str
    resume_file: Path | None
    refused: bool = False


@dataclass
class RegistryStats:
    """What the registry has done so far.

    Attributes:
        submissions: Submissions accepted and searched (duplicates and
            rejected ones not included).
        workflow_snapshots: Workflow snapshots found and recorded.
        recorded_for_manager: Submissions the registry had to record itself.
        rejected: Submissions turned away: malformed, or refused by the database.
        duplicates: Submissions of a file submitted before, ignored.
        retries: Transient catalog failures that were retried.
        spilled: Submissions and workflow snapshots written to the spill file.
        spill_file: The spill file, if anything was spilled.
        errors: Error messages, one per problem.
    """

    submissions: int = 0
    workflow_snapshots: int = 0
    recorded_for_manager: int = 0
    rejected: int = 0
    duplicates: int = 0
    retries: int = 0
    spilled: int = 0
    spill_file: Path | None = None
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the log at shutdown."""
        text = (
            f"{self.submissions} submissions, {self.workflow_snapshots} workflow snapshots "
            f"recorded, {self.recorded_for_manager} snapshots recorded for instances, "
            f"{self.rejected} rejected, {self.duplicates} duplicates ignored, "
            f"{self.retries} catalog retries"
        )
        if self.spilled:
            text += (
                f", {self.spilled} entries left unrecorded in {self.spill_file} (run "
                "'muscle-catalog import <run dir>' or 'muscle-catalog verify --fix' to record them)"
            )
        return text


class SnapshotRegistry:
    """Finds, records and writes workflow snapshots for one run, off the caller's thread."""

    def __init__(
        self,
        configuration: Any,
        snapshot_folder: Path,
        catalog: Catalog | str | os.PathLike[str] | None = None,
        *,
        run_dir: Path | None = None,
        threaded: bool = True,
        write_resume_files: bool = True,
        clock: Callable[[], dt.datetime] = dt.datetime.now,
        shutdown_retry_s: float = SHUTDOWN_RETRY_S,
    ) -> None:
        """Create the registry for a run.

        Args:
            configuration: The model's configuration as ``ymmsl.load`` returns it
                (v0.1 or v0.2).
            snapshot_folder: Where resume files go (MUSCLE3: ``<run dir>/snapshots``).
            catalog: A Catalog, or a path or URL to open. Default:
                ``$MUSCLE_SNAPSHOT_CATALOG``, else ``<run dir>/snapshot_catalog.sqlite``
                (the same place the instances' SnapshotManagers use).
            run_dir: The run directory; default: the snapshot folder's parent
                when it is called ``snapshots``, else the folder itself.
                Relative snapshot file names are taken relative to it.
            threaded: Process submissions on a worker thread (as MUSCLE3 does);
                if False, ``register_snapshot`` processes immediately.
            write_resume_files: Write a ``snapshot_*.ymmsl`` per workflow snapshot.
            clock: Gives "now" for resume file names and descriptions.
            shutdown_retry_s: How long ``shutdown`` keeps trying an unavailable
                catalog before writing the spill file (:mod:`catalog.spill`).
        """
        self._topology = Topology.from_configuration(configuration)
        self._checker = SubmissionChecker(self._topology)
        self._graph = SnapshotGraph(self._topology)
        self._folder = Path(snapshot_folder)
        self._run_dir = run_dir or run_dir_of_resume_folder(self._folder)
        self._owns_catalog = not isinstance(catalog, Catalog)
        if isinstance(catalog, Catalog):
            self.catalog = catalog
            self._location = catalog.url.render_as_string(hide_password=False)
        else:
            location = os.fspath(catalog) if catalog is not None else None
            self._location = location or default_catalog_in(self._run_dir)
            self.catalog = open_catalog(self._location, create=True)
        self.run = self.catalog.ensure_run(
            self._run_dir,
            model_name=self._topology.model_name,
            configuration=dump_ymmsl(configuration),
        )
        self._link_lineage(configuration)
        self._paths = PathsBelow(self._run_dir, self.catalog.root)
        self._write_files = write_resume_files
        self._clock = clock
        self._shutdown_retry_s = shutdown_retry_s
        self.stats = RegistryStats()
        self._stats_lock = threading.Lock()
        # Worker state: touched by the worker thread only (or under _sync_lock).
        self._seen: set[str] = set()
        self._ids: dict[str, int] = {}
        self._pending_snapshots: list[_PendingSnapshot] = []
        self._pending_workflows: list[_PendingWorkflow] = []
        self._backoff = Backoff()
        self._retry_at = 0.0
        self._failing_since: float | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._close_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        if threaded:
            self.start()

    def _link_lineage(self, configuration: Any) -> None:
        """Record, as the run starts, which run and workflow snapshot its resume section names.

        Lineage is information, not the run's business: a failure here is
        logged and the run goes on (import or watch can link it later).
        """
        resume = getattr(configuration, "resume", None) or {}
        if not resume or self.run.resumed_from_run_id is not None:
            return
        try:
            linked = link_resumed_run(
                self.catalog, self.run, {str(k): PurePath(str(v)) for k, v in resume.items()}
            )
        except Exception as exc:  # never let lineage stop a run
            _logger.warning("Could not record which run %s resumed from: %s", self.run.name, exc)
            return
        if linked is not None:
            self.run = linked

    def record_outcome(self, success: bool) -> None:
        """Record how the run ended (``finished`` or ``failed``), after or before shutdown.

        Args:
            success: What MUSCLE3's manager reported.
        """
        status = RunStatus.FINISHED if success else RunStatus.FAILED
        try:
            if self._closed and self._owns_catalog:
                with open_catalog(self._location) as catalog:
                    catalog.set_run_status(self.run.id, status)
            else:
                self.catalog.set_run_status(self.run.id, status)
        except Exception as exc:  # the run has ended either way; say why it is not recorded
            _logger.error("Could not record that run %s %s: %s", self.run.name, status, exc)

    # ------------------------------------------------------------------ MUSCLE3's interface

    def start(self) -> None:
        """Start the worker thread (done by the constructor; harmless to repeat)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="SnapshotRegistry", daemon=True)
            self._thread.start()

    def register_snapshot(self, instance: object, metadata: Any) -> None:
        """Queue a submission; it is processed in submission order.

        A malformed submission is not raised to the caller (MUSCLE3's manager,
        which would drop the instance's request): it is logged with its
        instance and file, counted in ``stats.rejected``, and left out.

        Args:
            instance: The instance (a ymmsl Reference or its string).
            metadata: Its SnapshotMetadata (ours or MUSCLE3's) or a dict of the fields.

        Raises:
            CatalogError: The registry has been shut down.
        """
        if self._closed:
            raise CatalogError("The snapshot registry has been shut down")
        try:
            submission = self._checker.check(instance, metadata)
        except SubmissionError as exc:
            self._reject(str(exc))
            return
        if self._thread is None:
            with self._sync_lock:  # synchronous mode may be called from several threads
                self._search([submission])
                if time.monotonic() >= self._retry_at:
                    self._try_flush()
            return
        with self._close_lock:  # never behind the stop marker, where it would be lost
            if self._closed:
                raise CatalogError("The snapshot registry has been shut down")
            self._queue.put(submission)

    def shutdown(self) -> None:
        """Process everything queued, then stop the worker and close an owned catalog.

        If the catalog is unavailable, it is tried for ``shutdown_retry_s``
        seconds more; whatever is still unrecorded then is written to the
        spill file (``stats.spill_file``).
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            if self._thread is not None:
                self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join()
        else:
            with self._sync_lock:
                self._finish()
        if self._owns_catalog:
            self.catalog.close()
        problems = self.stats.rejected or self.stats.spilled or self.stats.errors
        _logger.log(
            logging.WARNING if problems else logging.INFO,
            "Snapshot registry of run %s: %s",
            self.run.name,
            self.stats.summary(),
        )

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker thread (MUSCLE3's registry is a Thread; so this is here too)."""
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ the worker

    def _work(self) -> None:
        while True:
            timeout = None
            if self._has_pending():
                timeout = max(0.0, self._retry_at - time.monotonic())
            batch, stop = self._take(timeout)
            try:
                # A batch is thousands of new objects (graph nodes, rows) without
                # cycles; collections they trigger would walk the manager's heap again
                # and again (a fifth of the time), so it is handled in one pause.
                with gc_paused():
                    self._search(batch)
                    if self._has_pending() and time.monotonic() >= self._retry_at:
                        self._try_flush()
            except Exception as exc:  # a bug must not end the thread and drop what follows
                self._fail(f"unexpected error processing {len(batch)} submissions: {exc}", exc)
            if stop:
                try:
                    self._finish()
                except Exception as exc:  # last resort: say so rather than die silently
                    self._fail(f"unexpected error at shutdown: {exc}", exc)
                return

    def _take(self, timeout: float | None) -> tuple[list[Submission], bool]:
        """The next batch from the queue (waiting up to ``timeout``), and whether to stop."""
        batch: list[Submission] = []
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return batch, False
        if first is _STOP:
            return batch, True
        batch.append(first)
        while len(batch) < MAX_BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    # ------------------------------------------------------------------ searching

    def _search(self, batch: Sequence[Submission]) -> None:
        """Add submissions to the graph, in order; write and queue the workflow snapshots found."""
        accepted = 0  # counted in stats once per batch, not under the lock per submission
        try:
            for submission in batch:
                accepted += self._search_one(submission)
        finally:
            with self._stats_lock:
                self.stats.submissions += accepted

    def _search_one(self, submission: Submission) -> bool:
        """Add one submission to the graph; False if it is a duplicate, ignored."""
        filename = submission.metadata.snapshot_filename
        path = self._paths.join(filename)
        key = self._paths.stored(filename)  # = self.catalog.stored_path(path)
        if key in self._seen:
            with self._stats_lock:
                self.stats.duplicates += 1
            _logger.warning(
                "Snapshot registry: %s submitted %s again; the second submission is ignored",
                submission.instance,
                filename,
            )
            return False
        self._seen.add(key)
        payload = _Payload(key, path, submission)
        self._pending_snapshots.append(_PendingSnapshot(payload))
        try:
            node, workflow = self._graph.register(
                submission.instance, submission.metadata.port_message_counts, payload
            )
            if workflow is not None:
                self._pending_workflows.append(self._written(workflow, node))
        except Exception as exc:
            self._fail(f"submission {filename} of {submission.instance}: {exc}", exc)
        return True

    def _written(self, workflow: WorkflowSnapshot, completed_by: SnapshotNode) -> _PendingWorkflow:
        """Describe a workflow snapshot and write its resume file (not waiting for the catalog)."""
        taken = self._clock()
        description = describe(self._topology.model_name, _summaries(workflow), taken)
        members = {
            instance: None if node.is_restart else node.payload
            for instance, node in workflow.items()
        }
        resume_file = None
        if self._write_files:
            resume = {i: p.submission.metadata.snapshot_filename for i, p in members.items() if p}
            try:
                resume_file = write_resume_file(
                    self._folder, resume_document(resume, description), taken
                )
            except CatalogError as exc:
                self._fail(str(exc), exc)
        return _PendingWorkflow(members, completed_by.payload, description, resume_file)

    # ------------------------------------------------------------------ recording

    def _has_pending(self) -> bool:
        return bool(self._pending_snapshots or self._pending_workflows)

    def _try_flush(self) -> bool:
        """Record what is pending; on an error (transient, or a bug), schedule the next attempt.

        Returns:
            True if nothing is pending any more.
        """
        try:
            self._flush()
        except Exception as exc:
            if not is_transient(exc):  # a bug, not the catalog: say so, and do not spin on it
                self._fail(f"unexpected error recording submissions: {exc}", exc)
            delay = self._backoff.next_delay()
            self._retry_at = time.monotonic() + delay
            with self._stats_lock:
                self.stats.retries += 1
            waiting = len(self._pending_snapshots)
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                _logger.warning(
                    "Snapshot registry: the catalog %s is unavailable (%s: %s); %d submissions "
                    "wait and are retried, up to every %.0f s, while the run goes on",
                    self.catalog.location, type(exc).__name__, _first_line(exc), waiting,
                    self._backoff_cap(),
                )  # fmt: skip
            else:
                _logger.debug("Catalog still unavailable (%s); next try in %.2f s", exc, delay)
            return False
        if self._failing_since is not None:
            _logger.warning(
                "Snapshot registry: the catalog %s is available again after %.1f s; "
                "everything waiting is recorded",
                self.catalog.location,
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None
        self._backoff.reset()
        self._retry_at = 0.0
        return True

    @staticmethod
    def _backoff_cap() -> float:
        from catalog.resilience import MAX_DELAY_S

        return MAX_DELAY_S

    def _flush(self) -> None:
        """Record pending snapshot rows, then pending workflow snapshots, in order.

        Raises:
            Exception: A transient error; what was recorded before it is no
                longer pending, the rest stays for the next attempt.
        """
        while self._pending_snapshots:
            chunk = [p for p in self._pending_snapshots[:MAX_BATCH] if not p.refused]
            record_isolating(chunk, self._record_snapshots, self._refuse_snapshot)
            del self._pending_snapshots[:MAX_BATCH]
        while self._pending_workflows:
            ready = []
            for pending in self._pending_workflows[:MAX_BATCH]:
                if pending.refused:
                    continue
                lost = [p for p in pending.members.values() if p and p.key not in self._ids]
                if lost:
                    self._reject(
                        f"the workflow snapshot completed by {pending.completed_by.path} is not "
                        f"recorded: its member {lost[0].path} could not be recorded "
                        f"(its resume file {pending.resume_file} was written)"
                    )
                    pending.refused = True
                    continue
                ready.append(pending)
            record_isolating(ready, self._record_workflows, self._refuse_workflow)
            del self._pending_workflows[:MAX_BATCH]

    def _record_snapshots(self, items: Sequence[_PendingSnapshot]) -> None:
        """Look the submissions up and record those the instances did not record themselves."""
        keys = [p.payload.key for p in items]
        known = self.catalog.snapshot_ids(keys, already_stored=True)
        unknown = [p.payload for p in items if p.payload.key not in known]
        if unknown:
            missing = [snapshot_to_record(p.submission, p.path) for p in unknown]
            added = self.catalog.record_snapshot_batch(
                self.run.id, missing, stored=[p.key for p in unknown]
            )
            with self._stats_lock:
                self.stats.recorded_for_manager += len(added)
            known.update(added)
            if len(known) < len(set(keys)):  # recorded meanwhile by someone else
                known.update(self.catalog.snapshot_ids(keys, already_stored=True))
        self._ids.update(known)

    def _refuse_snapshot(self, pending: _PendingSnapshot, exc: Exception) -> None:
        pending.refused = True
        submission = pending.payload.submission
        self._reject(
            f"the catalog refused the snapshot {submission.metadata.snapshot_filename!r} "
            f"submitted by {submission.instance!r}: {type(exc).__name__}: {_first_line(exc)}",
            exc,
        )

    def _record_workflows(self, items: Sequence[_PendingWorkflow]) -> None:
        records = [
            NewWorkflowSnapshot(
                members={
                    instance: None if member is None else self._ids[member.key]
                    for instance, member in pending.members.items()
                },
                description=pending.description,
                completed_by_snapshot_id=self._ids.get(pending.completed_by.key),
                resume_file=pending.resume_file,
                source=Source.REGISTRY,
            )
            for pending in items
        ]
        self.catalog.record_workflow_snapshots(self.run.id, records)
        with self._stats_lock:
            self.stats.workflow_snapshots += len(records)

    def _refuse_workflow(self, pending: _PendingWorkflow, exc: Exception) -> None:
        pending.refused = True
        self._fail(
            f"could not record the workflow snapshot completed by {pending.completed_by.path}: "
            f"{type(exc).__name__}: {_first_line(exc)}",
            exc,
        )

    def _finish(self) -> None:
        """At shutdown: keep trying for a while, then spill what is still unrecorded."""
        deadline = time.monotonic() + self._shutdown_retry_s
        while self._has_pending():
            with gc_paused():
                flushed = self._try_flush()
            if flushed:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(remaining, max(0.0, self._retry_at - time.monotonic())))
        if self._has_pending():
            self._spill()

    def _spill(self) -> None:
        lines = [
            snapshot_entry(
                self._run_dir, self._topology.model_name, p.payload.submission, p.payload.path
            )
            for p in self._pending_snapshots
            if not p.refused
        ]
        for pending in self._pending_workflows:
            if pending.refused:
                continue
            lines.append(
                workflow_entry(
                    self._run_dir,
                    {i: None if p is None else p.path for i, p in pending.members.items()},
                    pending.completed_by.path,
                    pending.description,
                    pending.resume_file,
                )
            )
        self._pending_snapshots.clear()
        self._pending_workflows.clear()
        if not lines:
            return
        target = spill_path(self.catalog, self._run_dir)
        try:
            write_spill(target, lines)
        except OSError as exc:
            self._fail(f"could not write {len(lines)} unrecorded entries to {target}: {exc}", exc)
            return
        with self._stats_lock:
            self.stats.spilled += len(lines)
            self.stats.spill_file = target
        _logger.error(
            "Snapshot registry: the catalog %s stayed unavailable; %d unrecorded entries "
            "were written to %s. Record them with 'muscle-catalog import %s' or "
            "'muscle-catalog verify --fix' once the catalog is reachable.",
            self.catalog.location, len(lines), target, self._run_dir,
        )  # fmt: skip

    # ------------------------------------------------------------------ reporting

    def _reject(self, message: str, exc: Exception | None = None) -> None:
        with self._stats_lock:
            self.stats.rejected += 1
            self.stats.errors.append(message)
        _logger.warning("Snapshot registry: %s", message, exc_info=exc)

    def _fail(self, message: str, exc: Exception) -> None:
        with self._stats_lock:
            self.stats.errors.append(message)
        _logger.error("Snapshot registry: %s", message, exc_info=exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _summaries(workflow: WorkflowSnapshot) -> list[MemberSummary]:
    return [
        MemberSummary.restart(instance)
        if node.is_restart
        else MemberSummary.of(instance, node.payload.submission.metadata)
        for instance, node in workflow.items()
    ]
