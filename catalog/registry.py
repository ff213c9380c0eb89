"""The manager side: SnapshotRegistry finds workflow snapshots as submissions arrive.

The interface is MUSCLE3's ``SnapshotRegistry(configuration, snapshot_folder)``
with ``register_snapshot(instance, metadata)`` and ``shutdown()``; adapting to
the exact arguments a MUSCLE3 release's manager passes is the job of
:mod:`catalog.muscle3.manager`. Each
submission is looked up in the catalog by its file (and recorded there if
the instance did not record it itself), added to the search graph
(:mod:`catalog.workflow_search`), and when it completes a workflow snapshot
that workflow snapshot is recorded in the catalog and written as a
``snapshot_*.ymmsl`` resume file with MUSCLE3's content.

Differences from MUSCLE3, all deliberate:

* one workflow snapshot per submission, the newest, instead of all of them
  (which can be exponentially many and hang the manager);
* models with a single instance work (MUSCLE3's registry crashes);
* no limit of 100 resume files per second, and an error never ends the
  registry thread silently: it is logged and processing continues;
* work is batched: submissions waiting in the queue are handled together,
  with one catalog lookup, one insert and one workflow-snapshot transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from catalog.catalog import Catalog, open_catalog
from catalog.enums import RunStatus, SnapshotStatus, Source
from catalog.errors import CatalogError, SnapshotFileError
from catalog.lineage import link_resumed_run
from catalog.location import default_catalog_in
from catalog.naming import parse_pack_name, validate_instance
from catalog.records import NewSnapshot, NewWorkflowSnapshot
from catalog.resume_file import MemberSummary, describe, resume_document, write_resume_file
from catalog.run_dir import dump_ymmsl, run_dir_of_resume_folder
from catalog.snapshot import SnapshotMetadata
from catalog.store import load_pack
from catalog.topology import Topology
from catalog.workflow_search import SnapshotGraph, SnapshotNode, WorkflowSnapshot

_logger = logging.getLogger(__name__)

#: Most submissions handled in one batch (one set of catalog transactions).
MAX_BATCH = 2000

_STOP = object()


@dataclass(frozen=True)
class Submission:
    """One snapshot as the manager received it.

    Attributes:
        instance: Who saved it.
        metadata: What it said about it, as our SnapshotMetadata.
    """

    instance: str
    metadata: SnapshotMetadata

    @staticmethod
    def from_metadata(instance: object, metadata: Any) -> Submission:
        """Accept our SnapshotMetadata, MUSCLE3's, or a dict of its fields.

        Values are copied and normalised (floats, ints, a plain dict of lists),
        so nothing the caller changes later reaches the registry's thread.
        """

        def get(name: str) -> Any:
            if isinstance(metadata, Mapping):
                return metadata[name]
            return getattr(metadata, name)

        next_timestamp = get("next_timestamp")
        return Submission(
            _valid_instance(str(instance)),
            SnapshotMetadata(
                triggers=list(get("triggers")),
                wallclock_time=float(get("wallclock_time")),
                timestamp=float(get("timestamp")),
                next_timestamp=None if next_timestamp is None else float(next_timestamp),
                port_message_counts={
                    str(port): list(map(int, counts))
                    for port, counts in get("port_message_counts").items()
                },
                is_final_snapshot=bool(get("is_final_snapshot")),
                snapshot_filename=str(get("snapshot_filename")),
            ),
        )


@functools.lru_cache(maxsize=65536)
def _valid_instance(name: str) -> str:
    """Instance names repeat with every submission; check each once."""
    return validate_instance(name)


@dataclass(frozen=True)
class _Payload:
    snapshot_id: int
    submission: Submission


@dataclass
class RegistryStats:
    """What the registry has done so far.

    Attributes:
        submissions: Submissions processed.
        workflow_snapshots: Workflow snapshots found and recorded.
        recorded_for_manager: Submissions the registry had to record itself.
        errors: Error messages of submissions that could not be processed.
    """

    submissions: int = 0
    workflow_snapshots: int = 0
    recorded_for_manager: int = 0
    errors: list[str] = field(default_factory=list)


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
        """
        self._topology = Topology.from_configuration(configuration)
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
        self._write_files = write_resume_files
        self._clock = clock
        self.stats = RegistryStats()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
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

        Args:
            instance: The instance (a ymmsl Reference or its string).
            metadata: Its SnapshotMetadata (ours or MUSCLE3's) or a dict of the fields.
        """
        if self._closed:
            raise CatalogError("The snapshot registry has been shut down")
        submission = Submission.from_metadata(instance, metadata)
        if self._thread is None:
            with self._sync_lock:  # synchronous mode may be called from several threads
                self._process([submission])
        else:
            self._queue.put(submission)

    def shutdown(self) -> None:
        """Process everything queued, then stop the worker and close an owned catalog."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
        if self._owns_catalog:
            self.catalog.close()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker thread (MUSCLE3's registry is a Thread; so this is here too)."""
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ processing

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            try:
                self._process(batch)
            except Exception as exc:  # a bug must not end the thread and drop what follows
                self._fail(f"unexpected error processing {len(batch)} submissions: {exc}", exc)
            if stop:
                return

    def _process(self, batch: list[Submission]) -> None:
        try:
            ids = self._snapshot_ids(batch)
        except Exception as exc:  # never let the registry die; say what happened
            self._fail(f"could not look up or record {len(batch)} submissions: {exc}", exc)
            return
        found: list[tuple[WorkflowSnapshot, SnapshotNode]] = []
        for submission, snapshot_id in zip(batch, ids, strict=True):
            self.stats.submissions += 1
            try:
                node, workflow = self._graph.register(
                    submission.instance,
                    submission.metadata.port_message_counts,
                    _Payload(snapshot_id, submission),
                )
            except Exception as exc:
                self._fail(f"submission {submission.metadata.snapshot_filename}: {exc}", exc)
                continue
            if workflow is not None:
                found.append((workflow, node))
        if found:
            self._record(found)

    def _fail(self, message: str, exc: Exception) -> None:
        self.stats.errors.append(message)
        _logger.error("Snapshot registry: %s", message, exc_info=exc)

    def _path(self, filename: str) -> str:
        return os.path.join(self._run_dir, filename)  # join keeps absolute names as they are

    def _snapshot_ids(self, batch: list[Submission]) -> list[int]:
        paths = [self._path(s.metadata.snapshot_filename) for s in batch]
        stored = [self.catalog.stored_path(p) for p in paths]
        known = self.catalog.snapshot_ids(stored, already_stored=True)
        missing = [
            _new_snapshot(s, Path(p))
            for s, p, key in zip(batch, paths, stored, strict=True)
            if key not in known
        ]
        if missing:
            known.update(self.catalog.record_snapshot_batch(self.run.id, missing))
            self.stats.recorded_for_manager += len(missing)
        return [known[key] for key in stored]

    def _record(self, found: list[tuple[WorkflowSnapshot, SnapshotNode]]) -> None:
        items: list[NewWorkflowSnapshot] = []
        for workflow, completed_by in found:
            taken = self._clock()
            description = describe(self._topology.model_name, _summaries(workflow), taken)
            resume = {
                instance: node.payload.submission.metadata.snapshot_filename
                for instance, node in workflow.items()
                if not node.is_restart
            }
            resume_file = None
            if self._write_files:
                try:
                    resume_file = write_resume_file(
                        self._folder, resume_document(resume, description), taken
                    )
                except CatalogError as exc:
                    self._fail(str(exc), exc)
            items.append(
                NewWorkflowSnapshot(
                    members={
                        instance: None if node.is_restart else node.payload.snapshot_id
                        for instance, node in workflow.items()
                    },
                    description=description,
                    completed_by_snapshot_id=completed_by.payload.snapshot_id,
                    resume_file=resume_file,
                    source=Source.REGISTRY,
                )
            )
        try:
            self.catalog.record_workflow_snapshots(self.run.id, items)
        except Exception as exc:
            self._fail(f"could not record {len(items)} workflow snapshots: {exc}", exc)
            return
        self.stats.workflow_snapshots += len(items)


def _summaries(workflow: WorkflowSnapshot) -> list[MemberSummary]:
    return [
        MemberSummary.restart(instance)
        if node.is_restart
        else MemberSummary.of(instance, node.payload.submission.metadata)
        for instance, node in workflow.items()
    ]


def _new_snapshot(submission: Submission, path: Path) -> NewSnapshot:
    """A catalog record for a submission the instance did not record itself.

    The file is read when it is there, so the row holds what the file holds;
    otherwise (or if it cannot be read) the row is built from the metadata
    and marked missing, so that the workflow snapshot can still name it.
    """
    parsed = parse_pack_name(os.path.basename(path))
    sequence = parsed[1] if parsed else None
    filename = submission.metadata.snapshot_filename
    if os.path.isfile(path):  # a cheap check first: replays submit files that are not there
        try:
            loaded = load_pack(path)
        except SnapshotFileError as exc:
            _logger.warning("Recording %s from its metadata only: %s", path, exc)
        else:
            return NewSnapshot(
                submission.instance, path, filename, loaded.snapshot,
                loaded.size_bytes, loaded.sha256, sequence,
            )  # fmt: skip
    return NewSnapshot(
        submission.instance, path, filename, submission.metadata.to_snapshot(),
        None, None, sequence, status=SnapshotStatus.MISSING,
    )  # fmt: skip
