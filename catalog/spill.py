"""The spill file: what the registry could not record before it shut down, and its replay.

When the catalog is unavailable as the manager shuts down (another writer
holds the SQLite lock, the PostgreSQL server is down), the registry cannot
wait for ever: it writes what is still unrecorded to a spill file and stops.
The file sits where the next ``muscle-catalog`` command looks:

* SQLite: beside the catalog file, ``<catalog>.unrecorded.jsonl``
  (``snapshot_catalog.sqlite.unrecorded.jsonl`` for the default catalog);
* PostgreSQL (or an in-memory SQLite catalog): in the run directory,
  ``snapshot_catalog.unrecorded.jsonl``.

One JSON object per line, appended (several registries may spill into one
file): ``kind: "snapshot"`` lines hold a submission (run directory,
instance, absolute file path, the metadata as sent), ``kind:
"workflow_snapshot"`` lines a workflow snapshot found by the registry
(members by absolute file path, its description and resume file; the resume
file itself was already written). Replaying (:func:`replay_spill_file`, run
by ``muscle-catalog import`` and ``muscle-catalog verify --fix``) records
them as the registry would have, skipping what is recorded already, so a
replay can be repeated; then the file is renamed ``<name>.replayed``. Lines
that cannot be recorded stay in the spill file and are reported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.errors import CatalogError
from catalog.records import NewWorkflowSnapshot
from catalog.resilience import is_transient, record_isolating
from catalog.submission import Submission, SubmissionChecker, SubmissionError, new_snapshot

if TYPE_CHECKING:
    from catalog.catalog import Catalog

#: Suffix of a spill file.
SPILL_SUFFIX = ".unrecorded.jsonl"
#: Spill file name in a run directory (catalogs that are not a SQLite file).
RUN_DIR_SPILL = "snapshot_catalog" + SPILL_SUFFIX
#: Suffix a replayed spill file gets.
REPLAYED_SUFFIX = ".replayed"
#: Version of the line format.
SPILL_VERSION = 1


def spill_path(catalog: Catalog, run_dir: Path) -> Path:
    """Where a registry of ``run_dir`` recording into ``catalog`` spills.

    Args:
        catalog: The catalog the registry records into.
        run_dir: The run's directory.
    """
    from catalog.location import sqlite_file

    db_file = sqlite_file(catalog.url)
    if db_file is not None:
        return db_file.with_name(db_file.name + SPILL_SUFFIX)
    return Path(os.path.abspath(run_dir)) / RUN_DIR_SPILL


def spill_files(catalog: Catalog, run_dirs: Iterable[Path]) -> list[Path]:
    """The spill files meant for ``catalog`` that exist, for these runs.

    A SQLite file catalog has one, beside it, for all its runs; other
    catalogs have one per run directory.
    """
    from catalog.location import sqlite_file

    db_file = sqlite_file(catalog.url)
    if db_file is not None:
        candidates = [db_file.with_name(db_file.name + SPILL_SUFFIX)]
    else:
        candidates = [Path(os.path.abspath(d)) / RUN_DIR_SPILL for d in run_dirs]
    return [p for p in dict.fromkeys(candidates) if p.is_file()]


def snapshot_entry(run_dir: Path, model_name: str | None, submission: Submission, path: str) -> str:
    """One spill line for a submission whose snapshot row is not recorded."""
    metadata = submission.metadata
    return _line(
        {
            "kind": "snapshot",
            "run_dir": os.path.abspath(run_dir),
            "model_name": model_name,
            "instance": submission.instance,
            "path": os.path.abspath(path),
            "metadata": {
                "triggers": metadata.triggers,
                "wallclock_time": metadata.wallclock_time,
                "timestamp": metadata.timestamp,
                "next_timestamp": metadata.next_timestamp,
                "port_message_counts": metadata.port_message_counts,
                "is_final_snapshot": metadata.is_final_snapshot,
                "snapshot_filename": metadata.snapshot_filename,
            },
        }
    )


def workflow_entry(
    run_dir: Path,
    members: dict[str, str | None],
    completed_by: str | None,
    description: str,
    resume_file: Path | None,
) -> str:
    """One spill line for a workflow snapshot that is not recorded (members by file path)."""
    return _line(
        {
            "kind": "workflow_snapshot",
            "run_dir": os.path.abspath(run_dir),
            "members": {i: None if p is None else os.path.abspath(p) for i, p in members.items()},
            "completed_by": None if completed_by is None else os.path.abspath(completed_by),
            "description": description,
            "resume_file": None if resume_file is None else os.path.abspath(resume_file),
        }
    )


def _line(entry: dict[str, Any]) -> str:
    # NaN and infinite timestamps are written as Python's json writes them.
    return json.dumps({"version": SPILL_VERSION, **entry}, sort_keys=True) + "\n"


def write_spill(path: Path, lines: Sequence[str]) -> None:
    """Append lines to a spill file in one write, and make them durable.

    One ``write`` on a file opened for appending keeps the lines of two
    registries spilling at once from interleaving.
    """
    data = "".join(lines).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class ReplayReport:
    """What replaying one spill file did.

    Attributes:
        path: The spill file.
        snapshots_added: Submissions recorded now.
        snapshots_already_known: Submissions that were recorded already.
        workflow_snapshots_added: Workflow snapshots recorded now.
        workflow_snapshots_already_known: Workflow snapshots recorded already.
        not_replayed: Lines that could not be recorded, each with the reason;
            they stay in the spill file.
        renamed_to: Where the spill file went after a complete replay.
    """

    path: Path
    snapshots_added: int = 0
    snapshots_already_known: int = 0
    workflow_snapshots_added: int = 0
    workflow_snapshots_already_known: int = 0
    not_replayed: list[str] = field(default_factory=list)
    renamed_to: Path | None = None

    def summary(self) -> str:
        """One sentence for the user."""
        text = (
            f"Replayed {self.path}: {self.snapshots_added} unrecorded submissions recorded "
            f"({self.snapshots_already_known} were already), {self.workflow_snapshots_added} "
            f"workflow snapshots recorded ({self.workflow_snapshots_already_known} were already)"
        )
        if self.renamed_to is not None:
            return f"{text}; renamed it to {self.renamed_to.name}"
        return f"{text}; {len(self.not_replayed)} entries could not be recorded and stay in it"


@dataclass
class _Entry:
    line: str
    data: dict[str, Any]


def replay_spills(catalog: Catalog, run_dirs: Iterable[Path]) -> list[ReplayReport]:
    """Replay every spill file :func:`spill_files` finds for these runs."""
    return [replay_spill_file(catalog, path) for path in spill_files(catalog, run_dirs)]


def replay_spill_file(catalog: Catalog, path: Path) -> ReplayReport:
    """Record what a spill file holds, then rename it ``.replayed``.

    Submissions are recorded (from their files when these are there, else
    from the metadata, as the registry does) in the order they were
    submitted, before the workflow snapshots that name them. Whatever is
    recorded already is skipped, so replaying twice records nothing twice.

    Args:
        catalog: The catalog to record into.
        path: The spill file.

    Returns:
        What was recorded; lines that could not be are left in the file.

    Raises:
        CatalogError: The catalog is unavailable (the file is kept as it was),
            or the file cannot be read.
    """
    report = ReplayReport(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CatalogError(f"Cannot read the spill file {path}: {exc}") from exc
    entries: list[_Entry] = []
    kept: list[str] = []
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict) or data.get("version") != SPILL_VERSION:
                raise ValueError("not a spill entry of this version")
        except ValueError as exc:
            report.not_replayed.append(f"{path}, line {number}: unreadable ({exc})")
            kept.append(line if line.endswith("\n") else line + "\n")
            continue
        entries.append(_Entry(line, data))
    runs: dict[str, list[_Entry]] = {}
    for entry in entries:
        run_dir = entry.data.get("run_dir")
        if not isinstance(run_dir, str) or not os.path.isabs(run_dir):
            report.not_replayed.append(f"{path}: an entry without its run directory")
            kept.append(entry.line)
            continue
        runs.setdefault(run_dir, []).append(entry)
    try:
        for run_dir, run_entries in runs.items():
            kept.extend(_replay_run(catalog, Path(run_dir), run_entries, report))
    except Exception as exc:
        if is_transient(exc):
            raise CatalogError(
                f"Could not replay the spill file {path}: the catalog {catalog.location} is "
                f"unavailable ({type(exc).__name__}: {exc}). The file is kept; run the command "
                "again when the catalog is reachable."
            ) from exc
        raise
    if kept:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)
    else:
        report.renamed_to = path.with_name(path.name + REPLAYED_SUFFIX)
        os.replace(path, report.renamed_to)
    return report


def _replay_run(
    catalog: Catalog, run_dir: Path, entries: list[_Entry], report: ReplayReport
) -> list[str]:
    """Replay one run's entries; return the lines that could not be recorded."""
    kept: list[str] = []
    snapshots = [e for e in entries if e.data.get("kind") == "snapshot"]
    workflows = [e for e in entries if e.data.get("kind") == "workflow_snapshot"]
    for entry in entries:
        if entry.data.get("kind") not in ("snapshot", "workflow_snapshot"):
            report.not_replayed.append(
                f"{report.path}: unknown entry kind {entry.data.get('kind')!r}"
            )
            kept.append(entry.line)
    model_name = next(
        (e.data.get("model_name") for e in snapshots if e.data.get("model_name")), None
    )
    run = catalog.ensure_run(run_dir, model_name=model_name)
    checker = SubmissionChecker(None)
    items: list[tuple[_Entry, Submission, Path]] = []
    for entry in snapshots:
        try:
            submission = checker.check(entry.data.get("instance"), entry.data.get("metadata"))
            items.append((entry, submission, Path(str(entry.data["path"]))))
        except (SubmissionError, KeyError) as exc:
            report.not_replayed.append(f"{report.path}: {exc}")
            kept.append(entry.line)

    def record_snapshots(batch: Sequence[tuple[_Entry, Submission, Path]]) -> None:
        added = catalog.record_snapshot_batch(run.id, [new_snapshot(s, p) for _e, s, p in batch])
        report.snapshots_added += len(added)
        report.snapshots_already_known += len(batch) - len(added)

    def refused(item: tuple[_Entry, Submission, Path], exc: Exception) -> None:
        report.not_replayed.append(f"{item[2]} ({item[1].instance}): the catalog refused it: {exc}")
        kept.append(item[0].line)

    record_isolating(items, record_snapshots, refused)
    kept.extend(_replay_workflows(catalog, run.id, workflows, report))
    return kept


def _replay_workflows(
    catalog: Catalog, run_id: int, entries: list[_Entry], report: ReplayReport
) -> list[str]:
    kept: list[str] = []
    paths = {
        str(p)
        for e in entries
        for p in [*dict(e.data.get("members") or {}).values(), e.data.get("completed_by")]
        if p is not None
    }
    ids = catalog.snapshot_ids(sorted(paths))
    items: list[tuple[_Entry, NewWorkflowSnapshot]] = []
    for entry in entries:
        data = entry.data
        members: dict[str, int | None] = {}
        missing = []
        for instance, member in dict(data.get("members") or {}).items():
            if member is None:
                members[str(instance)] = None
            elif (sid := ids.get(catalog.stored_path(str(member)))) is not None:
                members[str(instance)] = sid
            else:
                missing.append(str(member))
        if missing or not members:
            report.not_replayed.append(
                f"{report.path}: a workflow snapshot names {', '.join(missing) or 'no members'}, "
                "which is not recorded"
            )
            kept.append(entry.line)
            continue
        completed_by = data.get("completed_by")
        resume_file = data.get("resume_file")
        items.append(
            (
                entry,
                NewWorkflowSnapshot(
                    members=members,
                    description=str(data.get("description") or ""),
                    completed_by_snapshot_id=(
                        None if completed_by is None else ids.get(catalog.stored_path(completed_by))
                    ),
                    resume_file=None if resume_file is None else Path(resume_file),
                ),
            )
        )

    def record(batch: Sequence[tuple[_Entry, NewWorkflowSnapshot]]) -> None:
        added = catalog.record_workflow_snapshots(run_id, [w for _e, w in batch])
        report.workflow_snapshots_added += len(added)
        report.workflow_snapshots_already_known += len(batch) - len(added)

    def refused(item: tuple[_Entry, NewWorkflowSnapshot], exc: Exception) -> None:
        report.not_replayed.append(f"{report.path}: a workflow snapshot was refused: {exc}")
        kept.append(item[0].line)

    record_isolating(items, record, refused)
    return kept
