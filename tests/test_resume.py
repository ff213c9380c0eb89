"""Resume selection, resume files from the catalog, reindexing and enumeration with a limit."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import ymmsl
from click.testing import CliRunner
from sqlalchemy import update

from catalog.catalog import Catalog, open_catalog
from catalog.cli import cli
from catalog.consistency import snapshots_consistent
from catalog.db.schema import WorkflowSnapshotRow
from catalog.enums import Source, WorkflowStatus
from catalog.errors import ResumeSelectionError
from catalog.replay import reindex_run, workflows_containing
from catalog.resume import choose_workflow_snapshot, resume_file_for, select_workflow_snapshot
from catalog.topology import Topology
from tests.conftest import RUNS
from tests.registry_streams import FIXED_DATE, all_streams, replay_registry, run_dir_of

STREAMS = {s.name: s for s in all_streams()}


def _touch_recorded_files(catalog: Catalog) -> None:
    """Replayed streams record metadata only; resume selection needs the files to exist."""
    for record in catalog.snapshots():
        record.path.parent.mkdir(parents=True, exist_ok=True)
        record.path.touch()


def test_latest_and_before_time(catalog: Catalog, tmp_path: Path) -> None:
    registry = replay_registry(STREAMS["mm_vector3_sim04"], catalog, tmp_path)
    _touch_recorded_files(catalog)
    records = catalog.workflow_snapshots(run=registry.run.id)
    latest = select_workflow_snapshot(catalog, run=registry.run.id)
    finite = [r for r in records if r.timestamp is not None and not math.isnan(r.timestamp)]
    assert latest.timestamp == max(r.timestamp for r in finite)  # type: ignore[type-var]
    middle = sorted({r.timestamp for r in finite})[1]  # type: ignore[type-var]
    earlier = select_workflow_snapshot(catalog, run=registry.run.id, before_time=middle)
    assert earlier.timestamp == middle
    assert select_workflow_snapshot(catalog, workflow_id=records[0].id) == records[0]
    with pytest.raises(ResumeSelectionError, match=r"No workflow snapshot.*before simulation time"):
        select_workflow_snapshot(catalog, run=registry.run.id, before_time=-1.0)


def test_resume_file_names_files_where_they_are(tmp_path: Path) -> None:
    stream = STREAMS["v0.10/mm_vector5"]
    source = run_dir_of(stream)
    assert source is not None
    run_dir = tmp_path / "moved" / "mm_vector5"
    shutil.copytree(source / "instances", run_dir / "instances")
    with open_catalog(tmp_path / "cat.sqlite", create=True) as catalog:
        registry = replay_registry(stream, catalog, run_dir)
        record = select_workflow_snapshot(catalog, run=registry.run.id)
        resume = resume_file_for(catalog, record)
        assert resume.missing == []
        assert set(resume.resume) == set(record.resume)
        for instance, path in resume.resume.items():
            assert Path(path).is_absolute() and Path(path).is_file()
            assert path == str(run_dir / record.resume[instance])
        loaded: Any = ymmsl.load(resume.text)
        assert {str(k): str(v) for k, v in loaded.resume.items()} == resume.resume
        # a missing file is reported, not hidden
        Path(next(iter(resume.resume.values()))).unlink()
        assert len(resume_file_for(catalog, record).missing) == 1


@pytest.mark.parametrize("name", ["dispatch5", "two_level_3x2", "v0.10/mm_vector6_blowup"])
def test_reindex_finds_what_the_registry_found(catalog: Catalog, tmp_path: Path, name: str) -> None:
    registry = replay_registry(STREAMS[name], catalog, tmp_path)
    live = catalog.workflow_snapshots(run=registry.run.id)
    # beside the registry's own, reindexing finds the same ones and records none twice
    beside = reindex_run(catalog, registry.run.id, clock=lambda: FIXED_DATE)
    assert beside.workflow_snapshots == beside.already_recorded == len(live)
    assert catalog.workflow_snapshots(run=registry.run.id) == live
    # on its own, it records exactly what the registry did
    catalog.delete_workflow_snapshots(registry.run.id, source=Source.REGISTRY)
    report = reindex_run(catalog, registry.run.id, clock=lambda: FIXED_DATE)
    assert report.workflow_snapshots == len(live) and report.already_recorded == 0
    reindexed = [
        w for w in catalog.workflow_snapshots(run=registry.run.id) if w.source == "reindex"
    ]
    assert [w.member_ids for w in reindexed] == [w.member_ids for w in live]
    assert [w.description for w in reindexed] == [w.description for w in live]
    # reindexing again replaces, never duplicates
    again = reindex_run(catalog, registry.run.id, clock=lambda: FIXED_DATE)
    assert again.replaced == len(live)
    assert len(catalog.workflow_snapshots(run=registry.run.id)) == len(live)


def test_reindex_needs_a_configuration(catalog: Catalog, tmp_path: Path) -> None:
    run = catalog.ensure_run(tmp_path / "bare")
    with pytest.raises(ResumeSelectionError, match="no recorded configuration"):
        reindex_run(catalog, run.id)


def test_alternatives_are_listed_lazily_with_a_limit(tmp_path: Path) -> None:
    """mm_vector6_blowup: MUSCLE3 found 729 for one submission; we list as many as asked."""
    stream = STREAMS["v0.10/mm_vector6_blowup"]
    with open_catalog(tmp_path / "cat.sqlite", create=True) as catalog:
        registry = replay_registry(stream, catalog, tmp_path)
        (recorded,) = [
            w for w in catalog.workflow_snapshots(run=registry.run.id) if w.source == "registry"
        ][:1]
        completed = catalog.snapshot_ids([tmp_path / str(recorded.completed_by)])
        (snapshot_id,) = completed.values()
        found = workflows_containing(catalog, snapshot_id, limit=50)
        assert len(found) == 50
        assert (
            len(
                {
                    tuple(sorted((i, s.id if s else None) for i, s in w.members.items()))
                    for w in found
                }
            )
            == 50
        )
        topology = Topology.from_configuration(stream.configuration())
        for workflow in found:
            assert any(s is not None and s.id == snapshot_id for s in workflow.members.values())
            assert workflow.member_ids == {
                i: s.id if s else None for i, s in workflow.members.items()
            }
            for instance, snapshot in workflow.members.items():
                for peer in topology.peers(instance):
                    other = workflow.members[peer]
                    assert snapshots_consistent(
                        topology.port_pairs(instance, peer),
                        snapshot.port_message_counts if snapshot else {},
                        other.port_message_counts if other else {},
                        own_is_restart=snapshot is None,
                        peer_is_restart=other is None,
                    )


# --------------------------------------------------------------------------- broken points


def _imported_vector5(catalog: Catalog, tmp_path: Path) -> Path:
    from catalog.run_import import import_run_directory

    run_dir = tmp_path / "mm_vector5"
    shutil.copytree(RUNS / "v0.10" / "mm_vector5", run_dir)
    import_run_directory(catalog, run_dir)
    return run_dir


def _newest_first(catalog: Catalog) -> list[int]:
    records = catalog.workflow_snapshots()
    return [
        w.id
        for w in sorted(
            records, key=lambda w: (w.timestamp if w.timestamp is not None else -1, w.sequence)
        )
    ][::-1]


def test_resume_skips_newer_broken_points_and_says_why(
    catalog_url: str, catalog: Catalog, tmp_path: Path
) -> None:
    run_dir = _imported_vector5(catalog, tmp_path)
    newest, second, third = _newest_first(catalog)[:3]
    assert select_workflow_snapshot(catalog).id == newest
    members = catalog.workflow_snapshot(newest).member_ids
    shared = set(catalog.workflow_snapshot(second).member_ids.values())
    changed_id = min(s for s in members.values() if s is not None and s not in shared)
    path = catalog.snapshot(changed_id).path
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # same size: only the sha256 tells
    path.write_bytes(bytes(data))

    choice = choose_workflow_snapshot(catalog)
    assert choice.record.id == second
    assert [s.record.id for s in choice.skipped] == [newest]
    assert "sha256 differs" in choice.skipped[0].reason and str(path) in choice.skipped[0].reason
    assert select_workflow_snapshot(catalog).id == second  # existing callers: a record
    # by id is the caller's choice, broken or not
    assert choose_workflow_snapshot(catalog, workflow_id=newest).record.id == newest

    result = CliRunner().invoke(cli, ["--catalog", catalog_url, "resume", "--latest"])
    assert result.exit_code == 0, result.output
    assert f"Skipped workflow snapshot {newest}" in result.stderr
    assert f"Workflow snapshot {second} " in result.stderr
    assert str(run_dir) in result.stdout

    # marked unresumable: skipped without reading its files
    with catalog.write_session() as session:
        session.execute(
            update(WorkflowSnapshotRow)
            .where(WorkflowSnapshotRow.id == second)
            .values(status=WorkflowStatus.UNRESUMABLE)
        )
    choice = choose_workflow_snapshot(
        catalog, before_time=catalog.workflow_snapshot(second).timestamp
    )
    assert choice.record.id == third
    assert [s.record.id for s in choice.skipped] == [second]
    assert "marked unresumable" in choice.skipped[0].reason


def test_resume_refuses_when_every_point_is_broken(catalog: Catalog, tmp_path: Path) -> None:
    run_dir = _imported_vector5(catalog, tmp_path)
    for pack in run_dir.glob("instances/macro/snapshots/*.pack"):
        pack.unlink()
    with pytest.raises(ResumeSelectionError, match="can be resumed from"):
        select_workflow_snapshot(catalog)


def test_the_catalog_never_offers_a_point_marked_unresumable(
    catalog: Catalog, tmp_path: Path
) -> None:
    _imported_vector5(catalog, tmp_path)
    newest, second = _newest_first(catalog)[:2]
    assert catalog.latest_workflow_snapshot() == catalog.workflow_snapshot(newest)
    with catalog.write_session() as session:
        session.execute(
            update(WorkflowSnapshotRow)
            .where(WorkflowSnapshotRow.id == newest)
            .values(status=WorkflowStatus.UNRESUMABLE)
        )
    latest = catalog.latest_workflow_snapshot()
    assert latest is not None and latest.id == second
