"""Replaying a run's recorded snapshots through the workflow-snapshot search.

The live registry sees submissions one at a time and records the newest
workflow snapshot each completes. Replaying the snapshots a run recorded, in
recorded order, through the same search (:mod:`catalog.workflow_search`)
gives:

* :func:`reindex_run`: the run's workflow snapshots recomputed, which is how
  runs whose manager did not use our registry get resume points;
* :func:`workflows_containing`: every workflow snapshot that contains one
  given snapshot (the alternatives to the newest), up to a limit.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from catalog.catalog import Catalog
from catalog.db.identity import members_key
from catalog.enums import SnapshotStatus, Source
from catalog.errors import ResumeSelectionError
from catalog.records import (
    AlternativeWorkflowSnapshot,
    NewWorkflowSnapshot,
    RecordList,
    SnapshotRecord,
)
from catalog.resume_file import MemberSummary, describe
from catalog.run_dir import load_ymmsl
from catalog.topology import Topology
from catalog.workflow_search import SnapshotGraph, payloads

_ORDER_NOTE = (
    "Snapshots of imported runs are replayed in the order of their files' modification "
    "times. Where instances saved at the same moment this can differ from the order the "
    "MUSCLE3 manager received them, and since the search forgets older snapshots once a "
    "workflow snapshot is found, the workflow snapshots can differ from those MUSCLE3 wrote "
    "(the imported ones are kept beside them, with source 'import')."
)


@dataclass
class ReindexReport:
    """What :func:`reindex_run` did.

    Attributes:
        run: The run's name.
        snapshots: Snapshots replayed.
        workflow_snapshots: Workflow snapshots found.
        already_recorded: Of those, how many the run already had (found by
            the registry, import or watch), which are not recorded again.
        replaced: Earlier reindexed workflow snapshots removed.
        notes: Things the user should know about the result.
    """

    run: str
    snapshots: int = 0
    workflow_snapshots: int = 0
    already_recorded: int = 0
    replaced: int = 0
    notes: list[str] = field(default_factory=list)


def reindex_run(
    catalog: Catalog,
    run: int | str,
    *,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], dt.datetime] = dt.datetime.now,
) -> ReindexReport:
    """Recompute a run's workflow snapshots from its recorded snapshots, in recorded order.

    Earlier results of this function for the run are replaced; workflow
    snapshots recorded live or imported stay.

    Args:
        catalog: The catalog.
        run: The run (name or id).
        progress: Called with the number of snapshots handled, now and then.
        clock: "Now", for the descriptions.

    Raises:
        ResumeSelectionError: The run has no recorded configuration to take the
            model from.
    """
    record = catalog.run(run)
    topology = _topology(catalog, record.id, record.name)
    graph = SnapshotGraph(topology)
    report = ReindexReport(run=record.name)
    if record.source == Source.IMPORT:
        report.notes.append(_ORDER_NOTE)
    found: list[NewWorkflowSnapshot] = []
    snapshots = _not_deleted(catalog, record.id)
    for count, snapshot in enumerate(snapshots, start=1):
        _node, workflow = graph.register(snapshot.instance, snapshot.port_message_counts, snapshot)
        if workflow is not None:
            members = payloads(workflow)
            found.append(_new_workflow(topology.model_name, members, snapshot, clock()))
        if progress is not None and count % 1000 == 0:
            progress(1000)
    if progress is not None and len(snapshots) % 1000:
        progress(len(snapshots) % 1000)
    report.snapshots = len(snapshots)
    report.replaced = catalog.delete_workflow_snapshots(record.id, source=Source.REINDEX)
    recorded = catalog.record_workflow_snapshots(record.id, found)
    report.workflow_snapshots = len(found)
    report.already_recorded = len(found) - len(recorded)
    return report


def _not_deleted(catalog: Catalog, run_id: int) -> list[SnapshotRecord]:
    """A run's snapshots in recorded order, without those whose files were deleted."""
    return [s for s in catalog.snapshots(run=run_id) if s.status != SnapshotStatus.DELETED]


def _topology(catalog: Catalog, run_id: int, name: str) -> Topology:
    text = catalog.run_configuration(run_id)
    if not text:
        raise ResumeSelectionError(
            f"Run {name!r} has no recorded configuration, so its model is unknown. Import its "
            "run directory (with configuration.ymmsl) or let the SnapshotRegistry record it."
        )
    return Topology.from_configuration(
        load_ymmsl(text, f"the configuration recorded for run {name!r}")
    )


def _new_workflow(
    model_name: str,
    members: dict[str, SnapshotRecord | None],
    completed_by: SnapshotRecord,
    taken: dt.datetime,
) -> NewWorkflowSnapshot:
    summaries = [
        MemberSummary.restart(instance) if s is None else MemberSummary.of(instance, s)
        for instance, s in members.items()
    ]
    return NewWorkflowSnapshot(
        members={i: None if s is None else s.id for i, s in members.items()},
        description=describe(model_name, summaries, taken),
        completed_by_snapshot_id=completed_by.id,
        source=Source.REINDEX,
    )


def workflows_containing(
    catalog: Catalog, snapshot_id: int, *, limit: int = 10
) -> RecordList[AlternativeWorkflowSnapshot]:
    """Workflow snapshots containing one snapshot, among all of its run's snapshots.

    Unlike the registry, which keeps only the newest workflow snapshot per
    submission, this enumerates the alternatives, newest first. There can be
    exponentially many; ``limit`` bounds both the result and the work.

    Args:
        catalog: The catalog.
        snapshot_id: The snapshot every result must contain.
        limit: At most this many results.

    Returns:
        The alternatives, newest first, each with its members' records and
        ids, and the id of the recorded workflow snapshot it equals, if any.
    """
    target = catalog.snapshot(snapshot_id)
    topology = _topology(catalog, target.run_id, target.run)
    graph = SnapshotGraph(topology)
    fixed = None
    for snapshot in _not_deleted(catalog, target.run_id):
        node = graph.add(snapshot.instance, snapshot.port_message_counts, snapshot)
        if snapshot.id == snapshot_id:
            fixed = node
    if fixed is None:
        return RecordList()
    found: list[dict[str, SnapshotRecord | None]] = [
        payloads(workflow) for workflow in graph.workflows_containing(fixed, limit=limit)
    ]
    member_ids = [{i: s.id if s else None for i, s in members.items()} for members in found]
    recorded = catalog.workflow_snapshot_ids_by_members(target.run_id, member_ids)
    return RecordList(
        AlternativeWorkflowSnapshot(
            rank=rank,
            run=target.run,
            run_id=target.run_id,
            timestamp=max(
                (s.timestamp for s in members.values() if s and math.isfinite(s.timestamp)),
                default=None,
            ),
            members=members,
            member_ids=ids,
            workflow_snapshot_id=recorded.get(members_key(ids)),
        )
        for rank, (members, ids) in enumerate(zip(found, member_ids, strict=True), start=1)
    )
