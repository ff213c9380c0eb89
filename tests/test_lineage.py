"""Lineage recorded live: a resumed run knows the run and workflow snapshot it started from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path, PurePath
from typing import Any
from unittest.mock import MagicMock

import pytest
import ymmsl
from click.testing import CliRunner
from ymmsl import v0_2

from catalog import (
    Catalog,
    SnapshotRegistry,
    import_run_directory,
    open_catalog,
    resume_file_for,
)
from catalog.cli import cli
from catalog.instance import SnapshotManager
from catalog.lineage import lineage_of
from catalog.run_dir import resolve_resume_path

from .conftest import RUNS
from .registry_streams import FIXED_DATE, run_streams
from .test_instance import make_communicator

ORIGIN = RUNS / "v0.10" / "mm_stateless"
RESUMED = RUNS / "v0.10" / "mm_stateless_resume"


def _resumed_configuration(resume: dict[str, str]) -> Any:
    """mm_stateless_resume's configuration, resuming from the given files."""
    configuration: Any = ymmsl.load((RESUMED / "configuration.ymmsl").read_text())
    configuration.resume = {v0_2.Reference(k): Path(v) for k, v in resume.items()}
    return configuration


def _replay(catalog: Catalog, run_dir: Path, resume: dict[str, str]) -> SnapshotRegistry:
    """Run mm_stateless_resume's submissions through a registry started with ``resume``."""
    shutil.copytree(RESUMED / "instances", run_dir / "instances")
    registry = SnapshotRegistry(
        _resumed_configuration(resume), run_dir / "snapshots", catalog, clock=lambda: FIXED_DATE
    )
    (stream,) = [s for s in run_streams() if s.name == "v0.10/mm_stateless_resume"]
    for instance, metadata in stream.submissions:
        metadata = dict(metadata)
        relative = PurePath(metadata["snapshot_filename"]).parts
        metadata["snapshot_filename"] = str(
            run_dir.joinpath(*relative[relative.index("instances") :])
        )
        registry.register_snapshot(instance, metadata)
    registry.shutdown()
    return registry


def test_a_three_run_campaign_records_its_lineage_as_it_goes(
    catalog: Catalog, catalog_url: str, tmp_path: Path
) -> None:
    shutil.copytree(ORIGIN, tmp_path / "run1")
    run1 = import_run_directory(catalog, tmp_path / "run1").run
    written: dict[Any, Any] = ymmsl.load((RESUMED / "configuration.ymmsl").read_text()).resume  # type: ignore[attr-defined]
    resume1 = {
        str(k): str(resolve_resume_path(v, tmp_path / "run1")[0]) for k, v in written.items()
    }

    run2 = _replay(catalog, tmp_path / "run2", resume1).run
    assert run2.resumed_from_run_id == run1.id
    origin = catalog.workflow_snapshot(run2.resumed_from_workflow_snapshot_id or -1)
    assert origin.run_id == run1.id
    assert {i: str(p) for i, p in resume_file_for(catalog, origin).resume.items()} == resume1

    latest = catalog.latest_workflow_snapshot(run=run2.id)
    assert latest is not None
    resume2 = {i: str(p) for i, p in resume_file_for(catalog, latest).resume.items()}
    run3 = _replay(catalog, tmp_path / "run3", resume2).run
    assert (run3.resumed_from_run_id, run3.resumed_from_workflow_snapshot_id) == (
        run2.id,
        latest.id,
    )

    chain = lineage_of(catalog, run3.id)
    assert [(s.run.id, s.origin_run.id if s.origin_run else None) for s in chain] == [
        (run3.id, run2.id),
        (run2.id, run1.id),
        (run1.id, None),
    ]
    printed = CliRunner().invoke(cli, ["--catalog", catalog_url, "lineage", str(run3.id), "--json"])
    assert printed.exit_code == 0, printed.output
    steps = json.loads(printed.stdout)
    assert [s["resumed_from_workflow_snapshot"] for s in steps] == [latest.id, origin.id, None]
    assert steps[0]["simulation_time"] == latest.timestamp
    text = CliRunner().invoke(cli, ["--catalog", catalog_url, "lineage", "run3"]).stdout
    assert f"resumed from workflow snapshot {latest.id} of run2" in text


def test_import_credits_the_right_runs(catalog_url: str, tmp_path: Path) -> None:
    """Importing the origin last links the resumed run, and says which run came from which."""
    for name in ("mm_stateless", "mm_stateless_resume"):
        shutil.copytree(RUNS / "v0.10" / name, tmp_path / name)
    runner = CliRunner()
    first = runner.invoke(
        cli, ["--catalog", catalog_url, "import", str(tmp_path / "mm_stateless_resume")]
    )
    assert "linked:" not in first.stdout
    second = runner.invoke(
        cli, ["--catalog", catalog_url, "import", str(tmp_path / "mm_stateless")]
    )
    assert second.exit_code == 0, second.output
    assert (
        "linked: mm_stateless_resume (run 1) was resumed from mm_stateless (run 2)" in second.stdout
    )
    runs = json.loads(runner.invoke(cli, ["--catalog", catalog_url, "runs", "--json"]).stdout)
    assert runs[0]["resumed_from_workflow_snapshot"] is not None


@pytest.mark.parametrize("success, status", [(True, "finished"), (False, "failed")])
def test_the_outcome_is_recorded_after_shutdown(
    catalog_url: str, tmp_path: Path, success: bool, status: str
) -> None:
    configuration = ymmsl.load((ORIGIN / "configuration.ymmsl").read_text())
    registry = SnapshotRegistry(configuration, tmp_path / "run" / "snapshots", catalog_url)
    assert registry.run.status == "running"
    registry.shutdown()
    registry.record_outcome(success)
    with open_catalog(catalog_url, create=True) as catalog:
        (run,) = catalog.runs()
        assert run.status == status and run.finished_at is not None


def test_instances_link_a_run_resumed_under_plain_muscle_manager(
    catalog: Catalog, tmp_path: Path
) -> None:
    """No registry: the resumed instances record where their run came from."""
    shutil.copytree(ORIGIN, tmp_path / "run1")
    run1 = import_run_directory(catalog, tmp_path / "run1").run
    text = (RESUMED / "configuration.ymmsl").read_text()
    run2_dir = tmp_path / "run2"
    run2_dir.mkdir()
    (run2_dir / "configuration.ymmsl").write_text(
        text.replace("/scratch/campaign/runs/mm_stateless/", f"{tmp_path / 'run1'}/")
    )
    written: dict[Any, Any] = ymmsl.load(text).resume  # type: ignore[attr-defined]
    for instance, path in written.items():
        moved = resolve_resume_path(path, tmp_path / "run1")[0]
        snapshots = run2_dir / "instances" / str(instance) / "snapshots"
        manager = SnapshotManager(str(instance), MagicMock(), make_communicator({}), catalog)
        manager.prepare_resume(moved, snapshots)
    run2 = catalog.run("run2")
    assert run2.resumed_from_run_id == run1.id
    origin = catalog.workflow_snapshot(run2.resumed_from_workflow_snapshot_id or -1)
    assert origin.run_id == run1.id
    expected = {
        str(i): str(resolve_resume_path(p, tmp_path / "run1")[0]) for i, p in written.items()
    }
    assert {i: str(p) for i, p in resume_file_for(catalog, origin).resume.items()} == expected
    copies = catalog.snapshots(run=run2.id)
    assert copies and all(s.copied_from_snapshot_id is not None for s in copies)
