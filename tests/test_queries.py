"""Snapshot queries on real MUSCLE3 runs: filters, ordering, frames, run summaries, views, plans."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import event, text

from catalog import Catalog, SnapshotRecord
from catalog.enums import WorkflowStatus
from catalog.snapshot_query import QueryError
from tests.test_gc import make_campaign


@pytest.fixture
def campaign(catalog: Catalog, tmp_path: Path) -> Catalog:
    make_campaign(catalog, tmp_path / "campaign")
    return catalog


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == b


# ------------------------------------------------------------------------ filters


def test_a_vectors_base_name_and_patterns_select_its_elements(campaign: Catalog) -> None:
    every = campaign.snapshots(run="mm_vector5")
    micros = [s for s in every if s.instance.startswith("micro[")]
    assert micros, "the vector run has micro[i] snapshots"
    assert campaign.snapshots(run="mm_vector5", instance="micro") == micros
    assert campaign.snapshots(run="mm_vector5", instance="micro[*]") == micros
    assert campaign.snapshots(run="mm_vector5", instance="micro*") == micros
    assert campaign.snapshots(run="mm_vector5", instance="micro[3]") == [
        s for s in every if s.instance == "micro[3]"
    ]
    assert campaign.snapshots(run="mm_vector5", instance="mi?ro[1]") == [
        s for s in every if s.instance == "micro[1]"
    ]
    # Case-sensitive, like instance names (SQLite's LIKE would not be).
    assert campaign.snapshots(run="mm_vector5", instance="MICRO*") == []
    # In the campaign, "micro" is also the stateless run's scalar instance.
    assert {s.instance for s in campaign.snapshots(instance="micro")} >= {"micro", "micro[0]"}


def test_time_trigger_final_limit_and_order_filters(campaign: Catalog) -> None:
    every = campaign.snapshots()
    window = campaign.snapshots(after_time=0.2, before_time=0.6)
    assert window == [s for s in every if 0.2 <= s.timestamp <= 0.6]
    assert window and len(window) < len(every)

    trigger = every[0].triggers[0]
    assert campaign.snapshots(trigger=trigger) == [s for s in every if trigger in s.triggers]
    prefix = trigger.split()[0] + "*"
    assert campaign.snapshots(trigger=prefix) == [
        s for s in every if any(t.startswith(prefix[:-1]) for t in s.triggers)
    ]
    assert campaign.snapshots(final=True) == [s for s in every if s.is_final_snapshot]

    by_time = campaign.snapshots(order_by="timestamp", after_time=0.0)
    times = [s.timestamp for s in by_time]
    assert times == sorted(times)
    newest = campaign.snapshots(order_by="-timestamp", after_time=0.0, limit=3)
    assert [s.timestamp for s in newest] == sorted(times, reverse=True)[:3]
    assert len(campaign.snapshots(limit=5)) == 5
    assert campaign.snapshots(limit=5) == every[:5]
    assert campaign.snapshots(limit=0) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"limit": -3}, "limit must be 0 or more"),
        ({"order_by": "colour"}, "Cannot order snapshots by 'colour'"),
        ({"after_time": 2.0, "before_time": 1.0}, "nothing can match"),
        ({"before_time": math.nan}, "must be a number"),
    ],
)
def test_impossible_filters_are_refused(
    campaign: Catalog, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(QueryError, match=message):
        campaign.snapshots(**arguments)


def test_every_record_and_json_object_carries_its_id(campaign: Catalog) -> None:
    for record in campaign.snapshots(limit=10):
        assert record.to_json()["id"] == record.id
        assert campaign.snapshot(record.id) == record


def test_streaming_gives_the_same_records(campaign: Catalog) -> None:
    assert list(campaign.iter_snapshots(batch_size=7)) == campaign.snapshots()
    assert list(campaign.iter_snapshots(instance="micro", order_by="-id", batch_size=3)) == (
        campaign.snapshots(instance="micro", order_by="-id")
    )


# ------------------------------------------------------------------------- frames


def test_the_frame_is_typed_and_matches_the_records(campaign: Catalog) -> None:
    records = campaign.snapshots(run="mm_stateless")
    frame = campaign.snapshots_frame(run="mm_stateless")
    assert list(frame["id"]) == [r.id for r in records]
    assert list(frame["path"]) == [str(r.path) for r in records]
    assert all(Path(p).is_absolute() and Path(p).exists() for p in frame["path"])
    for value, record in zip(frame["timestamp"], records, strict=True):
        assert _same(float(value), record.timestamp)
    assert frame["timestamp"].isna().any(), "the stateless run has implicit (NaN) snapshots"
    assert isinstance(frame["recorded_at"].dtype, pd.DatetimeTZDtype)
    assert str(frame["recorded_at"].dt.tz) == "UTC"
    assert list(frame["recorded_at"]) == [pd.Timestamp(r.recorded_at) for r in records]
    assert frame["is_final_snapshot"].dtype == bool
    assert list(frame["is_final_snapshot"]) == [r.is_final_snapshot for r in records]
    assert list(frame["instance"].astype(str)) == [r.instance for r in records]
    assert list(frame["run"].astype(str)) == ["mm_stateless"] * len(records)


def test_the_frame_takes_the_same_filters(campaign: Catalog) -> None:
    records = campaign.snapshots(instance="micro[*]", after_time=0.1, order_by="-timestamp")
    frame = campaign.snapshots_frame(instance="micro[*]", after_time=0.1, order_by="-timestamp")
    assert list(frame["id"]) == [r.id for r in records]
    assert len(campaign.snapshots_frame(limit=4)) == 4


# --------------------------------------------------------------------------- runs


def test_run_records_and_summaries_give_dates_span_counts_and_bytes(campaign: Catalog) -> None:
    for run in campaign.runs():
        own = campaign.snapshots(run=run.id)
        times = [s.timestamp for s in own if not math.isnan(s.timestamp)]
        assert run.first_timestamp == min(times)
        assert run.last_timestamp == max(times)
        assert run.size_bytes == sum(s.size_bytes or 0 for s in own)
        assert run.num_workflow_snapshots == len(campaign.workflow_snapshots(run.id))
        summary = campaign.run_summary(run.name)
        assert summary.run == run
        assert sum(summary.snapshots_per_instance.values()) == len(own)
        assert summary.snapshots_per_status == {"present": len(own)}
        assert (
            list(summary.snapshots_per_instance)
            == sorted(
                summary.snapshots_per_instance,
                key=lambda name: [s.instance for s in own].index(name),
            )
            or len(summary.snapshots_per_instance) > 1
        )


def test_latest_workflow_snapshot_is_the_newest_resumable(campaign: Catalog) -> None:
    def reference(run: str | None, before: float | None) -> int | None:
        candidates = [
            w
            for w in campaign.workflow_snapshots(run)
            if w.status != WorkflowStatus.UNRESUMABLE
            and (before is None or w.timestamp is None or w.timestamp <= before)
        ]
        if not candidates:
            return None
        best = max(
            candidates,
            key=lambda w: (
                w.timestamp if w.timestamp is not None else -math.inf,
                w.run_id,
                w.sequence,
            ),
        )
        return best.id

    for run in [None, *(r.name for r in campaign.runs())]:
        for before in (None, 0.0, 0.35, 0.5, 10.0):
            found = campaign.latest_workflow_snapshot(run, before_time=before)
            assert (found.id if found else None) == reference(run, before), (run, before)


# -------------------------------------------------------------------------- views


def _view(catalog: Catalog, sql: str) -> list[dict[str, Any]]:
    with catalog.engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(text(sql))]


def test_views_give_absolute_paths_triggers_and_resume_files(campaign: Catalog) -> None:
    records = {r.id: r for r in campaign.snapshots()}
    rows = _view(campaign, "SELECT * FROM snapshot_overview")
    assert len(rows) == len(records)
    for row in rows:
        record = records[row["snapshot_id"]]
        assert row["absolute_path"] == str(record.path)
        assert row["triggers"] == "; ".join(record.triggers)
        assert row["sha256"] == record.sha256 and row["status"] == record.status
    workflows = {w.id: w for w in campaign.workflow_snapshots()}
    members = _view(campaign, "SELECT * FROM workflow_snapshot_overview")
    assert {m["workflow_snapshot_id"] for m in members} == set(workflows)
    for member in members:
        workflow = workflows[member["workflow_snapshot_id"]]
        assert member["source"] == workflow.source
        expected = str(workflow.resume_file) if workflow.resume_file else None
        assert member["resume_file_absolute"] == expected
        if member["snapshot_id"] is not None:
            assert member["absolute_path"] == str(records[member["snapshot_id"]].path)


def test_the_port_counts_view_keeps_one_row_per_slot(campaign: Catalog) -> None:
    expected = sorted(
        (r.id, port, slot, count)
        for r in campaign.snapshots()
        for port, counts in r.port_message_counts.items()
        for slot, count in enumerate(counts)
    )
    rows = _view(campaign, "SELECT snapshot_id, port, slot, count FROM port_counts")
    assert sorted((r["snapshot_id"], r["port"], r["slot"], r["count"]) for r in rows) == expected
    overview = _view(campaign, "SELECT * FROM port_count_overview")
    assert len(overview) == len(expected)


def test_views_read_with_plain_sqlite3_and_pandas(tmp_path: Path) -> None:
    from catalog import open_catalog

    (tmp_path / "campaign").mkdir()
    with open_catalog(tmp_path / "campaign" / "snapshot_catalog.sqlite", create=True) as cat:
        make_campaign(cat, tmp_path / "campaign")
        paths = {r.id: str(r.path) for r in cat.snapshots()}
    # Move the whole campaign: the views follow the catalog file.
    moved = tmp_path / "moved"
    (tmp_path / "campaign").rename(moved)
    with sqlite3.connect(moved / "snapshot_catalog.sqlite") as raw:
        frame = pd.read_sql(
            "SELECT snapshot_id, absolute_path, recorded_at FROM snapshot_overview",
            raw,
            parse_dates=["recorded_at"],
        )
    assert str(frame["recorded_at"].dtype).startswith("datetime64")
    assert {
        sid: path.replace(str(tmp_path / "campaign"), str(moved)) for sid, path in paths.items()
    } == dict(zip(frame["snapshot_id"], frame["absolute_path"], strict=True))


# -------------------------------------------------------------------------- plans


@pytest.fixture
def sqlite_statements(tmp_path: Path) -> Iterator[tuple[Catalog, list[tuple[str, Any]]]]:
    from catalog import open_catalog

    (tmp_path / "campaign").mkdir()
    cat = open_catalog(tmp_path / "campaign" / "snapshot_catalog.sqlite", create=True)
    make_campaign(cat, tmp_path / "campaign")
    seen: list[tuple[str, Any]] = []

    @event.listens_for(cat.engine, "before_cursor_execute")
    def _capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    yield cat, seen
    cat.close()


def _plans(cat: Catalog, statements: list[tuple[str, Any]]) -> list[str]:
    assert cat.root is not None
    plans = []
    with sqlite3.connect(cat.root / "snapshot_catalog.sqlite") as raw:
        for statement, params in statements:
            if statement.lstrip().upper().startswith("SELECT"):
                rows = raw.execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
                plans.append("\n".join(str(r[-1]) for r in rows))
    return plans


def test_resume_selection_and_run_lookups_use_indexes(
    sqlite_statements: tuple[Catalog, list[tuple[str, Any]]],
) -> None:
    cat, seen = sqlite_statements
    seen.clear()
    cat.latest_workflow_snapshot("mm_vector5", before_time=0.5)
    plans = _plans(cat, seen)
    assert any("ix_runs_name" in p for p in plans), plans
    newest = [p for p in plans if "workflow_snapshots" in p and "ix_workflow_snapshots_run" in p]
    assert newest, plans
    # Answered in index order: no sort of the run's workflow snapshots.
    assert all("TEMP B-TREE" not in p for p in newest), newest

    seen.clear()
    cat.latest_workflow_snapshot()
    assert any("ix_workflow_snapshots_timestamp" in p for p in _plans(cat, seen))

    seen.clear()
    cat.snapshots(run="mm_vector5", instance="micro[2]")
    plans = _plans(cat, seen)
    assert any("SEARCH snapshots USING" in p for p in plans), plans
    assert all("SCAN snapshots" not in p for p in plans), plans


def test_a_record_reads_back_equal_from_every_query(campaign: Catalog) -> None:
    record: SnapshotRecord = campaign.snapshots(run="mm_vector5")[3]
    assert campaign.snapshot_by_path(record.path) == record
    assert campaign.snapshots(run=record.run_id, instance=record.instance, limit=50).count(record)


# ---------------------------------------------------------------------------- CLI


def _cli(catalog: Catalog, *args: str) -> Any:
    import json

    from click.testing import CliRunner

    from catalog.cli import cli

    url = catalog.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, ["--catalog", url, *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_snapshots_command_takes_the_same_filters(campaign: Catalog) -> None:
    expected = campaign.snapshots(instance="micro", after_time=0.3, order_by="-timestamp", limit=7)
    printed = _cli(
        campaign,
        *("snapshots", "--instance", "micro", "--after-time", "0.3"),
        *("--order-by", "-timestamp", "--limit", "7", "--json"),
    )
    assert printed == [r.to_json() for r in expected]
    assert [p["id"] for p in printed] == [r.id for r in expected]
    trigger = expected[0].triggers[0]
    assert _cli(campaign, "snapshots", "--trigger", trigger, "--json") == [
        r.to_json() for r in campaign.snapshots(trigger=trigger)
    ]


@pytest.mark.parametrize(
    "arguments",
    [
        ["--limit", "-3"],
        ["--limit", "0"],
        ["--after-time", "2", "--before-time", "1"],
        ["--order-by", "colour"],
    ],
)
def test_the_snapshots_command_refuses_impossible_filters(
    campaign: Catalog, arguments: list[str]
) -> None:
    from click.testing import CliRunner

    from catalog.cli import cli

    url = campaign.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, ["--catalog", url, "snapshots", *arguments])
    assert result.exit_code == 2, result.output


def test_runs_json_has_the_span_counts_and_bytes(campaign: Catalog) -> None:
    printed = {run["name"]: run for run in _cli(campaign, "runs", "--json")}
    for run in campaign.runs():
        shown = printed[run.name]
        assert shown["id"] == run.id
        assert shown["first_timestamp"] == run.first_timestamp
        assert shown["last_timestamp"] == run.last_timestamp
        assert shown["size_bytes"] == run.size_bytes > 0
        assert shown["num_workflow_snapshots"] == run.num_workflow_snapshots
        assert shown["started_at"] == run.created_at.isoformat()


def test_records_read_in_bulk_are_whole_frozen_dataclasses(campaign: Catalog) -> None:
    import dataclasses

    for record in campaign.snapshots(run="mm_vector5"):
        fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
        built = SnapshotRecord(**fields)
        assert built == record
        assert vars(built) == vars(record)  # every field, nothing else
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.instance = "other"  # type: ignore[misc]
        assert isinstance(record.path, Path) and record.path == Path(str(record.path))
        assert record.path.is_absolute()
        assert record.recorded_at.tzinfo is not None
