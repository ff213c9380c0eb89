"""Verify a catalog against the files it records, and optionally repair what can be repaired.

A catalog is only useful while its rows describe the files on disk. Files go
missing (a scratch purge, a partial copy), change (a flipped bit, a truncated
transfer), appear without a row (a save whose process died between linking
the file and recording it, or plain MUSCLE3 beside the catalog), or are left
half-made (the temporary file of a durable save killed before its link). A
workflow snapshot with such a member can no longer be resumed from, and a
catalog upgraded from revision 0001 can hold the same workflow snapshot twice.
:func:`verify` finds each of these; with ``fix`` it records what the catalog
should know (statuses, orphans), removes what is debris (old temporary files,
duplicates) and never touches a snapshot file.

A problem the catalog already records (a snapshot marked ``missing`` that is
still missing, a workflow snapshot marked ``unresumable`` that still is) is
not found again: it is listed once, with its status, among the known problems,
so that a verify after ``--fix`` is clean. A file that came back (present
again and matching its row) is marked ``present`` again by ``fix``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from catalog.catalog import Catalog
from catalog.db.identity import members_key
from catalog.db.schema import Run, SnapshotRow, WorkflowSnapshotMember, WorkflowSnapshotRow
from catalog.enums import SnapshotStatus, WorkflowStatus
from catalog.errors import SnapshotFileError
from catalog.naming import parse_pack_name, safe_id
from catalog.records import NewSnapshot, RunRecord
from catalog.run_dir import PackFile, scan_pack_files

#: Called with (files checked so far, files to check).
VerifyProgress = Callable[[int, int], None]

#: The temporary name :func:`catalog.store.store_pack` writes a snapshot under
#: before linking it to its final name: ``.<safe id>.<pid>.<8 hex digits>.tmp``.
TEMPORARY_RE = re.compile(r"\.(?P<stem>.+)\.(?P<pid>[0-9]+)\.(?P<token>[0-9a-f]{8})\.tmp")

_HASH_CHUNK = 1 << 20


class ProblemKind(StrEnum):
    """What is wrong; the values are the ``kind`` of ``muscle-catalog verify --json``."""

    MISSING = "missing"
    CORRUPT = "corrupt"
    ORPHAN = "orphan"
    TEMPORARY = "temporary"
    UNRESUMABLE = "unresumable"
    DUPLICATE = "duplicate"
    UNRECORDED = "unrecorded"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a campaign.

    Attributes:
        kind: What is wrong.
        run: The run's name.
        path: The file concerned (absolute), if any.
        snapshot_id: The snapshot concerned, if any.
        workflow_snapshot_id: The workflow snapshot concerned, if any.
        detail: One sentence saying what exactly.
        status: For a problem the catalog already records: the status it has
            (``missing``, ``corrupt``, ``unresumable``); None for new ones.
    """

    kind: ProblemKind
    run: str
    path: Path | None
    snapshot_id: int | None
    workflow_snapshot_id: int | None
    detail: str
    status: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form ``verify --json`` prints."""
        return {
            "kind": self.kind.value,
            "run": self.run,
            "path": None if self.path is None else str(self.path),
            "snapshot_id": self.snapshot_id,
            "workflow_snapshot_id": self.workflow_snapshot_id,
            "detail": self.detail,
        }


@dataclass
class VerifyReport:
    """What :func:`verify` found and did.

    Attributes:
        problems: New problems, in run order; any makes the catalog not ok.
        known: Problems the catalog already records (each with its status).
        restored: Snapshots and workflow snapshots marked as broken whose
            files are back (present and matching); ``fix`` marks them good again.
        fixed: What ``fix`` did, one sentence per action.
        not_fixed: What ``fix`` could not do, and why.
        files_checked: Recorded files looked at.
        quick: Sizes only were compared (no sha256).
    """

    problems: list[Problem] = field(default_factory=list)
    known: list[Problem] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    not_fixed: list[str] = field(default_factory=list)
    files_checked: int = 0
    quick: bool = False

    @property
    def ok(self) -> bool:
        """True when nothing new is wrong."""
        return not self.problems

    def counts(self, *, known: bool = False) -> dict[ProblemKind, int]:
        """How many problems of each kind (new ones, or with ``known`` the recorded ones)."""
        found: dict[ProblemKind, int] = {}
        for problem in self.known if known else self.problems:
            found[problem.kind] = found.get(problem.kind, 0) + 1
        return found


@dataclass
class _RunState:
    """One run's rows, as verification needs them."""

    run_id: int
    name: str
    run_dir: Path
    snapshots: dict[int, tuple[Path, str, int | None, str | None, str]] = field(
        default_factory=dict
    )
    #: snapshot id -> its instance.
    instances: dict[int, str] = field(default_factory=dict)
    #: snapshot id -> the status the files say it should have.
    found_status: dict[int, SnapshotStatus] = field(default_factory=dict)


def verify(
    catalog: Catalog,
    run: int | str | None = None,
    quick: bool = False,
    fix: bool = False,
    progress: VerifyProgress | None = None,
) -> VerifyReport:
    """Check recorded files, snapshot directories and workflow snapshots; optionally fix them.

    Args:
        catalog: The catalog.
        run: Only this run (name or id); default: every run.
        quick: Compare file sizes only: fast on large campaigns, but a
            changed byte goes unnoticed.
        fix: Mark missing and corrupt snapshots and unresumable workflow
            snapshots, record orphan ``.pack`` files as import would, remove
            temporary files older than their instance's newest save, and
            remove duplicate workflow snapshots (keeping the oldest), and
            replay the registry's spill files (:mod:`catalog.spill`) first.
        progress: Called with (files checked, files to check).

    Returns:
        The problems found and, with ``fix``, what was done.
    """
    report = VerifyReport(quick=quick)
    runs = [catalog.run(run)] if run is not None else list(catalog.runs())
    _check_spill_files(catalog, report, runs, fix)
    states = [_load_run(catalog, r.id, r.name, r.run_dir) for r in runs]
    total = sum(len(s.snapshots) for s in states)
    done = 0
    for state in states:
        for snapshot_id, (path, _stored, size, digest, status) in state.snapshots.items():
            _check_file(report, state, snapshot_id, path, size, digest, status, quick)
            done += 1
            report.files_checked += 1
            if progress is not None:
                progress(done, total)
    for state in states:
        _check_directories(catalog, report, state, fix)
        _check_workflow_snapshots(catalog, report, state, fix)
    if fix:
        for state in states:
            _fix_snapshot_statuses(catalog, report, state)
    return report


# --------------------------------------------------------------------------- spill files


def _check_spill_files(
    catalog: Catalog, report: VerifyReport, runs: Iterable[RunRecord], fix: bool
) -> None:
    """Replay (with ``fix``) or report what a registry could not record before it shut down."""
    # Imported here: replaying decodes submissions (numpy), which resume selection,
    # a user of this module, never needs.
    from catalog.spill import replay_spill_file, spill_files

    run_dirs = [r.run_dir for r in runs]
    for path in spill_files(catalog, run_dirs):
        if fix:
            replayed = replay_spill_file(catalog, path)
            report.fixed.append(replayed.summary())
            report.not_fixed.extend(replayed.not_replayed)
            if replayed.renamed_to is not None:
                continue
        entries = sum(1 for line in path.read_text().splitlines() if line.strip())
        report.problems.append(
            Problem(
                ProblemKind.UNRECORDED,
                "",
                path,
                None,
                None,
                f"{entries} submissions or workflow snapshots a snapshot registry could not "
                "record (the catalog was unavailable at its shutdown); 'muscle-catalog verify "
                "--fix' or 'muscle-catalog import <run dir>' records them",
            )
        )


# --------------------------------------------------------------------------- recorded files


def _load_run(catalog: Catalog, run_id: int, name: str, run_dir: Path) -> _RunState:
    state = _RunState(run_id, name, run_dir)
    query = select(
        SnapshotRow.id,
        SnapshotRow.instance,
        SnapshotRow.path,
        SnapshotRow.size_bytes,
        SnapshotRow.sha256,
        SnapshotRow.status,
    ).where(SnapshotRow.run_id == run_id)
    with catalog.read_session() as session:
        for sid, instance, stored, size, digest, status in session.execute(
            query.order_by(SnapshotRow.id)
        ):
            state.instances[sid] = instance
            state.snapshots[sid] = (catalog.resolve_path(stored), stored, size, digest, status)
    return state


def file_problem(path: Path, size: int | None, digest: str | None, quick: bool) -> str | None:
    """Why a file no longer matches its recorded size and sha256, or None if it does.

    Resume selection uses this too, so that what ``verify`` calls corrupt is
    exactly what ``resume`` refuses to resume from.

    Args:
        path: The file.
        size: Its recorded size, if known.
        digest: Its recorded sha256, if known.
        quick: Compare the size only.

    Returns:
        ``"missing"``-style sentence, or None when it matches.
    """
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        return "the file does not exist"
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    if size is not None and actual != size:
        if actual < size:
            return f"truncated: {actual} of {size} bytes"
        return f"size differs: {actual} bytes, recorded {size}"
    if quick or digest is None:
        return None
    try:
        actual_digest = sha256_of(path)
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    if actual_digest != digest:
        return f"sha256 differs: {actual_digest}, recorded {digest}"
    return None


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read in chunks so that a large ``.pack`` is never held whole."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_file(
    report: VerifyReport,
    state: _RunState,
    snapshot_id: int,
    path: Path,
    size: int | None,
    digest: str | None,
    status: str,
    quick: bool,
) -> None:
    if status == SnapshotStatus.DELETED:
        state.found_status[snapshot_id] = SnapshotStatus.DELETED
        return
    exists = path.exists()
    problem = file_problem(path, size, digest, quick) if exists else "the file does not exist"
    if problem is None:
        if quick and status == SnapshotStatus.CORRUPT:
            # The size matches, but only a hash can tell that the bytes came back.
            state.found_status[snapshot_id] = SnapshotStatus.CORRUPT
            report.known.append(
                Problem(
                    ProblemKind.CORRUPT,
                    state.name,
                    path,
                    snapshot_id,
                    None,
                    "marked corrupt; its size matches now (run without --quick to check "
                    "its sha256)",
                    status,
                )
            )
            return
        state.found_status[snapshot_id] = SnapshotStatus.PRESENT
        if status != SnapshotStatus.PRESENT:
            report.restored.append(
                f"snapshot {snapshot_id} ({path}) was marked {status} but is present and matches"
            )
        return
    kind = ProblemKind.MISSING if not exists else ProblemKind.CORRUPT
    new_status = SnapshotStatus.MISSING if not exists else SnapshotStatus.CORRUPT
    state.found_status[snapshot_id] = new_status
    if status == new_status:
        report.known.append(
            Problem(kind, state.name, path, snapshot_id, None, f"marked {status}", status)
        )
    else:
        report.problems.append(Problem(kind, state.name, path, snapshot_id, None, problem))


def _fix_snapshot_statuses(catalog: Catalog, report: VerifyReport, state: _RunState) -> None:
    now = dt.datetime.now(dt.UTC)
    changes = [
        (sid, found)
        for sid, found in state.found_status.items()
        if state.snapshots.get(sid) is not None and state.snapshots[sid][4] != found
    ]
    if not changes:
        return
    with catalog.write_session() as session:
        for sid, found in changes:
            session.execute(
                update(SnapshotRow)
                .where(SnapshotRow.id == sid)
                .values(
                    status=found,
                    status_changed_at=None if found == SnapshotStatus.PRESENT else now,
                )
            )
    by_status: dict[str, int] = defaultdict(int)
    for _sid, found in changes:
        by_status[found] += 1
    for status, count in sorted(by_status.items()):
        report.fixed.append(f"{state.name}: marked {count} snapshots {status}")


# --------------------------------------------------------------------------- directories


def _snapshot_directories(state: _RunState) -> set[Path]:
    """The run's snapshot directories.

    MUSCLE3's layout (``instances/<name>/snapshots``) is read from the run
    directory; instances saving elsewhere are found from the recorded paths.
    """
    folders = {path.parent for path, *_rest in state.snapshots.values()}
    root = state.run_dir / "instances"
    if root.is_dir():
        folders.update(f / "snapshots" for f in root.iterdir() if (f / "snapshots").is_dir())
    return folders


def _check_directories(catalog: Catalog, report: VerifyReport, state: _RunState, fix: bool) -> None:
    recorded = {stored for _p, stored, _s, _d, _st in state.snapshots.values()}
    warnings: list[str] = []
    _instances, layout_files = scan_pack_files(state.run_dir, warnings)
    by_path = {item.path: item for item in layout_files}
    orphans: list[PackFile] = []
    unknown: list[Path] = []
    for folder in sorted(_snapshot_directories(state)):
        if not folder.is_dir():
            continue
        entries = sorted(folder.iterdir())
        packs = [p for p in entries if p.suffix == ".pack" and p.is_file()]
        stored = {
            catalog.stored_path(p): p for p in packs if catalog.stored_path(p) not in recorded
        }
        elsewhere = catalog.snapshot_ids(list(stored), already_stored=True) if stored else {}
        for key, path in stored.items():
            if key in elsewhere:
                continue
            item = by_path.get(path) or _pack_file(path, state)
            if item is None:
                unknown.append(path)
            else:
                orphans.append(item)
        _check_temporaries(report, state, folder, entries, packs, fix)
    for item in orphans:
        report.problems.append(
            Problem(
                ProblemKind.ORPHAN,
                state.name,
                item.path,
                None,
                None,
                f"a snapshot file of {item.instance} that the catalog does not record",
            )
        )
    for path in unknown:
        report.problems.append(
            Problem(
                ProblemKind.ORPHAN,
                state.name,
                path,
                None,
                None,
                "a .pack file the catalog does not record, of no known instance",
            )
        )
    if fix:
        _record_orphans(catalog, report, state, orphans)
        for path in unknown:
            report.not_fixed.append(
                f"{path}: not recorded, because its instance cannot be told from its name"
            )


def _pack_file(path: Path, state: _RunState) -> PackFile | None:
    """An unrecorded file outside MUSCLE3's layout, if its name says which instance saved it."""
    parsed = parse_pack_name(path.name)
    if parsed is None:
        return None
    instances = {
        state.instances[sid]
        for sid, (p, _stored, _size, _digest, _status) in state.snapshots.items()
        if p.parent == path.parent
    }
    for instance in instances:
        if safe_id(instance) == parsed[0]:
            return PackFile(instance, path, parsed[1], path.stat().st_mtime_ns)
    return None


def _record_orphans(
    catalog: Catalog, report: VerifyReport, state: _RunState, orphans: list[PackFile]
) -> None:
    # Imported lazily: run_import pulls in lineage and yMMSL, which verify needs only here.
    from catalog.run_import import pack_snapshot, recorded_order

    items: list[NewSnapshot] = []
    for item in recorded_order(orphans):
        try:
            items.append(pack_snapshot(item))
        except SnapshotFileError as exc:
            report.not_fixed.append(f"{item.path}: not recorded: {exc}")
    if items:
        added = catalog.record_snapshots(state.run_id, items)
        report.fixed.append(f"{state.name}: recorded {added} orphan snapshot files")


def _check_temporaries(
    report: VerifyReport,
    state: _RunState,
    folder: Path,
    entries: Iterable[Path],
    packs: list[Path],
    fix: bool,
) -> None:
    newest: dict[str, int] = {}
    for pack in packs:
        parsed = parse_pack_name(pack.name)
        if parsed is not None:
            mtime = pack.stat().st_mtime_ns
            newest[parsed[0]] = max(newest.get(parsed[0], mtime), mtime)
    for path in entries:
        match = TEMPORARY_RE.fullmatch(path.name)
        if match is None or not path.is_file():
            continue
        report.problems.append(
            Problem(
                ProblemKind.TEMPORARY,
                state.name,
                path,
                None,
                None,
                "a leftover temporary file of a snapshot save that did not finish",
            )
        )
        if not fix:
            continue
        last_save = newest.get(match["stem"])
        if last_save is not None and path.stat().st_mtime_ns < last_save:
            path.unlink(missing_ok=True)
            report.fixed.append(f"removed {path}")
        else:
            report.not_fixed.append(
                f"{path}: kept, because no save of its instance is newer (one may be under way)"
            )


# --------------------------------------------------------------------------- workflow snapshots


def _check_workflow_snapshots(
    catalog: Catalog, report: VerifyReport, state: _RunState, fix: bool
) -> None:
    members: dict[int, dict[str, int | None]] = defaultdict(dict)
    rows: list[tuple[int, str, str | None]] = []
    with catalog.read_session() as session:
        for wid, status, key in session.execute(
            select(
                WorkflowSnapshotRow.id, WorkflowSnapshotRow.status, WorkflowSnapshotRow.members_key
            )
            .where(WorkflowSnapshotRow.run_id == state.run_id)
            .order_by(WorkflowSnapshotRow.id)
        ):
            rows.append((wid, status, key))
        for wid, instance, sid in session.execute(
            select(
                WorkflowSnapshotMember.workflow_snapshot_id,
                WorkflowSnapshotMember.instance,
                WorkflowSnapshotMember.snapshot_id,
            )
            .join(
                WorkflowSnapshotRow,
                WorkflowSnapshotRow.id == WorkflowSnapshotMember.workflow_snapshot_id,
            )
            .where(WorkflowSnapshotRow.run_id == state.run_id)
        ):
            members[wid][instance] = sid
    # Duplicates: the same members twice; the oldest is kept.
    first: dict[str, int] = {}
    duplicates: list[tuple[int, int]] = []
    for wid, _status, _key in rows:
        key = members_key(members[wid])
        if key in first:
            duplicates.append((wid, first[key]))
            report.problems.append(
                Problem(
                    ProblemKind.DUPLICATE,
                    state.name,
                    None,
                    None,
                    wid,
                    f"the same members as workflow snapshot {first[key]}",
                )
            )
        else:
            first[key] = wid
    duplicate_ids = {wid for wid, _kept in duplicates}
    to_mark: dict[int, WorkflowStatus] = {}
    for wid, status, _key in rows:
        if wid in duplicate_ids:
            continue
        broken = sorted(
            (instance, sid, state.found_status.get(sid))
            for instance, sid in members[wid].items()
            if sid is not None and state.found_status.get(sid, SnapshotStatus.PRESENT) != "present"
        )
        if broken:
            detail = "members " + ", ".join(f"{i} ({s} {st})" for i, s, st in broken)
            if status == WorkflowStatus.UNRESUMABLE:
                report.known.append(
                    Problem(
                        ProblemKind.UNRESUMABLE,
                        state.name,
                        None,
                        None,
                        wid,
                        f"marked unresumable: {detail}",
                        status,
                    )
                )
            else:
                report.problems.append(
                    Problem(ProblemKind.UNRESUMABLE, state.name, None, None, wid, detail)
                )
                to_mark[wid] = WorkflowStatus.UNRESUMABLE
        elif status == WorkflowStatus.UNRESUMABLE:
            report.restored.append(
                f"workflow snapshot {wid} was marked unresumable but its members are all good"
            )
            to_mark[wid] = WorkflowStatus.RESUMABLE
    if fix and (to_mark or duplicates):
        _fix_workflow_snapshots(catalog, report, state, to_mark, duplicates, members)


def _fix_workflow_snapshots(
    catalog: Catalog,
    report: VerifyReport,
    state: _RunState,
    to_mark: dict[int, WorkflowStatus],
    duplicates: list[tuple[int, int]],
    members: dict[int, dict[str, int | None]],
) -> None:
    with catalog.write_session() as session:
        for wid, kept in duplicates:
            # Runs that resumed from the duplicate resumed from the one kept.
            session.execute(
                update(Run)
                .where(Run.resumed_from_workflow_snapshot_id == wid)
                .values(resumed_from_workflow_snapshot_id=kept)
            )
            session.delete(session.get_one(WorkflowSnapshotRow, wid))
        session.flush()
        for _wid, kept in duplicates:
            row = session.get_one(WorkflowSnapshotRow, kept)
            if row.members_key is None:
                row.members_key = members_key(members[kept])
        for wid, status in to_mark.items():
            session.execute(
                update(WorkflowSnapshotRow)
                .where(WorkflowSnapshotRow.id == wid)
                .values(status=status)
            )
    if duplicates:
        report.fixed.append(
            f"{state.name}: removed {len(duplicates)} duplicate workflow snapshots "
            f"({', '.join(str(w) for w, _k in duplicates)}), keeping the oldest of each"
        )
    for status in WorkflowStatus:
        marked = [w for w, s in to_mark.items() if s == status]
        if marked:
            report.fixed.append(
                f"{state.name}: marked {len(marked)} workflow snapshots {status.value}"
            )
