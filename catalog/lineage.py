"""Lineage: which run resumed from which, found from what the resumed run's configuration says.

A run started with a ``resume:`` section (a resume file appended to the
``muscle_manager`` command line) was started from snapshots of another run.
Once both are in the catalog, the resumed run is linked to its origin. The
snapshot paths in the resume section were written where the runs lived then
(often a cluster's scratch space), so they are matched against the catalog
with the relocation rules of :mod:`catalog.run_dir`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path, PurePath

from catalog.catalog import Catalog
from catalog.records import RunRecord
from catalog.run_dir import (
    INSTANCES_FOLDER,
    map_moved,
    original_location,
    parse_ymmsl,
    split_at_instances,
)


def origin_snapshot_id(catalog: Catalog, path: Path, sha256: str | None = None) -> int | None:
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

    Returns:
        The snapshot's id, or None if the catalog does not hold it.
    """
    by_path = catalog.snapshot_ids([path])
    if by_path:
        return next(iter(by_path.values()))
    if sha256 is None:
        try:
            sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return None
    found = catalog.snapshot_ids_by_sha256([sha256]).get(sha256)
    return found[0] if found else None


def link_lineage(catalog: Catalog) -> list[RunRecord]:
    """Link every resumed run in the catalog to the run it was resumed from, where now possible.

    A run whose configuration has a ``resume:`` section was started from
    snapshots of another run. Once both are in the catalog, the resumed run's
    ``resumed_from_run_id`` is set. Runs are checked whatever order they were
    imported in, so importing the original after the resumed run links them too.

    Args:
        catalog: The catalog.

    Returns:
        The runs that were newly linked.
    """
    linked: list[RunRecord] = []
    runs = catalog.runs()
    for run in runs:
        if run.resumed_from_run_id is not None:
            continue
        origin = _resumed_from(catalog, run, runs)
        if origin is not None:
            catalog.set_run_lineage(run.id, origin.id)
            linked.append(catalog.run(run.id))
    return linked


def _resumed_from(catalog: Catalog, run: RunRecord, runs: Sequence[RunRecord]) -> RunRecord | None:
    """The run whose snapshots ``run``'s configuration resumes from, if it is in the catalog."""
    text = catalog.run_configuration(run.id)
    if not text or "resume" not in text:
        return None
    try:
        resume = parse_ymmsl(text).resume
    except ValueError:
        return None
    moved_from = original_location(run.run_dir)
    origins = {
        found
        for path in resume.values()
        if (found := _run_of(catalog, run, runs, path, moved_from)) is not None
    }
    if len(origins) != 1:
        return None
    origin_id = origins.pop()
    return next(r for r in runs if r.id == origin_id)


def _run_of(
    catalog: Catalog,
    run: RunRecord,
    runs: Sequence[RunRecord],
    written: PurePath,
    moved_from: PurePath | None,
) -> int | None:
    """The id of the run (other than ``run``) holding the snapshot a resume path names.

    The strongest evidence decides, and weaker guesses are not tried after it:

    1. The path exists: the snapshot is there (recorded or not).
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
        return _recorded_run(catalog, run, original)
    split = split_at_instances(written)
    if split is None:
        return None
    old_dir, rest = split
    mapped = map_moved(old_dir, moved_from, run.run_dir) if moved_from is not None else None
    if mapped is not None:
        return _recorded_run(catalog, run, mapped.joinpath(INSTANCES_FOLDER, *rest))
    sibling = run.run_dir.parent.joinpath(old_dir.name, INSTANCES_FOLDER, *rest)
    found = _recorded_run(catalog, run, sibling)
    if found is not None:
        return found
    hits = {
        other.id
        for other in runs
        if other.id != run.id
        and other.run_dir.name == old_dir.name
        and _recorded_run(catalog, run, other.run_dir.joinpath(INSTANCES_FOLDER, *rest)) is not None
    }
    return hits.pop() if len(hits) == 1 else None


def _recorded_run(catalog: Catalog, run: RunRecord, path: Path) -> int | None:
    """The run (other than ``run``) that recorded ``path``, if any."""
    record = catalog.snapshot_by_path(path)
    return record.run_id if record is not None and record.run_id != run.id else None
