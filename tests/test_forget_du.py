"""forget (a run's rows go, its files stay) and du (counts and bytes, present and deleted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from catalog import Catalog, open_catalog
from catalog.cli import cli
from catalog.db.schema import (
    TABLE_MODELS,
    Run,
    SnapshotPort,
    SnapshotRow,
)
from catalog.enums import SnapshotStatus
from catalog.errors import CatalogError
from catalog.maintenance.du import disk_usage, total
from catalog.maintenance.forget import forget
from catalog.maintenance.gc import gc
from catalog.maintenance.retention import KeepLast, RetentionPolicy

from .test_gc import CAMPAIGN, make_campaign


def invoke(location: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--catalog", location, *args])


def row_counts(catalog: Catalog) -> dict[str, int]:
    with catalog.read_session() as session:
        return {
            model.__tablename__: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in TABLE_MODELS
        }


@pytest.fixture
def campaign(catalog: Catalog, tmp_path: Path) -> Catalog:
    make_campaign(catalog, tmp_path / "campaign")
    return catalog


def test_forget_a_run_nobody_resumed_from(campaign: Catalog) -> None:
    run = campaign.run("mm_vector5_resume")
    files = [s.path for s in campaign.snapshots(run=run.id)]
    others = {r.name for r in campaign.runs()} - {run.name}
    before = campaign.snapshots()

    report = forget(campaign, "mm_vector5_resume")

    assert (report.snapshots, report.workflow_snapshots) == (
        run.num_snapshots,
        run.num_workflow_snapshots,
    )
    assert report.unlinked_runs == ()
    assert {r.name for r in campaign.runs()} == others
    assert campaign.snapshots() == [s for s in before if s.run_id != run.id]
    assert all(path.is_file() for path in files)
    assert campaign.run("mm_vector5").num_workflow_snapshots == 11


def test_forget_refuses_a_run_others_resumed_from_unless_forced(campaign: Catalog) -> None:
    origin = campaign.run("mm_stateless")
    resumed = campaign.run("mm_stateless_resume")
    assert resumed.resumed_from_run_id == origin.id
    counts = row_counts(campaign)

    with pytest.raises(CatalogError, match="mm_stateless_resume"):
        forget(campaign, "mm_stateless")
    assert row_counts(campaign) == counts

    report = forget(campaign, origin.id, force=True)

    assert report.unlinked_runs == ("mm_stateless_resume",)
    after = campaign.run("mm_stateless_resume")
    assert after.resumed_from_run_id is None and after.resumed_from_workflow_snapshot_id is None
    assert after.num_snapshots == resumed.num_snapshots
    assert "mm_stateless" not in {r.name for r in campaign.runs()}
    left = row_counts(campaign)
    assert left[Run.__tablename__] == counts[Run.__tablename__] - 1
    assert left[SnapshotRow.__tablename__] == counts[SnapshotRow.__tablename__] - 12
    # Child rows of its snapshots went with them.
    with campaign.read_session() as session:
        orphans = session.scalar(
            select(func.count())
            .select_from(SnapshotPort)
            .where(SnapshotPort.snapshot_id.not_in(select(SnapshotRow.id)))
        )
    assert orphans == 0


def test_forget_command(catalog_url: str, tmp_path: Path) -> None:
    with open_catalog(catalog_url, create=True) as catalog:
        make_campaign(catalog, tmp_path / "campaign", CAMPAIGN[:2])

    refused = invoke(catalog_url, "forget", "mm_stateless")
    assert refused.exit_code == 1
    assert "cannot be forgotten" in refused.stderr and "--force" in refused.stderr

    done = invoke(catalog_url, "forget", "mm_stateless", "--force")
    assert done.exit_code == 0, done.output
    assert "Forgot mm_stateless (run 1): 12 snapshots, 6 workflow snapshots" in done.stdout
    assert "no longer linked to it: mm_stateless_resume" in done.stdout

    unknown = invoke(catalog_url, "forget", "nope")
    assert unknown.exit_code == 1 and "No run 'nope'" in unknown.stderr


def test_du_counts_present_and_deleted_bytes(campaign: Catalog) -> None:
    snapshots = campaign.snapshots()
    by_run = {u.key: u for u in disk_usage(campaign)}
    for run in campaign.runs():
        own = [s for s in snapshots if s.run_id == run.id]
        assert by_run[run.name].present == len(own)
        assert by_run[run.name].present_bytes == sum(s.size_bytes or 0 for s in own)
        assert by_run[run.name].deleted == 0
    report = gc(campaign, RetentionPolicy((KeepLast(1),)), dry_run=False)
    gone = {d.id for d in report.deleted}

    usages = disk_usage(campaign)
    whole = total(usages)
    assert whole.deleted == len(gone)
    assert whole.deleted_bytes == sum(d.size_bytes or 0 for d in report.deleted)
    assert whole.present == len(snapshots) - len(gone)
    assert whole.present_bytes + whole.deleted_bytes == sum(s.size_bytes or 0 for s in snapshots)

    by_instance = {u.key: u for u in disk_usage(campaign, by="instance")}
    for instance, usage in by_instance.items():
        own = [s for s in campaign.snapshots() if s.instance == instance]
        present = [s for s in own if s.status == SnapshotStatus.PRESENT]
        assert usage.present == len(present)
        assert usage.deleted == len(own) - len(present)
    assert total(list(by_instance.values())) == whole


def test_du_command(catalog_url: str, tmp_path: Path) -> None:
    with open_catalog(catalog_url, create=True) as catalog:
        make_campaign(catalog, tmp_path / "campaign", CAMPAIGN[:2])
        expected = sum(s.size_bytes or 0 for s in catalog.snapshots())
    result = invoke(catalog_url, "du", "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert listed["by"] == "run"
    assert [g["key"] for g in listed["groups"]] == ["mm_stateless", "mm_stateless_resume"]
    assert [g["present"] for g in listed["groups"]] == [12, 7]
    assert listed["total"]["present_bytes"] == expected
    assert listed["total"]["deleted"] == 0

    invoke(catalog_url, "gc", "--keep-last", "1", "--yes")
    after = json.loads(invoke(catalog_url, "du", "--by", "instance", "--json").stdout)
    assert after["by"] == "instance"
    assert {g["key"] for g in after["groups"]} == {"macro", "micro"}
    assert after["total"]["deleted"] > 0
    assert after["total"]["present_bytes"] + after["total"]["deleted_bytes"] == expected

    table = invoke(catalog_url, "du")
    assert table.exit_code == 0 and "mm_stateless_resume" in table.stdout
    assert "total" in table.stdout
