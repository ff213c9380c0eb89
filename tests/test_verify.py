"""muscle-catalog verify: injected faults in copies of real MUSCLE3 runs, found and fixed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import select, text, update

from catalog import Catalog
from catalog.cli import cli
from catalog.db.schema import WorkflowSnapshotMember, WorkflowSnapshotRow
from catalog.enums import SnapshotStatus, WorkflowStatus
from catalog.maintenance.verify import ProblemKind, VerifyReport, verify
from catalog.run_import import import_run_directory

from .conftest import RUNS


def invoke(location: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--catalog", location, *args])


def copy_run(name: str, tmp_path: Path) -> Path:
    target = tmp_path / "runs" / Path(name).name
    shutil.copytree(RUNS / name, target)
    return target


def flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def add_null_key_duplicate(catalog: Catalog, workflow_snapshot_id: int) -> int:
    """What a catalog upgraded from revision 0001 may hold: the same members twice, keys NULL."""
    with catalog.write_session() as session:
        original = session.get_one(WorkflowSnapshotRow, workflow_snapshot_id)
        last = session.scalar(
            text("SELECT max(sequence) FROM workflow_snapshots WHERE run_id = :r"),
            {"r": original.run_id},
        )
        session.execute(
            update(WorkflowSnapshotRow)
            .where(WorkflowSnapshotRow.id == workflow_snapshot_id)
            .values(members_key=None)
        )
        duplicate = WorkflowSnapshotRow(
            run_id=original.run_id,
            sequence=int(last) + 1,
            timestamp=original.timestamp,
            description=original.description,
            source=original.source,
            members_key=None,
        )
        session.add(duplicate)
        session.flush()
        members = session.execute(
            select(WorkflowSnapshotMember.instance, WorkflowSnapshotMember.snapshot_id).where(
                WorkflowSnapshotMember.workflow_snapshot_id == workflow_snapshot_id
            )
        )
        for instance, sid in list(members):
            session.add(
                WorkflowSnapshotMember(
                    workflow_snapshot_id=duplicate.id, instance=instance, snapshot_id=sid
                )
            )
        return int(duplicate.id)


class Faults:
    """A copy of v0.10/mm_vector5, imported, with one fault of each kind injected."""

    def __init__(self, catalog: Catalog, tmp_path: Path) -> None:
        self.run_dir = copy_run("v0.10/mm_vector5", tmp_path)
        import_run_directory(catalog, self.run_dir)
        macro = self.run_dir / "instances" / "macro" / "snapshots"
        micro = self.run_dir / "instances" / "micro[0]" / "snapshots"
        self.deleted = macro / "macro_6.pack"
        self.flipped = macro / "macro_5.pack"
        self.truncated = micro / "micro-0_1.pack"
        self.orphan = macro / "macro_7.pack"
        self.temporary = macro / ".macro.4242.0badcafe.tmp"
        self.backup = tmp_path / "macro_6.pack"
        ids = catalog.snapshot_ids([self.deleted, self.flipped, self.truncated])
        self.deleted_id = ids[catalog.stored_path(self.deleted)]
        self.flipped_id = ids[catalog.stored_path(self.flipped)]
        self.truncated_id = ids[catalog.stored_path(self.truncated)]
        shutil.copy2(self.deleted, self.backup)
        self.deleted.unlink()
        flip_bit(self.flipped)
        data = self.truncated.read_bytes()
        self.truncated.write_bytes(data[: len(data) // 2])
        shutil.copy2(macro / "macro_1.pack", self.orphan)
        self.temporary.write_bytes(b"half a snapshot")
        os.utime(self.temporary, (1_000_000_000, 1_000_000_000))
        broken = {self.deleted_id, self.flipped_id, self.truncated_id}
        workflows = catalog.workflow_snapshots()
        self.unresumable = {
            w.id for w in workflows if broken & {s for s in w.member_ids.values() if s}
        }
        healthy = [w for w in workflows if w.id not in self.unresumable]
        self.kept = healthy[0].id
        self.duplicate = add_null_key_duplicate(catalog, self.kept)

    def expected(self) -> list[tuple[str, str | None, int | None, int | None]]:
        rows: list[tuple[str, str | None, int | None, int | None]] = [
            ("missing", str(self.deleted), self.deleted_id, None),
            ("corrupt", str(self.flipped), self.flipped_id, None),
            ("corrupt", str(self.truncated), self.truncated_id, None),
            ("orphan", str(self.orphan), None, None),
            ("temporary", str(self.temporary), None, None),
            ("duplicate", None, None, self.duplicate),
        ]
        rows += [("unresumable", None, None, w) for w in self.unresumable]
        return sorted(rows, key=repr)


def problems_of(output: str) -> list[tuple[str, str | None, int | None, int | None]]:
    found: list[dict[str, Any]] = json.loads(output)
    for problem in found:
        assert set(problem) == {
            "kind",
            "run",
            "path",
            "snapshot_id",
            "workflow_snapshot_id",
            "detail",
        }
        assert problem["run"] == "mm_vector5" and problem["detail"]
    return sorted(
        ((p["kind"], p["path"], p["snapshot_id"], p["workflow_snapshot_id"]) for p in found),
        key=repr,
    )


def test_a_clean_import_verifies_clean(catalog_url: str, catalog: Catalog, tmp_path: Path) -> None:
    import_run_directory(catalog, copy_run("v0.10/mm_vector5", tmp_path))
    result = invoke(catalog_url, "verify")
    assert result.exit_code == 0, result.output
    assert "No problems found" in result.stdout
    assert invoke(catalog_url, "verify", "--json").stdout.strip() == "[]"


def test_verify_finds_each_injected_fault_and_fix_repairs_them(
    catalog_url: str, catalog: Catalog, tmp_path: Path
) -> None:
    faults = Faults(catalog, tmp_path)
    result = invoke(catalog_url, "verify", "--json")
    assert result.exit_code == 1, result.output
    assert problems_of(result.stdout) == faults.expected()

    text_result = invoke(catalog_url, "verify")
    assert text_result.exit_code == 1
    for line in (
        "missing: 1 ",
        "corrupt: 2 ",
        "orphan: 1 ",
        "temporary: 1 ",
        f"unresumable: {len(faults.unresumable)} ",
        "duplicate: 1 ",
    ):
        assert line in text_result.stdout

    fixed = invoke(catalog_url, "verify", "--fix")
    assert fixed.exit_code == 1, fixed.output  # it found problems; it says what it did
    assert "fixed:" in fixed.stdout and "removed" in fixed.stdout

    statuses = {s.id: s for s in catalog.snapshots()}
    assert statuses[faults.deleted_id].status == SnapshotStatus.MISSING
    assert statuses[faults.flipped_id].status == SnapshotStatus.CORRUPT
    assert statuses[faults.truncated_id].status == SnapshotStatus.CORRUPT
    for sid in (faults.deleted_id, faults.flipped_id, faults.truncated_id):
        assert statuses[sid].status_changed_at is not None
    orphan = catalog.snapshot_by_path(faults.orphan)
    assert orphan is not None and orphan.instance == "macro" and orphan.sequence == 7
    assert not faults.temporary.exists()
    workflows = {w.id: w for w in catalog.workflow_snapshots()}
    assert faults.duplicate not in workflows
    for wid in faults.unresumable:
        assert workflows[wid].status == WorkflowStatus.UNRESUMABLE
    with catalog.read_session() as session:
        key = session.scalar(
            select(WorkflowSnapshotRow.members_key).where(WorkflowSnapshotRow.id == faults.kept)
        )
    assert key is not None and len(key) == 64

    again = invoke(catalog_url, "verify", "--json")
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == "[]"
    listed = invoke(catalog_url, "verify")
    assert listed.exit_code == 0
    assert "already marked" in listed.stdout  # known problems are listed once, with status
    report = verify(catalog)
    assert report.ok
    assert {p.kind for p in report.known} == {
        ProblemKind.MISSING,
        ProblemKind.CORRUPT,
        ProblemKind.UNRESUMABLE,
    }
    assert {p.status for p in report.known} == {"missing", "corrupt", "unresumable"}


def test_a_file_that_came_back_is_marked_present_again(catalog: Catalog, tmp_path: Path) -> None:
    faults = Faults(catalog, tmp_path)
    verify(catalog, fix=True)
    shutil.copy2(faults.backup, faults.deleted)
    report = verify(catalog)
    assert report.ok and any(str(faults.deleted) in line for line in report.restored)
    verify(catalog, fix=True)
    record = catalog.snapshot(faults.deleted_id)
    assert record.status == SnapshotStatus.PRESENT and record.status_changed_at is None
    back = [
        w
        for w in catalog.workflow_snapshots()
        if faults.deleted_id in w.member_ids.values()
        and not {faults.flipped_id, faults.truncated_id} & set(w.member_ids.values())
    ]
    assert back and all(w.status == WorkflowStatus.RESUMABLE for w in back)


def test_quick_compares_sizes_only(catalog: Catalog, tmp_path: Path) -> None:
    faults = Faults(catalog, tmp_path)
    report: VerifyReport = verify(catalog, quick=True)
    corrupt = {p.snapshot_id for p in report.problems if p.kind == ProblemKind.CORRUPT}
    assert corrupt == {faults.truncated_id}  # the flipped bit keeps the size
    assert report.quick and report.files_checked == len(catalog.snapshots())


def test_run_option_and_progress(catalog_url: str, catalog: Catalog, tmp_path: Path) -> None:
    faults = Faults(catalog, tmp_path)
    import_run_directory(catalog, copy_run("v0.10/mm_stateless", tmp_path))
    calls: list[tuple[int, int]] = []
    report = verify(catalog, run="mm_stateless", progress=lambda d, t: calls.append((d, t)))
    assert report.ok
    assert calls and calls[-1][0] == calls[-1][1] == len(catalog.snapshots(run="mm_stateless"))
    only = invoke(catalog_url, "verify", "--run", "mm_vector5", "--json")
    assert {p[0] for p in problems_of(only.stdout)} == {k for k, *_ in faults.expected()}


def test_a_recent_temporary_file_is_kept(catalog: Catalog, tmp_path: Path) -> None:
    faults = Faults(catalog, tmp_path)
    os.utime(faults.temporary)  # newer than every save of macro: a save may be under way
    report = verify(catalog, fix=True)
    assert faults.temporary.exists()
    assert any(str(faults.temporary) in line for line in report.not_fixed)
