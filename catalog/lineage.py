"""Lineage: which run resumed from which, and from which of its workflow snapshots.

A run started with a ``resume:`` section (a resume file appended to the
``muscle_manager`` command line, written by ``muscle-catalog resume`` or by
MUSCLE3 itself) starts each listed instance from a snapshot of an earlier run.
Once the catalog holds those snapshots, the run is linked to the run they
belong to and to the workflow snapshot whose members they are, so that
"which workflow snapshot of which run did run 3 start from?" has an answer.

Lineage is recorded live (the registry links a resumed run when it starts)
and after the fact (import and watch link every run they can, in whatever
order the runs were imported). Snapshots are matched by their recorded path,
else by content (SHA-256), so copies and moved run directories match too; for
run directories moved off a cluster, the paths MUSCLE3 wrote are first mapped
with the relocation rules of :mod:`catalog.run_dir`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from catalog.catalog import Catalog
from catalog.records import RunRecord, WorkflowSnapshotRecord
from catalog.run_dir import (
    INSTANCES_FOLDER,
    map_moved,
    original_location,
    parse_ymmsl,
    split_at_instances,
)


def origin_snapshot_id(
    catalog: Catalog, path: Path, sha256: str | None = None, *, exclude_run: int | None = None
) -> int | None:
    """The recorded snapshot a resume file's path names, matched by path, else by content.

    A resumed instance copies the snapshot it resumes from into its own run;
    the copy records where it came from. The path given may be where the run
    lives now or, for a run directory copied or moved meanwhile, a path the
    catalog never saw: then the file's SHA-256 finds it.

    Args:
        catalog: The catalog.
        path: The snapshot file as the resume section names it.
        sha256: The file's hex digest, if the caller has read it (else it is
            read here when the path does not match).
        exclude_run: A run whose snapshots do not count (the resumed run,
            whose own copies have the same content).

    Returns:
        The snapshot's id, or None if the catalog does not hold it.
    """
    by_path = catalog.snapshot_ids([path])
    candidates = list(by_path.values())
    if not candidates:
        if sha256 is None:
            try:
                sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                return None
        candidates = catalog.snapshot_ids_by_sha256([sha256]).get(sha256, [])
    if exclude_run is not None and candidates:
        runs = catalog.snapshot_runs(candidates)
        candidates = [sid for sid in candidates if runs.get(sid) != exclude_run]
    return candidates[0] if candidates else None


def link_resumed_run(
    catalog: Catalog, run: RunRecord, resume: Mapping[str, PurePath]
) -> RunRecord | None:
    """Link a run that is starting from a resume section to its origin, as it starts.

    The paths are those the manager was given, so they exist now (or name
    files the catalog recorded); see :func:`origin_snapshot_id`.

    Args:
        catalog: The catalog.
        run: The run being started.
        resume: Its resume section: instance -> snapshot file.

    Returns:
        The run's refreshed record if it was linked, else None.
    """
    origins = {
        instance: found
        for instance, path in resume.items()
        if (found := origin_snapshot_id(catalog, Path(path), exclude_run=run.id)) is not None
    }
    return _link(catalog, run, origins, len(resume))


def link_lineage(catalog: Catalog) -> list[RunRecord]:
    """Link every resumed run in the catalog to its origin, where that is now possible.

    Runs are checked whatever order they were imported in, so importing the
    original after the resumed run links them too.

    Args:
        catalog: The catalog.

    Returns:
        The runs that were newly linked (their records say to what).
    """
    linked: list[RunRecord] = []
    runs = catalog.runs()
    for run in runs:
        if run.resumed_from_run_id is not None:
            continue
        resume = _resume_section(catalog, run)
        if not resume:
            continue
        moved_from = original_location(run.run_dir)
        origins = {
            instance: found
            for instance, path in resume.items()
            if (found := _origin_of(catalog, run, runs, path, moved_from)) is not None
        }
        record = _link(catalog, run, origins, len(resume))
        if record is not None:
            linked.append(record)
    return linked


def _resume_section(catalog: Catalog, run: RunRecord) -> dict[str, PurePath]:
    text = catalog.run_configuration(run.id)
    if not text or "resume" not in text:
        return {}
    try:
        return parse_ymmsl(text, f"the configuration recorded for run {run.name!r}").resume
    except ValueError:
        return {}


def _link(
    catalog: Catalog, run: RunRecord, origins: Mapping[str, int], resumed: int
) -> RunRecord | None:
    """Record the origin run (all members from one run) and, if one matches, the workflow snapshot.

    Args:
        catalog: The catalog.
        run: The resumed run.
        origins: Instance -> origin snapshot id, for the members found.
        resumed: How many instances the resume section lists.
    """
    if not origins:
        return None
    origin_runs = set(catalog.snapshot_runs(origins.values()).values()) - {run.id}
    if len(origin_runs) != 1:
        return None
    origin_run = origin_runs.pop()
    workflow_id = None
    if len(origins) == resumed:
        workflow_id = _matching_workflow_snapshot(catalog, origin_run, origins)
    catalog.set_run_lineage(run.id, origin_run, workflow_id)
    return catalog.run(run.id)


def _matching_workflow_snapshot(
    catalog: Catalog, origin_run: int, origins: Mapping[str, int]
) -> int | None:
    """The origin run's workflow snapshot whose members are exactly these (others restart)."""
    first = next(iter(origins.values()))
    for workflow in catalog.workflow_snapshots_with_member(first):
        if workflow.run_id != origin_run or not set(origins) <= set(workflow.member_ids):
            continue
        if all(sid == origins.get(instance) for instance, sid in workflow.member_ids.items()):
            return workflow.id
    return None


def _origin_of(
    catalog: Catalog,
    run: RunRecord,
    runs: Sequence[RunRecord],
    written: PurePath,
    moved_from: PurePath | None,
) -> int | None:
    """The id of the snapshot (of another run) a resume path of ``run`` names.

    The strongest evidence decides, and weaker guesses are not tried after it:

    1. The path exists: the file there, by path or content.
    2. We know where ``run`` lived when MUSCLE3 wrote it (``moved_from``,
       say ``/scratch/c/resumed/x_resume``, now ``/data/resumed/x_resume``)
       and the path lies in the same tree (``/scratch/c/runs/x/...``): the
       tree moved as a whole, so the snapshot is at ``/data/runs/x/...``.
    3. Otherwise a sibling of ``run`` named like the original run directory,
       else the one run in the catalog with that name.

    Guessing by name only when nothing better is known matters because two
    runs of one campaign can share a directory name (``v0.7/mm_scalar`` and
    ``v0.11/mm_scalar``), with the same file names in them.
    """
    original = Path(written)
    if original.is_absolute() and original.exists():
        return origin_snapshot_id(catalog, original, exclude_run=run.id)
    split = split_at_instances(written)
    if split is None:
        return None
    old_dir, rest = split
    mapped = map_moved(old_dir, moved_from, run.run_dir) if moved_from is not None else None
    if mapped is not None:
        return _recorded(catalog, run, mapped.joinpath(INSTANCES_FOLDER, *rest))
    sibling = run.run_dir.parent.joinpath(old_dir.name, INSTANCES_FOLDER, *rest)
    found = _recorded(catalog, run, sibling)
    if found is not None:
        return found
    hits = {
        hit
        for other in runs
        if other.id != run.id and other.run_dir.name == old_dir.name
        if (hit := _recorded(catalog, run, other.run_dir.joinpath(INSTANCES_FOLDER, *rest)))
        is not None
    }
    return hits.pop() if len(hits) == 1 else None


def _recorded(catalog: Catalog, run: RunRecord, path: Path) -> int | None:
    """The snapshot recorded at ``path`` by a run other than ``run``, if any."""
    found = catalog.snapshot_ids([path])
    if not found:
        return None
    (sid,) = found.values()
    return sid if catalog.snapshot_runs([sid]).get(sid) != run.id else None


@dataclass(frozen=True)
class LineageStep:
    """One run of a lineage chain and where it started from.

    Attributes:
        run: The run.
        origin_run: The run it resumed from, None if it started from scratch
            (or its origin is not in the catalog).
        workflow_snapshot: The workflow snapshot of ``origin_run`` it resumed
            from, if known.
    """

    run: RunRecord
    origin_run: RunRecord | None
    workflow_snapshot: WorkflowSnapshotRecord | None


def lineage_of(catalog: Catalog, run: int | str) -> list[LineageStep]:
    """The chain from a run back to the first run of its campaign, newest first.

    Args:
        catalog: The catalog.
        run: The run (name or id) to start from.

    Raises:
        CatalogError: No such run.
    """
    runs = {r.id: r for r in catalog.runs()}
    current: RunRecord | None = catalog.run(run)
    chain: list[LineageStep] = []
    seen: set[int] = set()
    while current is not None and current.id not in seen:  # a cycle cannot be, but never loop
        seen.add(current.id)
        origin = runs.get(current.resumed_from_run_id or -1)
        workflow_id = current.resumed_from_workflow_snapshot_id
        workflow = catalog.workflow_snapshot(workflow_id) if workflow_id is not None else None
        chain.append(LineageStep(current, origin, workflow))
        current = origin
    return chain
