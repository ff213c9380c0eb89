"""Forget a run: remove its rows from the catalog, leaving its files where they are.

For a run recorded by mistake, imported twice under two directories, or whose
directory was thrown away by hand. Its snapshots, workflow snapshots and
their child rows go in one transaction, so a crash leaves the run either
whole or gone.

Other runs may depend on it: a run that resumed from it (its
``resumed_from_run_id`` or ``resumed_from_workflow_snapshot_id``), a resumed
copy of one of its snapshots (``copied_from_snapshot_id``), or a workflow
snapshot of another run with one of its snapshots as a member. Forgetting it
would silently cut that history, so it is refused unless forced; forced, the
other runs' links become NULL (they still happened, their origin is just no
longer recorded), and another run's workflow snapshot that had one of its
snapshots as a member becomes ``unresumable`` with that member NULL.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from catalog.catalog import Catalog
from catalog.db.schema import (
    Run,
    SnapshotPort,
    SnapshotRow,
    SnapshotSetting,
    SnapshotTrigger,
    WorkflowSnapshotMember,
    WorkflowSnapshotRow,
)
from catalog.enums import WorkflowStatus
from catalog.errors import CatalogError


@dataclass(frozen=True)
class ForgetReport:
    """What forgetting a run removed.

    Attributes:
        run_id: The run's id (no longer in the catalog).
        name: Its name.
        snapshots: How many snapshot rows were removed.
        workflow_snapshots: How many workflow snapshot rows were removed.
        unlinked_runs: Names of the other runs whose link to it was set NULL.
        unresumable: Other runs' workflow snapshots made unresumable.
    """

    run_id: int
    name: str
    snapshots: int
    workflow_snapshots: int
    unlinked_runs: tuple[str, ...]
    unresumable: tuple[int, ...]


def forget(catalog: Catalog, run: int | str, force: bool = False) -> ForgetReport:
    """Remove a run's rows (files untouched).

    Args:
        catalog: The catalog.
        run: The run, by id or name.
        force: Forget it even when other runs depend on it (their links become NULL).

    Returns:
        What was removed.

    Raises:
        CatalogError: No such run, or other runs depend on it and ``force`` is False.
    """
    record = catalog.run(run)
    run_id = record.id
    with catalog.write_session() as session:
        own_snapshots = select(SnapshotRow.id).where(SnapshotRow.run_id == run_id)
        own_workflows = select(WorkflowSnapshotRow.id).where(WorkflowSnapshotRow.run_id == run_id)
        dependent_runs = list(
            session.execute(
                select(Run.id, Run.name).where(
                    Run.id != run_id,
                    or_(
                        Run.resumed_from_run_id == run_id,
                        Run.resumed_from_workflow_snapshot_id.in_(own_workflows),
                    ),
                )
            )
        )
        copy_runs = list(
            session.execute(
                select(Run.id, Run.name)
                .join(SnapshotRow, SnapshotRow.run_id == Run.id)
                .where(Run.id != run_id, SnapshotRow.copied_from_snapshot_id.in_(own_snapshots))
                .distinct()
            )
        )
        foreign_workflows = sorted(
            session.scalars(
                select(WorkflowSnapshotMember.workflow_snapshot_id)
                .where(
                    WorkflowSnapshotMember.snapshot_id.in_(own_snapshots),
                    WorkflowSnapshotMember.workflow_snapshot_id.not_in(own_workflows),
                )
                .distinct()
            )
        )
        dependants = sorted({name for _id, name in dependent_runs + copy_runs})
        if (dependants or foreign_workflows) and not force:
            what = ", ".join(dependants) or f"workflow snapshots {foreign_workflows}"
            raise CatalogError(
                f"Run {record.name} (run {run_id}) cannot be forgotten: other runs resumed "
                f"from it ({what}). Use --force to forget it anyway (their links to it "
                "are then removed)."
            )
        session.execute(
            update(Run)
            .where(Run.id.in_([rid for rid, _name in dependent_runs]))
            .values(resumed_from_run_id=None, resumed_from_workflow_snapshot_id=None)
        )
        session.execute(
            update(SnapshotRow)
            .where(SnapshotRow.copied_from_snapshot_id.in_(own_snapshots))
            .values(copied_from_snapshot_id=None)
        )
        if foreign_workflows:
            session.execute(
                update(WorkflowSnapshotMember)
                .where(
                    WorkflowSnapshotMember.workflow_snapshot_id.in_(foreign_workflows),
                    WorkflowSnapshotMember.snapshot_id.in_(own_snapshots),
                )
                .values(snapshot_id=None)
            )
            session.execute(
                update(WorkflowSnapshotRow)
                .where(WorkflowSnapshotRow.id.in_(foreign_workflows))
                .values(status=WorkflowStatus.UNRESUMABLE.value)
            )
        counts = _delete_run(session, run_id)
    return ForgetReport(
        run_id=run_id,
        name=record.name,
        snapshots=counts[0],
        workflow_snapshots=counts[1],
        unlinked_runs=tuple(dependants),
        unresumable=tuple(foreign_workflows),
    )


def _delete_run(session: Session, run_id: int) -> tuple[int, int]:
    """Delete a run and everything below it, children first.

    Every child table is deleted explicitly rather than through ``ON DELETE
    CASCADE``, so the result does not depend on SQLite's per-connection
    foreign-key setting; members go before snapshots, which they RESTRICT.
    """
    own_snapshots = select(SnapshotRow.id).where(SnapshotRow.run_id == run_id)
    own_workflows = select(WorkflowSnapshotRow.id).where(WorkflowSnapshotRow.run_id == run_id)
    session.execute(
        delete(WorkflowSnapshotMember).where(
            WorkflowSnapshotMember.workflow_snapshot_id.in_(own_workflows)
        )
    )
    session.execute(
        update(Run).where(Run.id == run_id).values(resumed_from_workflow_snapshot_id=None)
    )
    workflows = session.scalar(select(func.count()).select_from(own_workflows.subquery()))
    session.execute(delete(WorkflowSnapshotRow).where(WorkflowSnapshotRow.run_id == run_id))
    session.execute(
        update(WorkflowSnapshotRow)
        .where(WorkflowSnapshotRow.completed_by_snapshot_id.in_(own_snapshots))
        .values(completed_by_snapshot_id=None)
    )
    for child in (SnapshotPort, SnapshotTrigger, SnapshotSetting):
        session.execute(delete(child).where(child.snapshot_id.in_(own_snapshots)))
    snapshots = session.scalar(select(func.count()).select_from(own_snapshots.subquery()))
    session.execute(delete(SnapshotRow).where(SnapshotRow.run_id == run_id))
    session.execute(delete(Run).where(Run.id == run_id))
    return int(snapshots or 0), int(workflows or 0)
