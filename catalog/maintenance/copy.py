"""Copy a catalog into another: SQLite to PostgreSQL when a campaign outgrows a file, and back.

Everything is copied: runs, snapshots with their triggers, ports, message
counts and settings, workflow snapshots with their members, keys and
statuses, and the lineage links between them. The target may already hold
part of it (a second copy, two campaigns merged); what it holds is
recognised and not copied twice:

* a run by its run directory;
* a snapshot by its path;
* a workflow snapshot by its run and its members (the members key, computed
  again from the target's ids, see :mod:`catalog.db.identity`).

Ids are the target's own: every reference (run, origin run and workflow
snapshot, completing snapshot, copied-from snapshot, members) is re-mapped.
A new run keeps its snapshots' submission order and its workflow snapshots'
sequence numbers; snapshots and workflow snapshots added to a run the target
already had come after the ones it has, in the source's order.

Paths stay valid: each is resolved against the source (a SQLite catalog
stores paths below its directory relative to it), optionally re-rooted with
``relocate=(old, new)``, and stored as the target stores paths (absolute on
PostgreSQL, relative below a SQLite target's directory).

The whole copy is one write transaction on the target, so an interrupted copy
leaves the target as it was, and running it again merges only what is missing.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import Session

from catalog.catalog import Catalog
from catalog.db.bulk import select_in_chunks
from catalog.db.identity import members_key
from catalog.db.schema import (
    TABLE_MODELS,
    Run,
    SnapshotPort,
    SnapshotRow,
    SnapshotSetting,
    SnapshotTrigger,
    WorkflowSnapshotMember,
    WorkflowSnapshotRow,
)
from catalog.db.times import utc_time
from catalog.errors import CatalogError

#: Rows per INSERT statement.
_BATCH = 1000


@dataclass(frozen=True)
class CopyReport:
    """What a copy added to the target and what it found there already.

    Attributes:
        source: The source catalog's location.
        target: The target catalog's location.
        runs_added: Runs copied.
        runs_known: Runs the target already had (matched by run directory).
        snapshots_added: Snapshots copied.
        snapshots_known: Snapshots the target already had (matched by path).
        workflow_snapshots_added: Workflow snapshots copied.
        workflow_snapshots_known: Those it already had (run and members).
        links_added: Lineage links (origin run or workflow snapshot) set on target runs.
    """

    source: str
    target: str
    runs_added: int
    runs_known: int
    snapshots_added: int
    snapshots_known: int
    workflow_snapshots_added: int
    workflow_snapshots_known: int
    links_added: int


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def _rows(session: Session, model: Any) -> list[dict[str, Any]]:
    table = _table(model)
    return [dict(row._mapping) for row in session.execute(select(table))]


class _Paths:
    """Stored paths of the source as the target stores them."""

    def __init__(self, source: Catalog, target: Catalog, relocate: tuple[str, str] | None) -> None:
        self.source = source
        self.target = target
        self.relocate = relocate

    def moved(self, absolute: str) -> str:
        if self.relocate is None:
            return absolute
        old, new = (os.path.normpath(p) for p in self.relocate)
        if absolute == old or absolute.startswith(old.rstrip(os.sep) + os.sep):
            return new + absolute[len(old) :]
        return absolute

    def __call__(self, stored: str | None) -> str | None:
        if stored is None:
            return None
        return self.target.stored_path(self.moved(str(self.source.resolve_path(stored))))

    def filename(self, name: str) -> str:
        """A snapshot file name as submitted: re-rooted only when it is an absolute path."""
        return self.moved(name) if os.path.isabs(name) else name


def copy_catalog(
    source: Catalog, target: Catalog, relocate: tuple[str, str] | None = None
) -> CopyReport:
    """Copy every record of ``source`` into ``target``, merging with what it holds.

    Args:
        source: The catalog to copy from (only read).
        target: The catalog to copy into (open it with ``create=True`` so that an
            empty database gets the schema).
        relocate: ``(old, new)``: paths under ``old`` are stored under ``new``.

    Returns:
        What was added and what was already there.

    Raises:
        CatalogError: Source and target are the same catalog.
    """
    if source.url.render_as_string(hide_password=False) == target.url.render_as_string(
        hide_password=False
    ):
        raise CatalogError(f"Source and target are the same catalog ({source.location})")
    with source.read_session() as session:
        data = {model: _rows(session, model) for model in TABLE_MODELS}
    paths = _Paths(source, target, relocate)
    with target.write_session() as session:
        return _merge(session, data, paths, source.location, target.location)


def _insert(session: Session, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), _BATCH):
        session.execute(insert(_table(model)), list(rows[start : start + _BATCH]))


def _merge(
    session: Session,
    data: dict[Any, list[dict[str, Any]]],
    paths: _Paths,
    source: str,
    target: str,
) -> CopyReport:
    # -- runs: matched by run directory
    known_runs: dict[str, int] = {d: i for d, i in session.execute(select(Run.run_dir, Run.id))}
    run_map: dict[int, int] = {}
    new_runs: set[int] = set()
    for row in data[Run]:
        run_dir = paths(row["run_dir"])
        assert run_dir is not None
        if run_dir in known_runs:
            run_map[row["id"]] = known_runs[run_dir]
            continue
        values = {k: v for k, v in row.items() if k != "id"}
        values.update(
            run_dir=run_dir,
            resumed_from_run_id=None,
            resumed_from_workflow_snapshot_id=None,
            created_at=utc_time(row["created_at"]),
            finished_at=utc_time(row["finished_at"]) if row["finished_at"] else None,
        )
        new_id = session.execute(insert(Run).values(**values).returning(Run.id)).scalar_one()
        run_map[row["id"]] = new_id
        new_runs.add(new_id)

    # -- snapshots: matched by path
    known_snapshots: dict[str, int] = {
        p: i for p, i in session.execute(select(SnapshotRow.path, SnapshotRow.id))
    }
    next_order: dict[int, int] = {
        rid: int(last) + 1
        for rid, last in session.execute(
            select(SnapshotRow.run_id, func.max(SnapshotRow.submission_order)).group_by(
                SnapshotRow.run_id
            )
        )
    }
    snapshot_map: dict[int, int] = {}
    added_snapshots: list[tuple[int, dict[str, Any]]] = []
    for row in sorted(data[SnapshotRow], key=lambda r: (r["run_id"], r["submission_order"])):
        path = paths(row["path"])
        assert path is not None
        if path in known_snapshots:
            snapshot_map[row["id"]] = known_snapshots[path]
            continue
        run_id = run_map[row["run_id"]]
        order = row["submission_order"]
        if run_id not in new_runs:
            order = next_order.get(run_id, 1)
            next_order[run_id] = order + 1
        values = {k: v for k, v in row.items() if k != "id"}
        values.update(
            run_id=run_id,
            path=path,
            snapshot_filename=paths.filename(row["snapshot_filename"]),
            submission_order=order,
            copied_from_snapshot_id=None,
            recorded_at=utc_time(row["recorded_at"]),
            status_changed_at=(
                utc_time(row["status_changed_at"]) if row["status_changed_at"] else None
            ),
        )
        added_snapshots.append((row["id"], values))
    _insert(session, SnapshotRow, [values for _old, values in added_snapshots])
    query = select(SnapshotRow.path, SnapshotRow.id)
    added_paths = [values["path"] for _old, values in added_snapshots]
    new_ids = dict(select_in_chunks(session, query, SnapshotRow.path, added_paths))
    for old, values in added_snapshots:
        snapshot_map[old] = new_ids[values["path"]]
    added_ids = {old for old, _values in added_snapshots}
    for model in (SnapshotTrigger, SnapshotPort, SnapshotSetting):
        _insert(
            session,
            model,
            [
                {**row, "snapshot_id": snapshot_map[row["snapshot_id"]]}
                for row in data[model]
                if row["snapshot_id"] in added_ids
            ],
        )
    for row in data[SnapshotRow]:
        origin = row["copied_from_snapshot_id"]
        if row["id"] in added_ids and origin is not None and origin in snapshot_map:
            session.execute(
                update(SnapshotRow)
                .where(SnapshotRow.id == snapshot_map[row["id"]])
                .values(copied_from_snapshot_id=snapshot_map[origin])
            )

    # -- workflow snapshots: matched by run and members
    members: dict[int, dict[str, int | None]] = defaultdict(dict)
    for row in data[WorkflowSnapshotMember]:
        sid = row["snapshot_id"]
        members[row["workflow_snapshot_id"]][row["instance"]] = (
            None if sid is None else snapshot_map[sid]
        )
    known_workflows = {
        (rid, key): wid
        for wid, rid, key in session.execute(
            select(
                WorkflowSnapshotRow.id, WorkflowSnapshotRow.run_id, WorkflowSnapshotRow.members_key
            )
        )
    }
    next_sequence: dict[int, int] = {
        rid: int(last) + 1
        for rid, last in session.execute(
            select(WorkflowSnapshotRow.run_id, func.max(WorkflowSnapshotRow.sequence)).group_by(
                WorkflowSnapshotRow.run_id
            )
        )
    }
    workflow_map: dict[int, int] = {}
    workflows_added = 0
    for row in sorted(data[WorkflowSnapshotRow], key=lambda r: (r["run_id"], r["sequence"])):
        run_id = run_map[row["run_id"]]
        own = members.get(row["id"], {})
        key = members_key(own)
        if (run_id, key) in known_workflows:
            workflow_map[row["id"]] = known_workflows[(run_id, key)]
            continue
        sequence = row["sequence"]
        if run_id not in new_runs:
            sequence = next_sequence.get(run_id, 1)
            next_sequence[run_id] = sequence + 1
        completed = row["completed_by_snapshot_id"]
        values = {k: v for k, v in row.items() if k != "id"}
        values.update(
            run_id=run_id,
            sequence=sequence,
            members_key=key,
            completed_by_snapshot_id=None if completed is None else snapshot_map.get(completed),
            resume_file=paths(row["resume_file"]),
            created_at=utc_time(row["created_at"]),
        )
        new_id = session.execute(
            insert(WorkflowSnapshotRow).values(**values).returning(WorkflowSnapshotRow.id)
        ).scalar_one()
        workflow_map[row["id"]] = new_id
        known_workflows[(run_id, key)] = new_id
        workflows_added += 1
        _insert(
            session,
            WorkflowSnapshotMember,
            [
                {"workflow_snapshot_id": new_id, "instance": inst, "snapshot_id": sid}
                for inst, sid in own.items()
            ],
        )

    # -- lineage: set where the target has none yet
    current = {
        rid: (origin_run, origin_workflow)
        for rid, origin_run, origin_workflow in session.execute(
            select(Run.id, Run.resumed_from_run_id, Run.resumed_from_workflow_snapshot_id)
        )
    }
    links = 0
    for row in data[Run]:
        run_id = run_map[row["id"]]
        origin_run = row["resumed_from_run_id"]
        origin_workflow = row["resumed_from_workflow_snapshot_id"]
        have_run, have_workflow = current[run_id]
        link: dict[str, int] = {}
        if have_run is None and origin_run is not None:
            link["resumed_from_run_id"] = run_map[origin_run]
        if have_workflow is None and origin_workflow is not None:
            link["resumed_from_workflow_snapshot_id"] = workflow_map[origin_workflow]
        if link:
            session.execute(update(Run).where(Run.id == run_id).values(**link))
            links += 1

    return CopyReport(
        source=source,
        target=target,
        runs_added=len(new_runs),
        runs_known=len(data[Run]) - len(new_runs),
        snapshots_added=len(added_snapshots),
        snapshots_known=len(data[SnapshotRow]) - len(added_snapshots),
        workflow_snapshots_added=workflows_added,
        workflow_snapshots_known=len(data[WorkflowSnapshotRow]) - workflows_added,
        links_added=links,
    )


def relocation(text: Sequence[str] | None) -> tuple[str, str] | None:
    """``--relocate OLD NEW`` as absolute paths, or None."""
    if not text:
        return None
    old, new = text
    return (os.path.abspath(Path(old)), os.path.abspath(Path(new)))
