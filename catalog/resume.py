"""Resume selection: pick a workflow snapshot from the catalog and turn it into a resume file.

The catalog's workflow snapshots are the resume points; a ``snapshot_*.ymmsl``
file is only a view of one, which this module writes on demand (appended to
the ``muscle_manager`` command line, it resumes the run). Recomputing
workflow snapshots is :mod:`catalog.replay`'s job.

Choosing by time never picks a broken point: the newest candidates' member
files are checked (present, same size and sha256) and broken ones are passed
over, and named, rather than handed to a manager that would fail on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from catalog.catalog import Catalog
from catalog.db.schema import SnapshotRow
from catalog.enums import SnapshotStatus, WorkflowStatus
from catalog.errors import ResumeSelectionError
from catalog.maintenance.verify import file_problem
from catalog.records import WorkflowSnapshotRecord
from catalog.resume_file import resume_document


@dataclass(frozen=True)
class SkippedWorkflowSnapshot:
    """A newer workflow snapshot that resume selection passed over, and why.

    Attributes:
        record: The workflow snapshot.
        reason: One sentence: which member is missing or changed, or that it
            is marked unresumable.
    """

    record: WorkflowSnapshotRecord
    reason: str


@dataclass(frozen=True)
class ResumeChoice:
    """The resume point chosen, and the newer ones passed over because they are broken.

    Attributes:
        record: The workflow snapshot to resume from.
        skipped: Newer workflow snapshots (newest first) that could not be
            resumed from; empty when the newest was good, or one was chosen by id.
    """

    record: WorkflowSnapshotRecord
    skipped: tuple[SkippedWorkflowSnapshot, ...] = ()


def select_workflow_snapshot(
    catalog: Catalog,
    *,
    run: int | str | None = None,
    workflow_id: int | None = None,
    before_time: float | None = None,
) -> WorkflowSnapshotRecord:
    """Choose a resume point: by id, else the newest good one (optionally at or before a time).

    The record of :func:`choose_workflow_snapshot`, for callers that need no
    account of what was skipped.

    Raises:
        ResumeSelectionError: Nothing matches; the message says what exists.
    """
    return choose_workflow_snapshot(
        catalog, run=run, workflow_id=workflow_id, before_time=before_time
    ).record


def choose_workflow_snapshot(
    catalog: Catalog,
    *,
    run: int | str | None = None,
    workflow_id: int | None = None,
    before_time: float | None = None,
) -> ResumeChoice:
    """Choose a resume point: by id, else the newest whose member files are all intact.

    Resuming from a workflow snapshot with a missing or changed member makes
    MUSCLE3 fail at start-up, after the user has queued a job for it, so the
    newest candidates are checked first: each member file must exist and
    match its recorded size and sha256. Only the candidates' members are
    hashed, newest first, stopping at the first good one; those already
    marked ``unresumable`` (by ``muscle-catalog verify --fix``) are passed
    over without reading their files. A workflow snapshot asked for by id is
    returned as it is: the caller chose it.

    Args:
        catalog: The catalog.
        run: Only this run's workflow snapshots (name or id).
        workflow_id: This workflow snapshot.
        before_time: The newest whose simulation time is at or before this.

    Returns:
        The choice and the newer workflow snapshots skipped, with why.

    Raises:
        ResumeSelectionError: Nothing matches, or every match is broken; the
            message says what exists.
    """
    if workflow_id is not None:
        record = catalog.workflow_snapshot(workflow_id)
        if run is not None and record.run_id != catalog.run(run).id:
            raise ResumeSelectionError(
                f"Workflow snapshot {workflow_id} belongs to run {record.run!r}, not {run!r}"
            )
        return ResumeChoice(record)
    candidates = [
        w
        for w in catalog.workflow_snapshots(run)
        if before_time is None or w.timestamp is None or w.timestamp <= before_time
    ]
    where = f" of run {run!r}" if run is not None else ""
    when = f" at or before simulation time {before_time}" if before_time is not None else ""
    if not candidates:
        raise ResumeSelectionError(
            f"No workflow snapshot{where}{when} in {catalog.location}. List them with "
            "'muscle-catalog workflows'; runs imported without resume files get them with "
            "'muscle-catalog reindex'."
        )
    skipped: list[SkippedWorkflowSnapshot] = []
    for record in sorted(candidates, key=_newest_first):
        reason = unresumable_reason(catalog, record)
        if reason is None:
            return ResumeChoice(record, tuple(skipped))
        skipped.append(SkippedWorkflowSnapshot(record, reason))
    raise ResumeSelectionError(
        f"None of the {len(candidates)} workflow snapshots{where}{when} in {catalog.location} "
        f"can be resumed from; the newest, {skipped[0].record.id}: {skipped[0].reason}. "
        "Restore the files, or see 'muscle-catalog verify'."
    )


def _newest_first(record: WorkflowSnapshotRecord) -> tuple[float, int, int]:
    """Sort key: newest simulation time first, ties to the later run and the one found last.

    The same order as :meth:`Catalog.latest_workflow_snapshot`, so that when
    nothing is broken both pick the same one.
    """
    t = record.timestamp if record.timestamp is not None else float("-inf")
    return (-t, -record.run_id, -record.sequence)


def unresumable_reason(catalog: Catalog, record: WorkflowSnapshotRecord) -> str | None:
    """Why a workflow snapshot cannot be resumed from now, or None if it can.

    Args:
        catalog: The catalog.
        record: The workflow snapshot.

    Returns:
        One sentence naming the first broken member, or None when every
        member file is present and matches its recorded size and sha256.
    """
    if record.status == WorkflowStatus.UNRESUMABLE:
        return "it is marked unresumable (a member was found missing, corrupt or deleted)"
    ids = [sid for sid in record.member_ids.values() if sid is not None]
    query = select(
        SnapshotRow.id,
        SnapshotRow.path,
        SnapshotRow.size_bytes,
        SnapshotRow.sha256,
        SnapshotRow.status,
    ).where(SnapshotRow.id.in_(ids))
    with catalog.read_session() as session:
        rows = {
            sid: (path, size, digest, status)
            for sid, path, size, digest, status in session.execute(query)
        }
    for instance, sid in record.member_ids.items():
        if sid is None:
            continue
        if sid not in rows:
            return f"{instance}'s snapshot {sid} is no longer recorded"
        stored, size, digest, status = rows[sid]
        path = catalog.resolve_path(stored)
        if status == SnapshotStatus.DELETED:
            return f"{instance}'s snapshot {path} was deleted"
        problem = file_problem(path, size, digest, quick=False)
        if problem is not None:
            return f"{instance}'s snapshot {path}: {problem}"
    return None


@dataclass(frozen=True)
class ResumeFile:
    """A resume file's text and what to tell the user about it.

    Attributes:
        text: The yMMSL document.
        resume: Instance -> snapshot file, as written into it (absolute paths).
        missing: Snapshot files it names that do not exist on this machine.
    """

    text: str
    resume: dict[str, str]
    missing: list[str]


def resume_file_for(catalog: Catalog, record: WorkflowSnapshotRecord) -> ResumeFile:
    """The resume file for a workflow snapshot, naming the files where they are now.

    Paths are the snapshot files' catalog locations made absolute, not the
    names as once submitted, so that a run directory moved off a cluster
    resumes from where its files are.
    """
    paths = catalog.snapshot_paths(sid for sid in record.member_ids.values() if sid is not None)
    resume = {
        instance: str(paths[sid]) for instance, sid in record.member_ids.items() if sid is not None
    }
    missing = [path for path in resume.values() if not Path(path).is_file()]
    description = record.description.rstrip("\n") + "\n"
    return ResumeFile(resume_document(resume, description), resume, missing)


def simulation_time(record: WorkflowSnapshotRecord) -> str:
    """A workflow snapshot's simulation time for display (``-`` when none is finite)."""
    if record.timestamp is None or math.isnan(record.timestamp):
        return "-"
    return f"{record.timestamp:g}"
