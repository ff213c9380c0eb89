"""gc: retention policies, the protections no policy lifts, dry runs, and kill -9 safety."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from catalog import Catalog, import_run_directory, open_catalog
from catalog.cli import cli
from catalog.db.schema import SnapshotRow, WorkflowSnapshotRow
from catalog.enums import RunStatus, SnapshotStatus, WorkflowStatus
from catalog.errors import CatalogError
from catalog.maintenance.gc import (
    CampaignState,
    RunInfo,
    SnapshotInfo,
    gc,
    plan,
    protected_workflows,
)
from catalog.maintenance.retention import (
    KeepEvery,
    KeepFinals,
    KeepLast,
    KeepWithin,
    RetentionPolicy,
    RetentionRule,
    WorkflowInfo,
    format_bytes,
    parse_duration,
    parse_size,
)
from catalog.records import WorkflowSnapshotRecord

from .conftest import RUNS

CAMPAIGN = ("mm_stateless", "mm_stateless_resume", "mm_vector5", "mm_vector5_resume")
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def make_campaign(catalog: Catalog, root: Path, runs: tuple[str, ...] = CAMPAIGN) -> Path:
    """Real MUSCLE3 run directories copied into ``root`` and imported (resumed ones linked)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in runs:
        shutil.copytree(RUNS / "v0.10" / name, root / name)
        import_run_directory(catalog, root / name)
    return root


@pytest.fixture
def campaign(catalog: Catalog, tmp_path: Path) -> Catalog:
    make_campaign(catalog, tmp_path / "campaign")
    return catalog


def newest(workflows: list[WorkflowSnapshotRecord]) -> WorkflowSnapshotRecord:
    def key(w: WorkflowSnapshotRecord) -> tuple[float, int]:
        return (w.timestamp if w.timestamp is not None else -math.inf, w.sequence)

    return max(workflows, key=key)


def must_keep(catalog: Catalog) -> set[int]:
    """The snapshot ids no policy may delete, computed from the records alone."""
    workflows = catalog.workflow_snapshots()
    runs = catalog.runs()
    keep: set[int] = set()
    by_run: dict[int, list[WorkflowSnapshotRecord]] = {}
    for w in workflows:
        by_run.setdefault(w.run_id, []).append(w)
    resumed_from = {r.resumed_from_workflow_snapshot_id for r in runs}
    running = {r.id for r in runs if r.status == RunStatus.RUNNING}
    for group in by_run.values():
        top = newest(group)
        for w in group:
            if w is top or w.id in resumed_from or w.run_id in running:
                keep.update(s for s in w.member_ids.values() if s is not None)
    snapshots = catalog.snapshots()
    keep.update(s.copied_from_snapshot_id for s in snapshots if s.copied_from_snapshot_id)
    keep.update(s.id for s in snapshots if s.run_id in running)
    return keep


def check_consistent(catalog: Catalog) -> None:
    """No present row without its file; every deleted member makes its workflow unresumable."""
    status = {}
    for snapshot in catalog.snapshots():
        status[snapshot.id] = snapshot.status
        if snapshot.status == SnapshotStatus.PRESENT:
            assert snapshot.path.is_file(), snapshot.path
        if snapshot.status == SnapshotStatus.DELETED:
            assert snapshot.status_changed_at is not None
    for w in catalog.workflow_snapshots():
        if any(status[s] == SnapshotStatus.DELETED for s in w.member_ids.values() if s):
            assert w.status == WorkflowStatus.UNRESUMABLE, w


# --------------------------------------------------------------------------- policies alone


def _info(wid: int, run: int, seq: int, t: float | None, age_h: float = 0, final: bool = False):  # type: ignore[no-untyped-def]
    return WorkflowInfo(wid, run, seq, t, NOW - dt.timedelta(hours=age_h), final)


def test_each_rule_keeps_what_it_says() -> None:
    workflows = [
        _info(1, 1, 1, 0.1, age_h=50),
        _info(2, 1, 2, 0.4, age_h=30, final=True),
        _info(3, 1, 3, 0.45, age_h=20),
        _info(4, 1, 4, 1.2, age_h=1),
        _info(5, 2, 1, None, age_h=100),
        _info(6, 2, 2, 0.3, age_h=100),
    ]
    assert KeepLast(1).keep(workflows, NOW) == {4, 6}
    assert KeepLast(2).keep(workflows, NOW) == {3, 4, 5, 6}
    assert KeepEvery(0.5).keep(workflows, NOW) == {3, 4, 6}
    assert KeepFinals().keep(workflows, NOW) == {2}
    assert KeepWithin(dt.timedelta(hours=24)).keep(workflows, NOW) == {3, 4}
    policy = RetentionPolicy((KeepFinals(), KeepWithin(parse_duration("2h"))))
    assert policy.kept(workflows, NOW) == {2, 4}
    assert policy.describe() == "--keep-finals --keep-within 2h"
    assert RetentionPolicy(max_size=10).kept(workflows, NOW) == set()


def test_sizes_durations_and_refusals() -> None:
    assert parse_size("500M") == 500 * 1024**2
    assert parse_size("10G") == 10 * 1024**3
    assert parse_size("1.5k") == 1536
    assert parse_size("1234") == 1234
    assert parse_size("2GiB") == 2 * 1024**3
    assert parse_duration("2d") == dt.timedelta(days=2)
    assert parse_duration("12h") == dt.timedelta(hours=12)
    assert parse_duration("30m") == dt.timedelta(minutes=30)
    assert parse_duration("1d12h") == dt.timedelta(hours=36)
    assert format_bytes(512) == "512 B" and format_bytes(3 * 1024**3) == "3.0 GiB"
    for bad in ("", "ten", "5X", "-1G"):
        with pytest.raises(CatalogError):
            parse_size(bad)
    for bad in ("", "2", "2x", "h2"):
        with pytest.raises(CatalogError):
            parse_duration(bad)
    with pytest.raises(CatalogError, match="at least one retention policy"):
        RetentionPolicy()
    with pytest.raises(CatalogError):
        KeepLast(0)
    with pytest.raises(CatalogError):
        KeepEvery(0)


# --------------------------------------------------------------------------- on real catalogs


def test_dry_run_reports_and_changes_nothing(campaign: Catalog) -> None:
    before = campaign.snapshots()
    report = gc(campaign, RetentionPolicy((KeepLast(2),)))
    assert report.dry_run and report.deleted
    assert campaign.snapshots() == before
    assert all(d.path.is_file() for d in report.deleted)
    assert report.files_removed == len(report.deleted)
    assert report.bytes_freed == sum(d.path.stat().st_size for d in report.deleted)
    assert not must_keep(campaign) & {d.id for d in report.deleted}


@pytest.mark.parametrize(
    "rules",
    [
        (KeepLast(2),),
        (KeepEvery(0.5),),
        (KeepFinals(),),
        (KeepWithin(dt.timedelta(days=1)),),
        (KeepLast(1), KeepEvery(1.0)),
    ],
    ids=["last", "every", "finals", "within", "last+every"],
)
def test_each_policy_deletes_exactly_what_it_does_not_keep(
    campaign: Catalog, rules: tuple[RetentionRule, ...]
) -> None:
    workflows = campaign.workflow_snapshots()
    snapshots = {s.id: s for s in campaign.snapshots()}
    infos = [
        WorkflowInfo(
            w.id,
            w.run_id,
            w.sequence,
            w.timestamp,
            w.created_at,
            all(snapshots[s].is_final_snapshot for s in w.member_ids.values() if s),
        )
        for w in workflows
    ]
    policy = RetentionPolicy(rules)
    now = dt.datetime.now(dt.UTC)
    kept_workflows = policy.kept(infos, now)
    expected_kept = set(must_keep(campaign))
    for w in workflows:
        if w.id in kept_workflows:
            expected_kept.update(s for s in w.member_ids.values() if s)
    in_workflows = {s for w in workflows for s in w.member_ids.values()}
    loose = {sid for sid in snapshots if sid not in in_workflows}
    assert loose  # the campaign has snapshots that form no workflow snapshot
    for sid in loose:
        s = snapshots[sid]
        if (KeepFinals() in rules and s.is_final_snapshot) or any(
            isinstance(r, KeepWithin) and s.recorded_at >= now - r.duration for r in rules
        ):
            expected_kept.add(sid)
    expected_deleted = set(snapshots) - expected_kept

    report = gc(campaign, policy, dry_run=False)

    assert {d.id for d in report.deleted} == expected_deleted
    after = {s.id: s for s in campaign.snapshots()}
    assert len(after) == len(snapshots)  # rows stay
    for sid, s in after.items():
        assert (s.status == SnapshotStatus.DELETED) == (sid in expected_deleted)
        assert s.path.exists() == (sid not in expected_deleted)
    for w in campaign.workflow_snapshots():
        lost = any(s in expected_deleted for s in w.member_ids.values())
        assert w.status == (WorkflowStatus.UNRESUMABLE if lost else WorkflowStatus.RESUMABLE)
        if w.id in kept_workflows:
            assert w.status == WorkflowStatus.RESUMABLE
    check_consistent(campaign)
    # Everything the policy keeps, plus the protections, can still be resumed from.
    latest = campaign.latest_workflow_snapshot(run="mm_vector5")
    assert latest is not None and latest.status == WorkflowStatus.RESUMABLE

    again = gc(campaign, policy, dry_run=False)
    assert again.deleted == () and again.files_removed == 0


def test_keep_within_keeps_everything_recent(campaign: Catalog) -> None:
    report = gc(campaign, RetentionPolicy((KeepWithin(parse_duration("1h")),)), dry_run=False)
    assert report.deleted == () and report.files_removed == 0
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    rows = len(campaign.snapshots())
    with campaign.write_session() as session:  # as if recorded three hours ago
        session.execute(update(SnapshotRow).values(recorded_at=earlier))
        session.execute(update(WorkflowSnapshotRow).values(created_at=earlier))
    old = gc(campaign, RetentionPolicy((KeepWithin(parse_duration("2h")),)))
    assert 0 < len(old.deleted) < rows
    assert {d.id for d in old.deleted} == {s.id for s in campaign.snapshots()} - must_keep(campaign)


def test_max_size_deletes_oldest_first_until_the_campaign_fits(campaign: Catalog) -> None:
    snapshots = campaign.snapshots()
    total = sum(s.size_bytes or 0 for s in snapshots)
    limit = total - 5000
    report = gc(campaign, RetentionPolicy(max_size=limit), dry_run=False)
    assert report.size_before == total
    assert report.fits and report.size_after <= limit
    deleted = [d.id for d in report.deleted]
    # Only as much as needed: without the last one it would not fit yet.
    last = next(s for s in snapshots if s.id == deleted[-1])
    assert report.size_after + (last.size_bytes or 0) > limit
    candidates = sorted(
        (s for s in snapshots if s.id not in must_keep(campaign)),
        key=lambda s: (s.recorded_at, s.id),
    )
    assert deleted == [s.id for s in candidates[: len(deleted)]]
    check_consistent(campaign)

    impossible = gc(campaign, RetentionPolicy(max_size=0), dry_run=True)
    assert impossible.fits is False
    assert not must_keep(campaign) & {d.id for d in impossible.deleted}


def test_run_option_limits_what_is_deleted(campaign: Catalog) -> None:
    report = gc(campaign, RetentionPolicy((KeepLast(1),)), run="mm_vector5", dry_run=False)
    assert report.deleted and {d.run for d in report.deleted} == {"mm_vector5"}
    others = [s for s in campaign.snapshots() if s.run != "mm_vector5"]
    assert all(s.status == SnapshotStatus.PRESENT for s in others)


def test_running_runs_and_copied_from_targets_are_protected(campaign: Catalog) -> None:
    runs = {r.name: r for r in campaign.runs()}
    campaign.set_run_status(runs["mm_vector5_resume"].id, RunStatus.RUNNING)
    origin = campaign.snapshots(run="mm_stateless")[0]
    copy = campaign.snapshots(run="mm_stateless_resume")[0]
    with campaign.write_session() as session:
        session.execute(
            update(SnapshotRow)
            .where(SnapshotRow.id == copy.id)
            .values(copied_from_snapshot_id=origin.id)
        )
    report = gc(campaign, RetentionPolicy(max_size=0), dry_run=False)
    gone = {d.id for d in report.deleted}
    assert origin.id not in gone
    assert not gone & {s.id for s in campaign.snapshots(run="mm_vector5_resume")}
    resumed_from = campaign.workflow_snapshot(
        runs["mm_vector5_resume"].resumed_from_workflow_snapshot_id or -1
    )
    assert all(campaign.snapshot(s).path.is_file() for s in resumed_from.member_ids.values() if s)
    check_consistent(campaign)


# --------------------------------------------------------------------------- randomized


def random_state(rng: random.Random) -> CampaignState:
    """A synthetic campaign: runs with snapshots, workflow snapshots, lineage and copies."""
    runs: dict[int, RunInfo] = {}
    snapshots: dict[int, SnapshotInfo] = {}
    workflows: list[WorkflowInfo] = []
    members: dict[int, tuple[int, ...]] = {}
    status: dict[int, WorkflowStatus] = {}
    next_snapshot = next_workflow = 1
    for run_id in range(1, rng.randint(1, 5) + 1):
        own: list[int] = []
        for _ in range(rng.randint(0, 25)):
            snapshots[next_snapshot] = SnapshotInfo(
                id=next_snapshot,
                run_id=run_id,
                instance=rng.choice(["macro", "micro[0]", "micro[1]"]),
                path=f"run{run_id}/{next_snapshot}.pack",
                size_bytes=rng.randint(0, 1000),
                status=rng.choices(list(SnapshotStatus), weights=[8, 1, 1, 1])[0],
                is_final=rng.random() < 0.3,
                recorded_at=NOW - dt.timedelta(minutes=rng.randint(0, 5000)),
                copied_from=(
                    rng.randint(1, next_snapshot - 1)
                    if next_snapshot > 1 and rng.random() < 0.05
                    else None
                ),
            )
            own.append(next_snapshot)
            next_snapshot += 1
        for sequence in range(1, rng.randint(0, 12) + 1):
            chosen = tuple(rng.sample(own, min(len(own), rng.randint(0, 3))))
            t = rng.choice([None, rng.uniform(0, 5)])
            workflows.append(
                WorkflowInfo(
                    next_workflow,
                    run_id,
                    sequence,
                    t,
                    NOW - dt.timedelta(minutes=rng.randint(0, 5000)),
                    bool(chosen) and all(snapshots[s].is_final for s in chosen),
                )
            )
            members[next_workflow] = chosen
            status[next_workflow] = rng.choices(list(WorkflowStatus), weights=[4, 1])[0]
            next_workflow += 1
        origin = rng.choice([None, *(w.id for w in workflows if w.run_id < run_id)])
        runs[run_id] = RunInfo(
            run_id,
            f"run{run_id}",
            rng.choices(list(RunStatus), weights=[1, 3, 1, 2])[0],
            origin,
        )
    return CampaignState(runs, snapshots, tuple(workflows), members, status)


def random_policy(rng: random.Random) -> RetentionPolicy:
    rules: list[RetentionRule] = []
    if rng.random() < 0.4:
        rules.append(KeepLast(rng.randint(1, 4)))
    if rng.random() < 0.3:
        rules.append(KeepEvery(rng.choice([0.1, 0.5, 1.0, 3.0])))
    if rng.random() < 0.3:
        rules.append(KeepFinals())
    if rng.random() < 0.3:
        rules.append(KeepWithin(dt.timedelta(minutes=rng.randint(1, 5000))))
    max_size = rng.choice([None, None, 0, rng.randint(0, 20000)])
    if not rules and max_size is None:
        max_size = rng.randint(0, 20000)
    return RetentionPolicy(tuple(rules), max_size=max_size)


@pytest.mark.parametrize("seed", range(400))
def test_random_policies_never_delete_what_must_stay(seed: int) -> None:
    rng = random.Random(seed)
    state = random_state(rng)
    policy = random_policy(rng)
    run_id = rng.choice([None, *state.runs])

    decided = plan(state, policy, NOW, run_id)

    going = set(decided.delete)
    assert len(going) == len(decided.delete)
    kept = policy.kept(state.workflows, NOW)
    by_run: dict[int, list[WorkflowInfo]] = {}
    for w in state.workflows:
        by_run.setdefault(w.run_id, []).append(w)
    newest_ids = {max(g, key=lambda w: w.newness).id for g in by_run.values()}
    resumed = {r.resumed_from_workflow_snapshot_id for r in state.runs.values()}
    assert newest_ids | {r for r in resumed if r} <= protected_workflows(state)
    for wid in kept | newest_ids | {r for r in resumed if r}:
        assert going.isdisjoint(state.members[wid]), (seed, wid)
    in_workflows = {sid for sids in state.members.values() for sid in sids}
    for sid in going - in_workflows:
        s = state.snapshots[sid]
        assert not policy.keeps_loose(s.recorded_at, s.is_final, NOW)
    for sid in going:
        snapshot = state.snapshots[sid]
        assert state.runs[snapshot.run_id].status != RunStatus.RUNNING
        assert snapshot.status != SnapshotStatus.DELETED
        assert run_id is None or snapshot.run_id == run_id
        assert all(s.copied_from != sid for s in state.snapshots.values())
    if policy.max_size is None:
        assert decided.size_after == decided.size_before - sum(
            state.snapshots[s].size_bytes or 0
            for s in going
            if state.snapshots[s].status == SnapshotStatus.PRESENT
        )
    elif going:
        # Deleting stopped as soon as it fit, or there was nothing left to delete.
        last = state.snapshots[decided.delete[-1]]
        last_size = last.size_bytes or 0 if last.status == SnapshotStatus.PRESENT else 0
        assert decided.size_after + last_size > policy.max_size
    for wid in decided.unresumable:
        assert not going.isdisjoint(state.members[wid])
        assert state.workflow_status[wid] == WorkflowStatus.RESUMABLE


@pytest.mark.parametrize("seed", range(3))
def test_random_policies_on_a_real_campaign(campaign: Catalog, seed: int) -> None:
    rng = random.Random(1000 + seed)
    runs = campaign.runs()
    if rng.random() < 0.5:
        campaign.set_run_status(rng.choice(runs).id, RunStatus.RUNNING)
    for _ in range(15):
        policy = random_policy(rng)
        if policy.max_size is not None:
            policy = RetentionPolicy(policy.rules, max_size=policy.max_size * 3)
        protected = must_keep(campaign)
        report = gc(campaign, policy, run=rng.choice([None, *(r.name for r in runs)]))
        assert protected.isdisjoint(d.id for d in report.deleted)
    report = gc(campaign, random_policy(rng), dry_run=False)
    check_consistent(campaign)


# --------------------------------------------------------------------------- kill -9

KILLER = """
import os, signal, sys
import catalog.maintenance.gc as gc
limit = int(os.environ["KILL_AFTER"])
done = [0]
real = gc._unlink
real_mark = gc._mark
def mark(*args):
    real_mark(*args)
    if limit < 0:  # after the UPDATEs, before the commit
        os.kill(os.getpid(), signal.SIGKILL)
gc._mark = mark
def unlink(path):
    if done[0] == limit:
        os.kill(os.getpid(), signal.SIGKILL)
    real(path)
    done[0] += 1
gc._unlink = unlink
from catalog.cli import cli
cli(sys.argv[1:], prog_name="muscle-catalog")
"""


def test_kill_9_before_the_marks_commit_changes_nothing(catalog_url: str, tmp_path: Path) -> None:
    with open_catalog(catalog_url, create=True) as catalog:
        make_campaign(catalog, tmp_path / "campaign", CAMPAIGN[:2])
        before = catalog.snapshots()
    args = ["--catalog", catalog_url, "gc", "--keep-last", "1", "--yes"]
    done = subprocess.run(
        [sys.executable, "-c", KILLER, *args],
        env={**os.environ, "KILL_AFTER": "-1"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    with open_catalog(catalog_url, create=True) as catalog:
        assert catalog.snapshots() == before
        assert all(s.path.is_file() for s in before)
        assert gc(catalog, RetentionPolicy((KeepLast(1),)), dry_run=False).deleted


@pytest.mark.parametrize("seed", range(4))
def test_kill_9_during_gc_leaves_no_present_row_without_a_file(
    catalog_url: str, tmp_path: Path, seed: int
) -> None:
    with open_catalog(catalog_url, create=True) as catalog:
        make_campaign(catalog, tmp_path / "campaign")
        expected = {d.id for d in gc(catalog, RetentionPolicy((KeepLast(1),))).deleted}
    assert len(expected) > 10
    kill_after = random.Random(seed).randint(0, len(expected) - 1)
    args = ["--catalog", catalog_url, "gc", "--keep-last", "1", "--yes"]
    env = {**os.environ, "KILL_AFTER": str(kill_after)}
    done = subprocess.run(
        [sys.executable, "-c", KILLER, *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == -signal.SIGKILL, done.stderr

    with open_catalog(catalog_url, create=True) as catalog:
        check_consistent(catalog)
        snapshots = catalog.snapshots()
        deleted = {s.id for s in snapshots if s.status == SnapshotStatus.DELETED}
        assert deleted == expected  # marked all at once, before any file went
        left = [s for s in snapshots if s.id in deleted and s.path.exists()]
        assert len(left) == len(expected) - kill_after
        dry = gc(catalog, RetentionPolicy((KeepLast(1),)))
        assert dry.deleted == () and dry.pending_files == len(left)

        report = gc(catalog, RetentionPolicy((KeepLast(1),)), dry_run=False)
        assert report.files_removed == report.pending_files == len(left)
        assert not any(s.path.exists() for s in catalog.snapshots() if s.id in deleted)
        assert all(s.path.is_file() for s in catalog.snapshots() if s.id not in deleted)
        check_consistent(catalog)


# --------------------------------------------------------------------------- command line


def test_gc_command_dry_run_then_yes(catalog_url: str, tmp_path: Path) -> None:
    with open_catalog(catalog_url, create=True) as catalog:
        make_campaign(catalog, tmp_path / "campaign", CAMPAIGN[:2])
    runner = CliRunner()

    none = runner.invoke(cli, ["--catalog", catalog_url, "gc"])
    assert none.exit_code == 1 and "at least one retention policy" in none.stderr

    dry = runner.invoke(cli, ["--catalog", catalog_url, "gc", "--keep-last", "1"])
    assert dry.exit_code == 0, dry.output
    assert "Would delete" in dry.stdout and "Run again with --yes" in dry.stdout

    as_json = runner.invoke(cli, ["--catalog", catalog_url, "gc", "--keep-last", "1", "--json"])
    listed = json.loads(as_json.stdout)
    assert listed["dry_run"] is True and listed["deleted"]
    assert all(Path(d["path"]).is_file() for d in listed["deleted"])

    done = runner.invoke(cli, ["--catalog", catalog_url, "gc", "--keep-last", "1", "--yes"])
    assert done.exit_code == 0, done.output
    assert f"Deleted {len(listed['deleted'])} snapshots: freed" in done.stdout
    assert f"({listed['bytes_freed']} bytes)" in done.stdout
    assert not any(Path(d["path"]).exists() for d in listed["deleted"])

    bad = runner.invoke(cli, ["--catalog", catalog_url, "gc", "--max-size", "lots"])
    assert bad.exit_code == 1 and "Not a size" in bad.stderr
    fits = runner.invoke(cli, ["--catalog", catalog_url, "gc", "--max-size", "1G"])
    assert fits.exit_code == 0 and "Would delete 0 snapshots" in fits.stdout
