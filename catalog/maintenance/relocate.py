"""Relocate: the catalog follows a run directory (or a whole campaign) that was moved or copied.

Run directories move: off a cluster's scratch space, into an archive, to a
bigger disk. The files keep their bytes but every path the catalog stores
(the run directory, each snapshot's path, each workflow snapshot's resume
file) still names the old place, so ``resume`` would write a file naming
snapshots that are not there. :func:`relocate` rewrites every stored path
below the old directory to the same place below the new one, in one
transaction so that a failure leaves the catalog as it was.

It refuses, before changing anything, when the new directory does not exist
or holds a different run: a run recorded there already, or files whose bytes
differ from what the catalog recorded for the run being moved. Relocating
onto unrelated files would make the catalog vouch for snapshots it never saw.

:func:`catalog.run_import.import_run_directory` calls this by itself when it
is given a copy of a run whose recorded directory no longer exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from catalog.catalog import Catalog
from catalog.db.schema import Run, SnapshotRow, WorkflowSnapshotRow
from catalog.errors import CatalogError
from catalog.maintenance.verify import file_problem


@dataclass
class RelocateReport:
    """What :func:`relocate` changed.

    Attributes:
        old: The directory the paths were under.
        new: The directory they are under now.
        runs: The names of the runs whose directory moved.
        run_dirs: Run directory paths rewritten.
        snapshot_paths: Snapshot paths rewritten.
        resume_files: Resume file paths rewritten.
        missing_files: Snapshot files recorded under ``old`` that are not
            under ``new`` (they are relocated all the same; ``muscle-catalog
            verify`` reports them).
    """

    old: Path
    new: Path
    runs: list[str] = field(default_factory=list)
    run_dirs: int = 0
    snapshot_paths: int = 0
    resume_files: int = 0
    missing_files: list[Path] = field(default_factory=list)

    @property
    def changed(self) -> int:
        """How many stored paths were rewritten."""
        return self.run_dirs + self.snapshot_paths + self.resume_files


def relocate(catalog: Catalog, old: Path | str, new: Path | str) -> RelocateReport:
    """Rewrite every stored path below ``old`` to the same place below ``new``, in one transaction.

    Args:
        catalog: The catalog.
        old: Where the runs were (a run directory, or a directory of runs);
            it need not exist any more.
        new: Where they are now; must exist.

    Returns:
        What was rewritten.

    Raises:
        CatalogError: ``new`` does not exist, nothing is recorded below
            ``old``, or ``new`` holds a different run (recorded already, or
            with files whose size or sha256 differ from the recorded ones);
            nothing was changed then.
    """
    old_dir = Path(os.path.abspath(old))
    new_dir = Path(os.path.realpath(new))
    if not new_dir.is_dir():
        raise CatalogError(
            f"Cannot relocate to {new_dir}: no such directory. Copy or move the run there first."
        )
    report = RelocateReport(old=old_dir, new=new_dir)
    prefixes = _stored_forms(catalog, old_dir)
    with catalog.write_session() as session:
        runs = _rows_below(session, Run.run_dir, prefixes, Run.id, Run.name)
        snapshots = _rows_below(session, SnapshotRow.path, prefixes, SnapshotRow.id)
        resumes = _rows_below(
            session, WorkflowSnapshotRow.resume_file, prefixes, WorkflowSnapshotRow.id
        )
        if not (runs or snapshots or resumes):
            raise CatalogError(
                f"Nothing is recorded under {old_dir} in {catalog.location}; see "
                "'muscle-catalog runs' for the recorded run directories."
            )
        _refuse_a_different_run(catalog, session, report, runs, snapshots)
        _rewrite(session, Run, Run.run_dir, runs, catalog, report)
        _rewrite(session, SnapshotRow, SnapshotRow.path, snapshots, catalog, report)
        _rewrite(
            session, WorkflowSnapshotRow, WorkflowSnapshotRow.resume_file, resumes, catalog, report
        )
    report.runs = [str(name) for _id, _stored, _rel, name in runs]
    report.run_dirs = len(runs)
    report.snapshot_paths = len(snapshots)
    report.resume_files = len(resumes)
    return report


def _stored_forms(catalog: Catalog, directory: Path) -> list[str]:
    """How paths below ``directory`` can be stored: as given, and with symlinks resolved."""
    forms = {catalog.stored_path(directory), catalog.stored_path(os.path.realpath(directory))}
    return sorted(forms)


def _rows_below(
    session: Session,
    column: InstrumentedAttribute[Any],
    prefixes: list[str],
    *extra: InstrumentedAttribute[Any],
) -> list[tuple[Any, ...]]:
    """``(id, stored path, path relative to the prefix, *extra)`` of rows at or below a prefix.

    The prefix test is a ``substr`` comparison, which both backends index
    the same way and which, unlike ``LIKE``, needs no escaping of ``_``
    and ``%`` in directory names.
    """
    found: dict[Any, tuple[Any, ...]] = {}
    id_column = extra[0] if extra else None
    for prefix in prefixes:
        below = prefix.rstrip("/") + "/"
        condition = (column == prefix) | (func.substr(column, 1, len(below)) == below)
        columns = [id_column, column, *extra[1:]] if id_column is not None else [column]
        for row in session.execute(select(*columns).where(condition)):
            stored = str(row[1])
            relative = "" if stored == prefix else stored[len(below) :]
            found.setdefault(row[0], (row[0], stored, relative, *row[2:]))
    return list(found.values())


def _new_path(report: RelocateReport, relative: str) -> Path:
    return report.new / PurePosixPath(relative) if relative else report.new


def _refuse_a_different_run(
    catalog: Catalog,
    session: Session,
    report: RelocateReport,
    runs: list[tuple[Any, ...]],
    snapshots: list[tuple[Any, ...]],
) -> None:
    """Raise unless ``new`` holds (a copy of) the same files; fill in the missing ones."""
    moving = {row[0] for row in runs}
    new_forms = _stored_forms(catalog, report.new)
    for other_id, stored, _rel, name in _rows_below(
        session, Run.run_dir, new_forms, Run.id, Run.name
    ):
        if other_id not in moving:
            raise CatalogError(
                f"Cannot relocate {report.old} to {report.new}: run {name!r} (run {other_id}) is "
                f"recorded at {catalog.resolve_path(stored)} already. Relocate or forget it first."
            )
    ids = [row[0] for row in snapshots]
    recorded = (
        {
            sid: (size, digest)
            for sid, size, digest in session.execute(
                select(SnapshotRow.id, SnapshotRow.size_bytes, SnapshotRow.sha256).where(
                    SnapshotRow.id.in_(ids)
                )
            )
        }
        if ids
        else {}
    )
    matching = 0
    for sid, _stored, relative in snapshots:
        path = _new_path(report, relative)
        if not path.exists():
            report.missing_files.append(path)
            continue
        size, digest = recorded[sid]
        problem = file_problem(path, size, digest, quick=False)
        if problem is not None:
            raise CatalogError(
                f"Cannot relocate {report.old} to {report.new}: it holds a different run "
                f"({path}: {problem}). Nothing was changed."
            )
        matching += 1
    if snapshots and not matching:
        raise CatalogError(
            f"Cannot relocate {report.old} to {report.new}: none of the "
            f"{len(snapshots)} recorded snapshot files is there, so it holds a different run "
            "(or none). Nothing was changed."
        )


def _rewrite(
    session: Session,
    model: Any,
    column: InstrumentedAttribute[Any],
    rows: list[tuple[Any, ...]],
    catalog: Catalog,
    report: RelocateReport,
) -> None:
    for row_id, _stored, relative, *_rest in rows:
        session.execute(
            update(model)
            .where(model.id == row_id)
            .values({column.key: catalog.stored_path(_new_path(report, relative))})
        )
