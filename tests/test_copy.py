"""copy: whole catalogs SQLite -> PostgreSQL -> SQLite, merging without duplicates, paths valid."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select, update

from catalog import Catalog, import_run_directory, open_catalog
from catalog.cli import cli
from catalog.db.schema import SnapshotRow
from catalog.enums import RunStatus
from catalog.maintenance.copy import copy_catalog
from catalog.maintenance.gc import gc
from catalog.maintenance.retention import KeepLast, RetentionPolicy

from .test_forget_du import row_counts
from .test_gc import CAMPAIGN, make_campaign


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def everything(catalog: Catalog) -> dict[str, Any]:
    """Every record, field by field, with ids replaced by what they name (ids are re-mapped)."""
    runs = catalog.runs()
    snapshots = catalog.snapshots()
    workflows = catalog.workflow_snapshots()
    run_dir = {r.id: str(r.run_dir) for r in runs}
    path = {s.id: str(s.path) for s in snapshots}
    workflow = {w.id: (run_dir[w.run_id], w.sequence) for w in workflows}
    out: dict[str, Any] = {"runs": {}, "snapshots": {}, "workflows": {}}
    for r in runs:
        fields = dataclasses.asdict(r)
        fields.pop("id")
        fields["resumed_from_run_id"] = run_dir.get(r.resumed_from_run_id or -1)
        fields["resumed_from_workflow_snapshot_id"] = workflow.get(
            r.resumed_from_workflow_snapshot_id or -1
        )
        out["runs"][str(r.run_dir)] = _plain(fields)
    for s in snapshots:
        fields = dataclasses.asdict(s)
        fields.pop("id")
        fields["run_id"] = run_dir[s.run_id]
        fields["copied_from_snapshot_id"] = path.get(s.copied_from_snapshot_id or -1)
        out["snapshots"][str(s.path)] = _plain(fields)
    for w in workflows:
        fields = dataclasses.asdict(w)
        fields.pop("id")
        fields["run_id"] = run_dir[w.run_id]
        fields["member_ids"] = {i: path.get(s or -1) for i, s in w.member_ids.items()}
        out["workflows"][workflow[w.id]] = _plain(fields)
    return out


def _rich_campaign(catalog: Catalog, root: Path) -> None:
    """A campaign with every kind of state: lineage, a copy link, deletions, statuses."""
    make_campaign(catalog, root)
    runs = {r.name: r for r in catalog.runs()}
    catalog.set_run_status(runs["mm_stateless"].id, RunStatus.FINISHED)
    catalog.set_run_status(runs["mm_vector5_resume"].id, RunStatus.FAILED)
    origin = catalog.snapshots(run="mm_stateless")[0]
    copy = catalog.snapshots(run="mm_stateless_resume")[0]
    with catalog.write_session() as session:
        session.execute(
            update(SnapshotRow)
            .where(SnapshotRow.id == copy.id)
            .values(copied_from_snapshot_id=origin.id)
        )
    gc(catalog, RetentionPolicy((KeepLast(2),)), run="mm_vector5", dry_run=False)


def test_round_trip_sqlite_postgresql_sqlite_keeps_every_record(
    pg_url: str, tmp_path: Path
) -> None:
    with open_catalog(tmp_path / "snapshot_catalog.sqlite", create=True) as source:
        _rich_campaign(source, tmp_path / "campaign")
        expected = everything(source)
        counts = row_counts(source)
        assert any(s["status"] == "deleted" for s in expected["snapshots"].values())
        assert any(w["status"] == "unresumable" for w in expected["workflows"].values())
        assert any(s["copied_from_snapshot_id"] for s in expected["snapshots"].values())
        with open_catalog(pg_url, create=True) as middle:
            report = copy_catalog(source, middle)
            assert (report.runs_added, report.snapshots_added) == (4, counts["snapshots"])
            assert report.workflow_snapshots_added == counts["workflow_snapshots"]
            assert everything(middle) == expected
            assert row_counts(middle) == counts
            with middle.read_session() as session:  # absolute on PostgreSQL
                stored = session.scalars(select(SnapshotRow.path))
                assert all(p.startswith("/") for p in stored)
            back_dir = tmp_path / "elsewhere"
            back_dir.mkdir()
            with open_catalog(back_dir / "snapshot_catalog.sqlite", create=True) as back:
                copy_catalog(middle, back)
                assert everything(back) == expected
                assert row_counts(back) == counts
                assert all(s.path.exists() for s in back.snapshots() if s.status == "present")

                again = copy_catalog(middle, back)
                assert (again.runs_added, again.snapshots_added) == (0, 0)
                assert again.workflow_snapshots_added == again.links_added == 0
                assert everything(back) == expected


def test_merge_into_a_target_holding_some_runs_adds_no_duplicates(
    catalog_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "campaign"
    (tmp_path / "source").mkdir()
    with open_catalog(tmp_path / "source" / "snapshot_catalog.sqlite", create=True) as source:
        make_campaign(source, root)
        expected = everything(source)
        counts = row_counts(source)
        with open_catalog(catalog_url, create=True) as target:
            # The target recorded two of the runs itself (other ids, other times).
            import_run_directory(target, root / "mm_vector5")
            import_run_directory(target, root / "mm_stateless_resume")
            report = copy_catalog(source, target)

            assert (report.runs_added, report.runs_known) == (2, 2)
            assert report.snapshots_known == 41 + 7
            assert row_counts(target) == counts
            merged = everything(target)
            assert merged["runs"].keys() == expected["runs"].keys()
            assert merged["snapshots"].keys() == expected["snapshots"].keys()
            assert merged["workflows"].keys() == expected["workflows"].keys()
            for key in ("snapshots", "workflows"):
                for name, fields in expected[key].items():
                    mine = {k: v for k, v in merged[key][name].items() if k not in _TIMES}
                    assert mine == {k: v for k, v in fields.items() if k not in _TIMES}
            # Lineage was filled in where the target lacked it.
            resumed = target.run("mm_stateless_resume")
            assert resumed.resumed_from_run_id == target.run("mm_stateless").id
            assert resumed.resumed_from_workflow_snapshot_id is not None


_TIMES = {"recorded_at", "created_at", "status_changed_at"}


def test_copy_command_relocates_and_creates_the_target(pg_url: str, tmp_path: Path) -> None:
    old_root = tmp_path / "cluster"
    source_file = tmp_path / "cat" / "snapshot_catalog.sqlite"
    source_file.parent.mkdir()
    with open_catalog(source_file, create=True) as source:
        make_campaign(source, old_root, CAMPAIGN[:2])
        expected = len(source.snapshots())
    new_root = tmp_path / "home"
    shutil.move(old_root, new_root)
    runner = CliRunner()

    result = runner.invoke(
        cli, ["copy", str(source_file), pg_url, "--relocate", str(old_root), str(new_root)]
    )

    assert result.exit_code == 0, result.output
    assert "runs: 2 added, 0 already there" in result.stdout
    assert f"snapshots: {expected} added, 0 already there" in result.stdout
    with open_catalog(pg_url, create=True) as target:
        snapshots = target.snapshots()
        assert len(snapshots) == expected
        assert all(s.path.is_relative_to(new_root) and s.path.is_file() for s in snapshots)
        assert all(r.run_dir.is_relative_to(new_root) for r in target.runs())
        resume_files = [w.resume_file for w in target.workflow_snapshots() if w.resume_file]
        assert resume_files and all(p.is_relative_to(new_root) for p in resume_files)

    sqlite_back = tmp_path / "new" / "dir" / "snapshot_catalog.sqlite"
    back = runner.invoke(cli, ["copy", pg_url, str(sqlite_back)])
    assert back.exit_code == 0, back.output
    with open_catalog(sqlite_back, create=True) as copied:
        assert len(copied.snapshots()) == expected

    missing = runner.invoke(cli, ["copy", str(tmp_path / "none.sqlite"), str(sqlite_back)])
    assert missing.exit_code == 1 and "no catalog" in missing.stderr
    same = runner.invoke(cli, ["copy", str(sqlite_back), str(sqlite_back)])
    assert same.exit_code == 1 and "same catalog" in same.stderr
