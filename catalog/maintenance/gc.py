"""Garbage collection: delete the snapshot files a retention policy no longer needs, crash-safely.

What is deleted is decided in two layers. The policy
(:mod:`catalog.maintenance.retention`) says which workflow snapshots to keep;
this module adds what no policy can lift, and a snapshot is protected when:

* it is a member of a workflow snapshot the policy keeps;
* it is a member of the newest workflow snapshot of its run (and of the
  newest one still resumable), which ``resume --latest`` would pick;
* it is a member of a workflow snapshot some recorded run resumed from
  (``runs.resumed_from_workflow_snapshot_id``), so lineage stays whole;
* a resumed run's copy names it as its origin (``copied_from_snapshot_id``);
* its run is ``running``: a run still writing may need any of its files.

Everything else not yet deleted is a candidate. A snapshot that is a member
of no workflow snapshot cannot be resumed from; it is kept only by the rules
that make sense for a single file (its age, being final). ``--run`` narrows the
candidates, never the protections, which are always computed over the whole
campaign. With ``max_size``, candidates go oldest first, and only until the
campaign's present snapshots fit.

Deleting keeps the rows: a snapshot becomes ``deleted`` (with
``status_changed_at``), so its history stays queryable, and every workflow
snapshot that loses a member becomes ``unresumable``, so resume selection
passes it over. The order of the steps is what makes a ``kill -9`` at any
moment harmless:

1. **Decide and mark, in one committed transaction.** The plan is computed
   inside the write transaction that marks it (the write lock is held, so no
   run can start resuming from a candidate in between), and the rows become
   ``deleted`` and their workflow snapshots ``unresumable`` all at once or
   not at all. A kill before the commit changes nothing; a kept snapshot is
   never marked, since only the plan's candidates are.
2. **Unlink the files** of the rows marked ``deleted``. From the commit on,
   no row of a file about to go says ``present``, so however many files a
   kill leaves behind, the catalog never claims a file that is gone.
3. **Reconcile.** Step 2 is not a list of this run's files but "every
   ``deleted`` row whose file still exists" (runs that are ``running``
   excepted), so the next gc, even a dry run's report, finds the files an
   interrupted one left and ``--yes`` removes them: re-running completes
   the job. The directories are fsynced at the end; an unlink lost to a power
   cut only brings back a file whose row is already ``deleted``, which the
   next gc removes again.

A dry run (the default) computes the same plan in a read-only transaction
and reports what would go and the bytes that would be freed.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from catalog.catalog import Catalog
from catalog.db.schema import Run, SnapshotRow, WorkflowSnapshotMember, WorkflowSnapshotRow
from catalog.db.times import utc_time
from catalog.enums import RunStatus, SnapshotStatus, WorkflowStatus
from catalog.maintenance.retention import RetentionPolicy, WorkflowInfo, per_run


@dataclass(frozen=True)
class SnapshotInfo:
    """What gc needs of one snapshot row.

    Attributes:
        id: The snapshot's id.
        run_id: Its run.
        instance: The instance that saved it.
        path: Its stored path (relative to a SQLite catalog's root, or absolute).
        size_bytes: Its recorded size.
        status: ``present``, ``missing``, ``corrupt`` or ``deleted``.
        is_final: Whether it is a final snapshot.
        recorded_at: When it was recorded ("oldest first" for ``max_size``).
        copied_from: The snapshot it is a resumed copy of, if any.
    """

    id: int
    run_id: int
    instance: str
    path: str
    size_bytes: int | None
    status: SnapshotStatus
    is_final: bool
    recorded_at: dt.datetime
    copied_from: int | None = None


@dataclass(frozen=True)
class RunInfo:
    """What gc needs of one run: its name, its status and what it resumed from."""

    id: int
    name: str
    status: RunStatus
    resumed_from_workflow_snapshot_id: int | None = None


@dataclass(frozen=True)
class CampaignState:
    """The rows gc decides over, read in one transaction.

    Attributes:
        runs: Run id -> run.
        snapshots: Snapshot id -> snapshot.
        workflows: Every workflow snapshot, as policies see them.
        members: Workflow snapshot id -> the ids of its member snapshots
            (fresh starts left out).
        workflow_status: Workflow snapshot id -> its status.
    """

    runs: dict[int, RunInfo]
    snapshots: dict[int, SnapshotInfo]
    workflows: tuple[WorkflowInfo, ...]
    members: dict[int, tuple[int, ...]]
    workflow_status: dict[int, WorkflowStatus]


@dataclass(frozen=True)
class GcPlan:
    """What a policy and the protections decide, before anything is touched.

    Attributes:
        kept_workflows: Workflow snapshots kept, by the policy or a protection.
        protected: Snapshots that must not be deleted.
        delete: Snapshots to mark ``deleted``, in the order chosen.
        unresumable: Resumable workflow snapshots that lose a member.
        size_before: Bytes of the campaign's present snapshots now.
        size_after: The same once ``delete`` is done.
    """

    kept_workflows: frozenset[int]
    protected: frozenset[int]
    delete: tuple[int, ...]
    unresumable: tuple[int, ...]
    size_before: int
    size_after: int


@dataclass(frozen=True)
class DeletedSnapshot:
    """One snapshot gc deleted (or, in a dry run, would delete).

    Attributes:
        id: The snapshot's id.
        run: Its run's name.
        instance: The instance that saved it.
        path: Its file, absolute.
        size_bytes: Its recorded size.
    """

    id: int
    run: str
    instance: str
    path: Path
    size_bytes: int | None


@dataclass(frozen=True)
class GcReport:
    """What one gc did, or in a dry run would do.

    Attributes:
        dry_run: Nothing was changed.
        policy: The policy, as command-line options.
        run: The run the candidates were limited to, if any.
        deleted: The snapshots marked ``deleted`` now (or that would be).
        unresumable: Workflow snapshots marked ``unresumable`` now (or that would be).
        kept_workflow_snapshots: How many workflow snapshots are kept.
        files_removed: Files unlinked (in a dry run: that would be).
        bytes_freed: Their bytes, from the files themselves.
        pending_files: Of ``files_removed``, those of rows an earlier,
            interrupted gc had already marked ``deleted``.
        size_before: Bytes of the campaign's present snapshots before.
        size_after: The same after (as recorded).
        max_size: The size bound, if the policy has one.
    """

    dry_run: bool
    policy: str
    run: str | None
    deleted: tuple[DeletedSnapshot, ...]
    unresumable: tuple[int, ...]
    kept_workflow_snapshots: int
    files_removed: int
    bytes_freed: int
    pending_files: int
    size_before: int
    size_after: int
    max_size: int | None

    @property
    def fits(self) -> bool | None:
        """Whether the campaign fits ``max_size`` afterwards (None without a bound)."""
        return None if self.max_size is None else self.size_after <= self.max_size


def load_state(session: Session) -> CampaignState:
    """Read the rows gc decides over, in the session's transaction."""
    runs = {
        rid: RunInfo(rid, name, RunStatus(status), origin)
        for rid, name, status, origin in session.execute(
            select(Run.id, Run.name, Run.status, Run.resumed_from_workflow_snapshot_id)
        )
    }
    snapshots = {
        row.id: SnapshotInfo(
            id=row.id,
            run_id=row.run_id,
            instance=row.instance,
            path=row.path,
            size_bytes=row.size_bytes,
            status=SnapshotStatus(row.status),
            is_final=bool(row.is_final_snapshot),
            recorded_at=utc_time(row.recorded_at),
            copied_from=row.copied_from_snapshot_id,
        )
        for row in session.execute(
            select(
                SnapshotRow.id,
                SnapshotRow.run_id,
                SnapshotRow.instance,
                SnapshotRow.path,
                SnapshotRow.size_bytes,
                SnapshotRow.status,
                SnapshotRow.is_final_snapshot,
                SnapshotRow.recorded_at,
                SnapshotRow.copied_from_snapshot_id,
            )
        )
    }
    members: dict[int, list[int]] = defaultdict(list)
    for wid, sid in session.execute(
        select(WorkflowSnapshotMember.workflow_snapshot_id, WorkflowSnapshotMember.snapshot_id)
    ):
        if sid is not None:
            members[wid].append(sid)
    workflows: list[WorkflowInfo] = []
    status: dict[int, WorkflowStatus] = {}
    for wid, run_id, sequence, timestamp, created_at, wstatus in session.execute(
        select(
            WorkflowSnapshotRow.id,
            WorkflowSnapshotRow.run_id,
            WorkflowSnapshotRow.sequence,
            WorkflowSnapshotRow.timestamp,
            WorkflowSnapshotRow.created_at,
            WorkflowSnapshotRow.status,
        )
    ):
        own = members.get(wid, [])
        workflows.append(
            WorkflowInfo(
                id=wid,
                run_id=run_id,
                sequence=sequence,
                timestamp=timestamp,
                created_at=utc_time(created_at),
                all_final=bool(own) and all(snapshots[s].is_final for s in own),
            )
        )
        status[wid] = WorkflowStatus(wstatus)
    return CampaignState(
        runs=runs,
        snapshots=snapshots,
        workflows=tuple(workflows),
        members={wid: tuple(sids) for wid, sids in members.items()},
        workflow_status=status,
    )


def protected_workflows(state: CampaignState) -> set[int]:
    """The workflow snapshots no policy may give up (see the module docstring)."""
    protected: set[int] = set()
    for run_id, group in per_run(state.workflows).items():
        protected.add(group[-1].id)
        resumable = [w for w in group if state.workflow_status[w.id] == WorkflowStatus.RESUMABLE]
        if resumable:
            protected.add(resumable[-1].id)
        if state.runs[run_id].status == RunStatus.RUNNING:
            protected.update(w.id for w in group)
    protected.update(
        run.resumed_from_workflow_snapshot_id
        for run in state.runs.values()
        if run.resumed_from_workflow_snapshot_id is not None
    )
    return protected


def plan(
    state: CampaignState,
    policy: RetentionPolicy,
    now: dt.datetime,
    run_id: int | None = None,
) -> GcPlan:
    """Decide what to delete: the policy, then the protections, then the size bound.

    A pure function of the rows read, so that it can be checked against
    thousands of random campaigns without a database.

    Args:
        state: The campaign's rows.
        policy: The retention policy.
        now: The time ages are measured against.
        run_id: Only this run's snapshots are candidates.

    Returns:
        The plan.
    """
    kept = policy.kept(state.workflows, now) | protected_workflows(state)
    protected = {sid for wid in kept for sid in state.members.get(wid, ())}
    protected.update(s.copied_from for s in state.snapshots.values() if s.copied_from is not None)
    in_workflows = {sid for sids in state.members.values() for sid in sids}
    protected.update(
        s.id
        for s in state.snapshots.values()
        if s.id not in in_workflows and policy.keeps_loose(s.recorded_at, s.is_final, now)
    )
    protected.update(
        s.id for s in state.snapshots.values() if state.runs[s.run_id].status == RunStatus.RUNNING
    )
    candidates = sorted(
        (
            s
            for s in state.snapshots.values()
            if s.status != SnapshotStatus.DELETED
            and s.id not in protected
            and (run_id is None or s.run_id == run_id)
        ),
        key=lambda s: (s.recorded_at, s.id),
    )
    size_before = sum(
        s.size_bytes or 0 for s in state.snapshots.values() if s.status == SnapshotStatus.PRESENT
    )
    size = size_before
    delete: list[int] = []
    for snapshot in candidates:
        if policy.max_size is not None and size <= policy.max_size:
            break
        delete.append(snapshot.id)
        if snapshot.status == SnapshotStatus.PRESENT:
            size -= snapshot.size_bytes or 0
    going = set(delete)
    unresumable = tuple(
        sorted(
            wid
            for wid, sids in state.members.items()
            if state.workflow_status.get(wid) == WorkflowStatus.RESUMABLE
            and not going.isdisjoint(sids)
        )
    )
    return GcPlan(
        kept_workflows=frozenset(kept),
        protected=frozenset(protected),
        delete=tuple(delete),
        unresumable=unresumable,
        size_before=size_before,
        size_after=size,
    )


def gc(
    catalog: Catalog,
    policy: RetentionPolicy,
    run: int | str | None = None,
    dry_run: bool = True,
) -> GcReport:
    """Delete the snapshots ``policy`` does not keep (dry run by default).

    See the module docstring for what is protected and for the order of the
    steps that makes it safe to kill at any moment and re-run.

    Args:
        catalog: The campaign's catalog.
        policy: What to keep.
        run: Only delete snapshots of this run (id or name); protections still
            look at the whole campaign.
        dry_run: Only report what would be deleted.

    Returns:
        What was (or would be) deleted and freed.
    """
    run_record = catalog.run(run) if run is not None else None
    run_id = run_record.id if run_record is not None else None
    now = dt.datetime.now(dt.UTC)
    session_factory = catalog.read_session if dry_run else catalog.write_session
    with session_factory() as session:
        if not dry_run:
            # PostgreSQL: hold every run's row lock, which recording snapshots and
            # lineage also take, so that no run starts resuming from (or adds to)
            # what the plan sees until the marks are committed. SQLite's write
            # transaction already excludes every other writer.
            session.execute(select(Run.id).with_for_update()).all()
        state = load_state(session)
        decided = plan(state, policy, now, run_id)
        if not dry_run:
            _mark(session, decided, now)
    deleted = tuple(
        DeletedSnapshot(
            id=sid,
            run=state.runs[state.snapshots[sid].run_id].name,
            instance=state.snapshots[sid].instance,
            path=catalog.resolve_path(state.snapshots[sid].path),
            size_bytes=state.snapshots[sid].size_bytes,
        )
        for sid in decided.delete
    )
    going = set(decided.delete)
    # Files of rows already 'deleted' (an interrupted gc): step 3 removes them too.
    pending = [
        catalog.resolve_path(s.path)
        for s in state.snapshots.values()
        if s.status == SnapshotStatus.DELETED
        and state.runs[s.run_id].status != RunStatus.RUNNING
        and s.id not in going
    ]
    if dry_run:
        new_bytes = [_size(d.path) for d in deleted]
        old_bytes = [_size(p) for p in pending]
        files = sum(b is not None for b in new_bytes + old_bytes)
        freed = sum(b or 0 for b in new_bytes + old_bytes)
        pending_files = sum(b is not None for b in old_bytes)
    else:
        files, freed, pending_files = remove_files([d.path for d in deleted], pending)
    return GcReport(
        dry_run=dry_run,
        policy=policy.describe(),
        run=run_record.name if run_record is not None else None,
        deleted=deleted,
        unresumable=decided.unresumable,
        kept_workflow_snapshots=len(decided.kept_workflows),
        files_removed=files,
        bytes_freed=freed,
        pending_files=pending_files,
        size_before=decided.size_before,
        size_after=decided.size_after,
        max_size=policy.max_size,
    )


def _mark(session: Session, decided: GcPlan, now: dt.datetime) -> None:
    """Step 1: the rows become ``deleted`` and their workflow snapshots ``unresumable``."""
    ids = list(decided.delete)
    for start in range(0, len(ids), 500):
        session.execute(
            update(SnapshotRow)
            .where(SnapshotRow.id.in_(ids[start : start + 500]))
            .values(status=SnapshotStatus.DELETED.value, status_changed_at=now)
        )
    workflows = list(decided.unresumable)
    for start in range(0, len(workflows), 500):
        session.execute(
            update(WorkflowSnapshotRow)
            .where(WorkflowSnapshotRow.id.in_(workflows[start : start + 500]))
            .values(status=WorkflowStatus.UNRESUMABLE.value)
        )


def remove_files(new: Iterable[Path], pending: Iterable[Path]) -> tuple[int, int, int]:
    """Steps 2 and 3: unlink the files of ``deleted`` rows that still exist.

    Args:
        new: Files of the rows marked now.
        pending: Files of rows marked by an earlier gc.

    Returns:
        ``(files removed, bytes freed, of those files: pending ones)``.
    """
    files = freed = pending_files = 0
    directories: set[Path] = set()
    for is_pending, paths in ((False, new), (True, pending)):
        for path in paths:
            size = _size(path)
            if size is None:
                continue
            try:
                _unlink(path)
            except FileNotFoundError:
                continue
            files += 1
            freed += size
            pending_files += is_pending
            directories.add(path.parent)
    for directory in directories:
        _fsync_directory(directory)
    return files, freed, pending_files


def _size(path: Path) -> int | None:
    """A regular file's size, or None when there is no file (gone already)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size if path.is_file() else None


def _unlink(path: Path) -> None:
    """Remove one file (a function of its own, so a test can interrupt gc between files)."""
    os.unlink(path)


def _fsync_directory(directory: Path) -> None:
    """Make the unlinks in a directory durable; best effort (not every filesystem allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
