"""SnapshotRegistry end to end: catalog rows, resume files and MUSCLE3's descriptions."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import ymmsl

from catalog.catalog import Catalog, open_catalog
from catalog.registry import SnapshotRegistry
from catalog.snapshot import SnapshotMetadata
from tests.registry_streams import (
    FIXED_DATE,
    Stream,
    all_streams,
    replay_registry,
    run_dir_of,
    vector_model,
)

STREAMS = {s.name: s for s in all_streams()}


def _expected_by_submission(stream: Stream) -> dict[int, list[dict[str, object]]]:
    found: dict[int, list[dict[str, object]]] = {}
    for workflow in stream.expected["workflow_snapshots"]:
        found.setdefault(workflow["after_submission"], []).append(workflow)
    return found


@pytest.mark.parametrize(
    "name", [name for name, s in STREAMS.items() if not s.expected.get("error")]
)
def test_records_and_writes_what_muscle3_writes(
    catalog: Catalog, tmp_path: Path, name: str
) -> None:
    stream = STREAMS[name]
    registry = replay_registry(stream, catalog, tmp_path)
    assert registry.stats.errors == []
    records = catalog.workflow_snapshots(run=registry.run.id)
    expected = _expected_by_submission(stream)
    assert len(records) == len(expected)
    files = sorted((tmp_path / "snapshots").glob("snapshot_*.ymmsl"))
    assert len(files) == len(records)
    for record, (index, candidates) in zip(records, sorted(expected.items()), strict=True):
        assert record.completed_by == stream.submissions[index][1]["snapshot_filename"]
        match = [c for c in candidates if c["selected"] == record.members]
        assert len(match) == 1, f"submission {index}: not one of MUSCLE3's sets"
        assert record.resume == match[0]["resume"]
        if "description" not in match[0]:  # large outputs list descriptions of some only
            continue
        assert record.description == match[0]["description"]
        assert record.source == "registry"
        assert record.resume_file is not None
        written: Any = ymmsl.load(record.resume_file.read_text())
        assert {str(k): str(v) for k, v in written.resume.items()} == match[0]["resume"]
        # ymmsl reads "|+" blocks back with the blank line before "resume:"
        assert written.description.rstrip("\n") == match[0]["description"].rstrip("\n")


def test_submissions_without_rows_are_recorded_from_their_files(tmp_path: Path) -> None:
    """Real files submitted without rows end up in the catalog, read from disk."""
    stream = STREAMS["v0.10/mm_vector5"]
    source = run_dir_of(stream)
    assert source is not None
    run_dir = tmp_path / "mm_vector5"
    shutil.copytree(source / "instances", run_dir / "instances")
    with open_catalog(tmp_path / "cat.sqlite", create=True) as catalog:
        registry = replay_registry(stream, catalog, run_dir)
        assert registry.stats.recorded_for_manager == len(stream.submissions)
        rows = catalog.snapshots(run=registry.run.id)
        assert len(rows) == len(stream.submissions)
        assert all(r.status == "present" and r.sha256 for r in rows)
        assert [r.snapshot_filename for r in rows] == [
            m["snapshot_filename"] for _, m in stream.submissions
        ]


def test_metadata_only_submissions_are_marked_missing(catalog: Catalog, tmp_path: Path) -> None:
    stream = STREAMS["mm_scalar_at_rules"]
    registry = replay_registry(stream, catalog, tmp_path)
    rows = catalog.snapshots(run=registry.run.id)
    assert {r.status for r in rows} == {"missing"}
    assert [r.port_message_counts for r in rows] == [
        m["port_message_counts"] for _, m in stream.submissions
    ]


def test_existing_rows_are_used_not_duplicated(tmp_path: Path) -> None:
    stream = STREAMS["mm_scalar_at_rules"]
    with open_catalog(tmp_path / "cat.sqlite", create=True) as catalog:
        first = replay_registry(stream, catalog, tmp_path)
        ids_before = [r.id for r in catalog.snapshots(run=first.run.id)]
        second = replay_registry(stream, catalog, tmp_path)
        assert second.stats.recorded_for_manager == 0
        assert [r.id for r in catalog.snapshots(run=first.run.id)] == ids_before


def test_more_than_a_hundred_resume_files_in_one_second(tmp_path: Path) -> None:
    """MUSCLE3 gives up after _99 and its registry dies; we keep numbering."""
    stream = STREAMS["mm_vector5_wall"]  # 108 submissions complete a workflow snapshot
    with open_catalog(tmp_path / "cat.sqlite", create=True) as catalog:
        registry = replay_registry(stream, catalog, tmp_path)
    names = sorted(p.name for p in (tmp_path / "snapshots").glob("snapshot_*.ymmsl"))
    assert registry.stats.workflow_snapshots == len(names) > 100
    assert "snapshot_20000101_000000_100.ymmsl" in names


def test_single_instance_model_is_resumable(catalog: Catalog, tmp_path: Path) -> None:
    stream = STREAMS["single_component"]
    registry = replay_registry(stream, catalog, tmp_path)
    records = catalog.workflow_snapshots(run=registry.run.id)
    assert len(records) == len(stream.submissions)
    assert records[-1].resume == {"solo": stream.submissions[-1][1]["snapshot_filename"]}


def test_a_bad_submission_is_reported_and_the_rest_processed(tmp_path: Path) -> None:
    stream = STREAMS["mm_scalar_at_rules"]
    with open_catalog(tmp_path / "cat.sqlite", create=True) as catalog:
        registry = SnapshotRegistry(
            stream.configuration(), tmp_path / "snapshots", catalog, clock=lambda: FIXED_DATE
        )
        registry.register_snapshot("nosuchcomponent", stream.submissions[0][1] | {
            "snapshot_filename": "instances/x/snapshots/x_1.pack"
        })  # fmt: skip
        for instance, metadata in stream.submissions:
            registry.register_snapshot(instance, metadata)
        registry.shutdown()
        assert len(registry.stats.errors) == 1
        assert "nosuchcomponent" in registry.stats.errors[0]
        assert registry.stats.workflow_snapshots == len(_expected_by_submission(stream))


def test_accepts_our_metadata_objects_and_works_synchronously(tmp_path: Path) -> None:
    stream = STREAMS["interact_lockstep"]
    with open_catalog(tmp_path / "cat.sqlite", create=True) as catalog:
        registry = SnapshotRegistry(
            stream.configuration(), tmp_path / "snapshots", catalog, threaded=False
        )
        for instance, metadata in stream.submissions:
            registry.register_snapshot(ymmsl.v0_2.Reference(instance), SnapshotMetadata(**metadata))
            # processed already: no shutdown needed to see the result
        assert registry.stats.submissions == len(stream.submissions)
        assert len(catalog.workflow_snapshots()) == len(_expected_by_submission(stream))
        registry.shutdown()


def test_default_catalog_is_in_the_run_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MUSCLE_SNAPSHOT_CATALOG", raising=False)
    stream = STREAMS["interact_lockstep"]
    registry = SnapshotRegistry(stream.configuration(), tmp_path / "snapshots")
    registry.shutdown()
    assert (tmp_path / "snapshot_catalog.sqlite").is_file()


def test_thirty_micros_with_interchangeable_snapshots(catalog: Catalog, tmp_path: Path) -> None:
    """The mm_vector30_large shape through the whole registry: one workflow snapshot, no hang.

    MUSCLE3 needs over 2**30 search steps for the macro's submission here.
    """
    n = 30
    text = vector_model(n)
    registry = SnapshotRegistry(ymmsl.load(text), tmp_path / "snapshots", catalog)
    for i in range(n):
        for k in (1, 2):
            registry.register_snapshot(
                f"micro[{i}]",
                _metadata(f"instances/micro[{i}]/snapshots/micro-{i}_{k}.pack", 0.1 * k,
                          {"f_i": [1], "o_f": [0]}),
            )  # fmt: skip
    registry.register_snapshot(
        "macro", _metadata("instances/macro/snapshots/macro_1.pack", 0.1, {"o_i": [1] * n,
                                                                           "s": [1] * n})
    )  # fmt: skip
    registry.shutdown()
    (workflow,) = catalog.workflow_snapshots(run=registry.run.id)
    assert workflow.resume == {
        "macro": "instances/macro/snapshots/macro_1.pack",
        **{f"micro[{i}]": f"instances/micro[{i}]/snapshots/micro-{i}_2.pack" for i in range(n)},
    }
    assert len(list((tmp_path / "snapshots").glob("snapshot_*.ymmsl"))) == 1


def _metadata(filename: str, t: float, counts: dict[str, list[int]]) -> SnapshotMetadata:
    return SnapshotMetadata(["simulation_time >= 0.1"], t, t, None, counts, True, filename)


def test_an_unexpected_error_never_ends_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MUSCLE3's registry thread dies on an exception and drops all that follows; ours goes on."""
    import catalog.registry as registry_module
    from catalog.resume_file import describe as real_describe

    stream = STREAMS["mm_scalar_at_rules"]
    calls = []

    def failing_once(*args: Any, **kwargs: Any) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("boom")
        return real_describe(*args, **kwargs)

    monkeypatch.setattr(registry_module, "describe", failing_once)
    with open_catalog(tmp_path / "cat.sqlite", create=True) as catalog:
        registry = SnapshotRegistry(stream.configuration(), tmp_path / "snapshots", catalog)
        for instance, metadata in stream.submissions:
            registry.register_snapshot(instance, metadata)
            registry.join(0.05)  # let the worker take them one by one
        registry.shutdown()
        assert any("boom" in e for e in registry.stats.errors)
        assert 0 < len(catalog.workflow_snapshots()) < len(_expected_by_submission(stream))
        assert registry.stats.submissions == len(stream.submissions)


def test_a_corrupt_submitted_file_is_recorded_from_metadata_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stream = STREAMS["mm_scalar_at_rules"]
    first = tmp_path / stream.submissions[0][1]["snapshot_filename"]
    first.parent.mkdir(parents=True)
    first.write_bytes(b"1\x81")  # a version byte and half a msgpack map
    with open_catalog(tmp_path / "cat.sqlite", create=True) as catalog:
        registry = replay_registry(stream, catalog, tmp_path)
        row = catalog.snapshot_by_path(first)
        assert row is not None and row.status == "missing"
        assert row.port_message_counts == stream.submissions[0][1]["port_message_counts"]
        assert registry.stats.workflow_snapshots == len(_expected_by_submission(stream))
    assert any(str(first) in r.getMessage() and "metadata only" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_metadata_gives_back_the_snapshot_it_describes() -> None:
    implicit = SnapshotMetadata(["at_end"], 2.0, math.nan, None, {"f_i": [1]}, True, "m.pack")
    assert implicit.to_snapshot().message is None
    timed = SnapshotMetadata(["x"], 2.0, 0.5, 0.7, {"f_i": [1, 2]}, False, "m.pack")
    snapshot = timed.to_snapshot()
    assert snapshot.message is not None
    assert (snapshot.message.timestamp, snapshot.message.next_timestamp) == (0.5, 0.7)
    assert SnapshotMetadata.from_snapshot(snapshot, "m.pack") == timed
