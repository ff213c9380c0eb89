"""Resume selection: pick a workflow snapshot from the catalog and turn it into a resume file.

The catalog's workflow snapshots are the resume points; a ``snapshot_*.ymmsl``
file is only a view of one, which this module writes on demand (appended to
the ``muscle_manager`` command line, it resumes the run). Recomputing
workflow snapshots is :mod:`catalog.replay`'s job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from catalog.catalog import Catalog
from catalog.errors import ResumeSelectionError
from catalog.records import WorkflowSnapshotRecord
from catalog.resume_file import resume_document


def select_workflow_snapshot(
    catalog: Catalog,
    *,
    run: int | str | None = None,
    workflow_id: int | None = None,
    before_time: float | None = None,
) -> WorkflowSnapshotRecord:
    """Choose a resume point: by id, else the newest (optionally at or before a time).

    Args:
        catalog: The catalog.
        run: Only this run's workflow snapshots (name or id).
        workflow_id: This workflow snapshot.
        before_time: The newest whose simulation time is at or before this.

    Raises:
        ResumeSelectionError: Nothing matches; the message says what exists.
    """
    if workflow_id is not None:
        record = catalog.workflow_snapshot(workflow_id)
        if run is not None and record.run_id != catalog.run(run).id:
            raise ResumeSelectionError(
                f"Workflow snapshot {workflow_id} belongs to run {record.run!r}, not {run!r}"
            )
        return record
    found = catalog.latest_workflow_snapshot(run=run, before_time=before_time)
    if found is None:
        where = f" of run {run!r}" if run is not None else ""
        when = f" at or before simulation time {before_time}" if before_time is not None else ""
        raise ResumeSelectionError(
            f"No workflow snapshot{where}{when} in {catalog.location}. List them with "
            "'muscle-catalog workflows'; runs imported without resume files get them with "
            "'muscle-catalog reindex'."
        )
    return found


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
