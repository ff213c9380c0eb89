"""Resume selection, resume files from the catalog, reindexing and enumeration with a limit."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import ymmsl

from catalog.catalog import Catalog, open_catalog
from catalog.consistency import snapshots_consistent
from catalog.enums import Source
from catalog.errors import ResumeSelectionError
from catalog.replay import reindex_run, workflows_containing
from catalog.resume import resume_file_for, select_workflow_snapshot
from catalog.topology import Topology
from tests.registry_streams import FIXED_DATE, all_streams, replay_registry, run_dir_of

STREAMS = {s.name: s for s in all_streams()}


def test_latest_and_before_time(catalog: Catalog, tmp_path: Path) -> None:
    registry = replay_registry(STREAMS["mm_vector3_sim04"], catalog, tmp_path)
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
    with open_catalog(tmp_path / "cat.sqlite") as catalog:
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
    with open_catalog(tmp_path / "cat.sqlite") as catalog:
        registry = replay_registry(stream, catalog, tmp_path)
        (recorded,) = [
            w for w in catalog.workflow_snapshots(run=registry.run.id) if w.source == "registry"
        ][:1]
        completed = catalog.snapshot_ids([tmp_path / str(recorded.completed_by)])
        (snapshot_id,) = completed.values()
        found = workflows_containing(catalog, snapshot_id, limit=50)
        assert len(found) == 50
        assert (
            len({tuple(sorted((i, s.id if s else None) for i, s in w.items())) for w in found})
            == 50
        )
        topology = Topology.from_configuration(stream.configuration())
        for workflow in found:
            assert any(s is not None and s.id == snapshot_id for s in workflow.values())
            for instance, snapshot in workflow.items():
                for peer in topology.peers(instance):
                    other = workflow[peer]
                    assert snapshots_consistent(
                        topology.port_pairs(instance, peer),
                        snapshot.port_message_counts if snapshot else {},
                        other.port_message_counts if other else {},
                        own_is_restart=snapshot is None,
                        peer_is_restart=other is None,
                    )
