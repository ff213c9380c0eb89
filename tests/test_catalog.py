"""The catalog on SQLite and PostgreSQL: recording, queries, exact floats, workflow snapshots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from ymmsl import Settings

from catalog import (
    Catalog,
    CatalogError,
    Message,
    NewSnapshot,
    NewWorkflowSnapshot,
    Snapshot,
    open_catalog,
)

OVERLAY: dict[str, Any] = {"macro.dt": 0.1, "grid": [[1.0, 2.0], [3.0, 4.0]], "flag": True}


def make_snapshot(
    timestamp: float | None = 0.5,
    counts: dict[str, list[int]] | None = None,
    final: bool = False,
    next_timestamp: float | None = None,
    wallclock: float = 1.25,
) -> Snapshot:
    message = None if timestamp is None else Message(timestamp, next_timestamp, {"u": 1})
    return Snapshot(
        triggers=["simulation_time >= 0.4", "at_end"],
        wallclock_time=wallclock,
        port_message_counts=counts if counts is not None else {"o_i": [3], "s": [2]},
        is_final_snapshot=final,
        message=message,
        settings_overlay=Settings(dict(OVERLAY)),
    )


def new(path: Path, snapshot: Snapshot | None = None, instance: str = "macro") -> NewSnapshot:
    return NewSnapshot(
        instance=instance,
        path=path,
        snapshot_filename=str(path),
        snapshot=snapshot or make_snapshot(),
        size_bytes=123,
        sha256="ab" * 32,
        sequence=1,
    )


def test_new_catalog_is_created_and_reopened(catalog_url: str, tmp_path: Path) -> None:
    with open_catalog(catalog_url, create=True) as first:
        run = first.ensure_run(tmp_path / "run1")
        first.record_snapshot(run.id, new(tmp_path / "a.pack"))
    with open_catalog(catalog_url, create=True) as again:
        assert [r.name for r in again.runs()] == ["run1"]
        assert len(again.snapshots()) == 1


def test_record_and_query_gives_every_field_back(catalog: Catalog, tmp_path: Path) -> None:
    run = catalog.ensure_run(tmp_path / "run1", model_name="macro_micro")
    counts = {"o_i": [1, 2, 3], "empty_vector": [], "s": [0], "muscle_settings_in": [0]}
    snapshot = make_snapshot(0.25, counts, final=True, next_timestamp=0.5)
    record = catalog.record_snapshot(run.id, new(tmp_path / "macro_1.pack", snapshot))

    assert record.run == "run1"
    assert record.instance == "macro"
    assert record.path == tmp_path / "macro_1.pack"
    assert record.triggers == ("simulation_time >= 0.4", "at_end")
    assert record.timestamp == 0.25
    assert record.next_timestamp == 0.5
    assert record.wallclock_time == 1.25
    assert list(record.port_message_counts.items()) == list(counts.items())
    assert record.is_final_snapshot is True
    assert record.is_implicit is False
    assert record.settings_overlay == OVERLAY
    assert record.submission_order == 1
    assert record.format_version == 1
    assert record.sha256 == "ab" * 32
    metadata = record.to_metadata()
    assert metadata.port_message_counts == counts
    assert metadata.snapshot_filename == str(tmp_path / "macro_1.pack")


@pytest.mark.parametrize(
    ("timestamp", "next_timestamp", "wallclock"),
    [
        (None, None, 0.0),  # implicit snapshot: timestamp NaN
        (-math.inf, None, 2.0),
        (math.inf, math.inf, 3.0),
        (0.1, math.nan, math.nan),
        (1e-300, -math.inf, 5e-324),
    ],
)
def test_non_finite_floats_come_back_exactly(
    catalog: Catalog,
    tmp_path: Path,
    timestamp: float | None,
    next_timestamp: float | None,
    wallclock: float,
) -> None:
    run = catalog.ensure_run(tmp_path)
    snapshot = make_snapshot(timestamp, next_timestamp=next_timestamp, wallclock=wallclock)
    catalog.record_snapshot(run.id, new(tmp_path / "x.pack", snapshot))
    record = catalog.snapshots()[0]

    def same(a: float | None, b: float | None) -> bool:
        if a is None or b is None:
            return a is b
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )

    expected_ts = math.nan if timestamp is None else timestamp
    expected_next = None if timestamp is None else next_timestamp
    assert same(record.timestamp, expected_ts)
    assert same(record.next_timestamp, expected_next)
    assert same(record.wallclock_time, wallclock)
    assert record.is_implicit is (timestamp is None)
    as_json = record.to_json()
    if timestamp is None:
        assert as_json["timestamp"] == "NaN"


def test_recording_a_path_twice_is_refused_and_keeps_the_first(
    catalog: Catalog, tmp_path: Path
) -> None:
    run = catalog.ensure_run(tmp_path)
    catalog.record_snapshot(run.id, new(tmp_path / "a.pack", make_snapshot(0.1)))
    with pytest.raises(CatalogError, match="already recorded"):
        catalog.record_snapshot(run.id, new(tmp_path / "a.pack", make_snapshot(0.9)))
    (only,) = catalog.snapshots()
    assert only.timestamp == 0.1


def test_bulk_recording_skips_known_paths_and_keeps_order(catalog: Catalog, tmp_path: Path) -> None:
    run = catalog.ensure_run(tmp_path)
    items = [new(tmp_path / f"m_{i}.pack", make_snapshot(i / 10)) for i in range(7)]
    seen: list[int] = []
    assert catalog.record_snapshots(run.id, items, batch_size=3, progress=seen.append) == 7
    assert seen == [3, 3, 1]
    assert catalog.record_snapshots(run.id, items + items[:2]) == 0
    records = catalog.snapshots(run=run.id)
    assert [r.submission_order for r in records] == list(range(1, 8))
    assert [r.timestamp for r in records] == [i / 10 for i in range(7)]


def test_queries_filter_by_run_instance_and_final(catalog: Catalog, tmp_path: Path) -> None:
    run1 = catalog.ensure_run(tmp_path / "run1")
    run2 = catalog.ensure_run(tmp_path / "run2")
    catalog.record_snapshot(run1.id, new(tmp_path / "1.pack", make_snapshot(final=True)))
    catalog.record_snapshot(run1.id, new(tmp_path / "2.pack", instance="micro[1]"))
    catalog.record_snapshot(run2.id, new(tmp_path / "3.pack", instance="micro[1]"))
    assert len(catalog.snapshots(run="run1")) == 2
    assert len(catalog.snapshots(run=run2.id)) == 1
    assert len(catalog.snapshots(instance="micro[1]")) == 2
    assert [r.path.name for r in catalog.snapshots(final=True)] == ["1.pack"]
    assert [r.path.name for r in catalog.snapshots(run="run1", final=False)] == ["2.pack"]
    assert catalog.snapshot_by_path(tmp_path / "3.pack") is not None
    assert catalog.snapshot_by_path(tmp_path / "nope.pack") is None
    assert [(r.name, r.num_snapshots) for r in catalog.runs()] == [("run1", 2), ("run2", 1)]
    with pytest.raises(CatalogError, match="No run 'run3'"):
        catalog.snapshots(run="run3")


def test_ensure_run_is_idempotent(catalog: Catalog, tmp_path: Path) -> None:
    first = catalog.ensure_run(tmp_path / "r")
    second = catalog.ensure_run(tmp_path / "r", model_name="m", configuration="text")
    assert first.id == second.id
    assert second.model_name == "m"
    assert catalog.run_configuration(first.id) == "text"


def test_ambiguous_run_name_asks_for_the_id(catalog: Catalog, tmp_path: Path) -> None:
    catalog.ensure_run(tmp_path / "a" / "run")
    catalog.ensure_run(tmp_path / "b" / "run")
    with pytest.raises(CatalogError, match="ambiguous"):
        catalog.run("run")


def test_workflow_snapshots_round_trip(catalog: Catalog, tmp_path: Path) -> None:
    run = catalog.ensure_run(tmp_path)
    macro1 = catalog.record_snapshot(run.id, new(tmp_path / "macro_1.pack", make_snapshot(0.2)))
    micro1 = catalog.record_snapshot(
        run.id, new(tmp_path / "micro_1.pack", make_snapshot(None), instance="micro")
    )
    macro2 = catalog.record_snapshot(run.id, new(tmp_path / "macro_2.pack", make_snapshot(0.6)))
    ids = catalog.record_workflow_snapshots(
        run.id,
        [
            NewWorkflowSnapshot({"macro": macro1.id, "micro": None}, "first", macro1.id),
            NewWorkflowSnapshot(
                {"micro": micro1.id, "macro": macro2.id}, "second", macro2.id, tmp_path / "s.ymmsl"
            ),
        ],
    )
    first, second = catalog.workflow_snapshots(run=run.id)
    assert [first.id, second.id] == ids
    assert first.members == {"macro": str(tmp_path / "macro_1.pack"), "micro": None}
    assert first.resume == {"macro": str(tmp_path / "macro_1.pack")}
    assert first.completed_by == str(tmp_path / "macro_1.pack")
    assert list(second.members) == ["macro", "micro"]  # MUSCLE3's instance order
    assert second.timestamp == 0.6  # NaN of the implicit micro snapshot is ignored
    assert second.resume_file == tmp_path / "s.ymmsl"
    assert catalog.latest_workflow_snapshot() == second
    assert catalog.latest_workflow_snapshot(before_time=0.5) == first
    assert catalog.latest_workflow_snapshot(before_time=0.1) is None
    assert catalog.workflow_snapshot(ids[0]) == first
    assert catalog.delete_workflow_snapshots(run.id) == 2
    assert catalog.workflow_snapshots() == []


def test_paths_below_a_sqlite_catalog_are_stored_relative(tmp_path: Path) -> None:
    campaign = tmp_path / "campaign"
    campaign.mkdir()
    with open_catalog(campaign / "snapshot_catalog.sqlite", create=True) as cat:
        run = cat.ensure_run(campaign / "run1")
        cat.record_snapshot(run.id, new(campaign / "run1" / "x.pack"))
        assert cat.stored_path(campaign / "run1" / "x.pack") == "run1/x.pack"
        assert cat.stored_path(tmp_path / "elsewhere.pack") == str(tmp_path / "elsewhere.pack")
    moved = tmp_path / "moved"
    campaign.rename(moved)
    with open_catalog(moved / "snapshot_catalog.sqlite", create=True) as cat:
        (record,) = cat.snapshots()
        assert record.path == moved / "run1" / "x.pack"
        assert cat.runs()[0].run_dir == moved / "run1"


def test_dataframe_has_one_row_per_snapshot(catalog: Catalog, tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    run = catalog.ensure_run(tmp_path)
    catalog.record_snapshots(run.id, [new(tmp_path / f"{i}.pack") for i in range(3)])
    frame = catalog.snapshots().to_dataframe()
    assert len(frame) == 3
    assert {"instance", "timestamp", "port_message_counts", "path"} <= set(frame.columns)


def test_missing_directory_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        open_catalog(tmp_path / "no" / "such" / "cat.sqlite", create=True)
