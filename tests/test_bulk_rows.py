"""The bulk recording path's shortcuts store exactly what the general path stores.

Bulk recording (import, the registry) converts some values once per batch or
takes a fast path for the common case; each shortcut is held here to the
value the general path gives, on real SQLite and PostgreSQL catalogs.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, text

from catalog import Catalog, NewSnapshot, NewWorkflowSnapshot, open_catalog
from catalog.db.bulk import timestamps_by_id
from catalog.db.rows import counts_json
from catalog.db.schema import SnapshotRow, WorkflowSnapshotRow
from catalog.db.times import utc_time
from catalog.enums import SnapshotStatus, Source
from catalog.records import MetadataSnapshot
from catalog.snapshot import SnapshotMetadata
from catalog.submission import Submission, new_snapshot, snapshot_to_record


def _metadata(timestamp: float, filename: str) -> SnapshotMetadata:
    return SnapshotMetadata(
        triggers=["at_end"],
        wallclock_time=2.5,
        timestamp=timestamp,
        next_timestamp=None if math.isnan(timestamp) else timestamp + 0.1,
        port_message_counts={"o_i": [3, 3, 2], "s": [4], "muscle_settings_in": [0]},
        is_final_snapshot=True,
        snapshot_filename=filename,
    )


def _new(path: Path, timestamp: float) -> NewSnapshot:
    snapshot = _metadata(timestamp, path.name).to_snapshot()
    return NewSnapshot(
        "macro", path, path.name, snapshot, None, None, None, status=SnapshotStatus.MISSING
    )


@pytest.mark.parametrize(
    "counts",
    [[5], [0], [-1], [2**63 - 1], [], [3, 3, 2], [True], [np.int64(7)], [np.int32(-1)], [7, 8]],
)
def test_counts_text_is_the_general_one(counts: list[int]) -> None:
    general = "[" + ",".join(str(int(c)) for c in counts) + "]"
    assert counts_json(counts) == general


@pytest.mark.parametrize("counts", [[-2], [2**63], [np.int64(-5)], [1, 2**63]])
def test_counts_out_of_range_are_refused_on_every_path(counts: list[int]) -> None:
    with pytest.raises(ValueError, match="outside the range"):
        counts_json(counts)


def test_a_shared_snapshot_is_the_copied_one() -> None:
    for timestamp in (0.5, math.nan):
        metadata = _metadata(timestamp, "macro_1.pack")
        shared, copied = metadata.to_snapshot(copy=False), metadata.to_snapshot()
        assert shared.triggers == copied.triggers
        assert shared.port_message_counts == copied.port_message_counts
        assert (shared.wallclock_time, shared.is_final_snapshot, shared.message) == (
            copied.wallclock_time,
            copied.is_final_snapshot,
            copied.message,
        )
        assert shared.settings_overlay == copied.settings_overlay
        assert shared.format_version == copied.format_version
        assert copied.port_message_counts["o_i"] is not metadata.port_message_counts["o_i"]


def test_bulk_recorded_at_is_the_text_sqlite3_makes_of_a_datetime(tmp_path: Path) -> None:
    """One conversion per batch stores what sqlite3's adapter stored for each row before."""
    db_file = tmp_path / "catalog.sqlite"
    with open_catalog(db_file, create=True) as catalog:
        run = catalog.ensure_run(tmp_path)
        before = dt.datetime.now(dt.UTC)
        catalog.record_snapshot_batch(
            run.id, [_new(tmp_path / f"m_{i}.pack", 0.1) for i in range(3)]
        )
        after = dt.datetime.now(dt.UTC)
        records = catalog.snapshots(run=run.id)
    with sqlite3.connect(db_file) as raw:
        texts = [row[0] for row in raw.execute("SELECT recorded_at FROM snapshots")]
        assert len(set(texts)) == 1  # one time of recording per transaction
        stored = utc_time(texts[0])
        # what sqlite3 itself stores for that datetime as a parameter (its adapter)
        assert raw.execute("SELECT ?", (stored,)).fetchone()[0] == texts[0]
    assert texts[0].endswith("+00:00")
    assert before <= stored <= after
    assert all(r.recorded_at == utc_time(texts[0]) for r in records)


def test_member_timestamps_are_read_as_the_orm_reads_them(catalog: Catalog, tmp_path: Path) -> None:
    run = catalog.ensure_run(tmp_path)
    stamps = [0.25, math.nan, 1e300, 3.0]
    added = catalog.record_snapshot_batch(
        run.id, [_new(tmp_path / f"m_{i}.pack", t) for i, t in enumerate(stamps)]
    )
    ids = sorted(added.values())
    with catalog.read_session() as session:
        orm = {
            sid: ts for sid, ts in session.execute(select(SnapshotRow.id, SnapshotRow.timestamp))
        }
        assert timestamps_by_id(session, [*ids, 10**9]) == orm
    members: dict[str, int | None] = {f"i{n}": sid for n, sid in enumerate(ids)}
    (wid,) = catalog.record_workflow_snapshots(
        run.id, [NewWorkflowSnapshot(members, "all", ids[0])]
    )
    assert catalog.workflow_snapshot(wid).timestamp == 1e300  # NaN (NULL) left out, max taken


def _rows(catalog: Catalog, table: str, order_by: str) -> list[tuple[object, ...]]:
    with catalog.read_session() as session:
        return [
            tuple(r) for r in session.execute(text(f"SELECT * FROM {table} ORDER BY {order_by}"))
        ]


METADATA_CASES = [
    (0.5, 0.6, 1.25, False, ["simulation_time >= 0.4", "at_end"], {"o_i": [3, 3, 2], "s": [4]}),
    (math.nan, None, 0.0, True, [], {}),  # an implicit snapshot: no message
    (math.inf, None, math.nan, False, ["a"], {"x": [], "y": [-1]}),
    (-math.inf, math.nan, 2.0, True, ["t"], {"muscle_settings_in": [0], "f_i": [2**63 - 1]}),
    (1e-300, 1e300, -0.0, False, ["x", "y", "z"], {"p": [0, 1, 2, 3, 4]}),
]


def test_a_metadata_only_record_is_stored_as_new_snapshots_missing_record(
    catalog: Catalog, tmp_path: Path
) -> None:
    """The registry's shortcut stores what new_snapshot's record of a missing file stores."""
    general_run = catalog.ensure_run(tmp_path / "general")
    short_run = catalog.ensure_run(tmp_path / "short")
    general: list[NewSnapshot] = []
    short: list[NewSnapshot | MetadataSnapshot] = []
    for i, (ts, nxt, wall, final, triggers, counts) in enumerate(METADATA_CASES):
        metadata = SnapshotMetadata(triggers, wall, ts, nxt, counts, final, f"macro_{i + 1}.pack")
        submission = Submission("macro", metadata)
        for run_dir, into in ((tmp_path / "general", general), (tmp_path / "short", short)):
            path = run_dir / metadata.snapshot_filename
            if into is general:
                general.append(new_snapshot(submission, path))
            else:
                record = snapshot_to_record(submission, str(path))
                assert isinstance(record, MetadataSnapshot)
                short.append(record)
    catalog.record_snapshot_batch(general_run.id, general)
    catalog.record_snapshot_batch(short_run.id, short)
    columns = "run_id, submission_order"
    snapshots = _rows(catalog, "snapshots", columns)
    width = len(snapshots[0])
    # id, run_id, path and recorded_at differ by construction; everything else is equal
    with catalog.read_session() as session:
        names = list(session.execute(text("SELECT * FROM snapshots")).keys())
    kept = [
        k for k, name in enumerate(names) if name not in {"id", "run_id", "path", "recorded_at"}
    ]
    by_run: dict[object, list[tuple[object, ...]]] = {}
    for row in snapshots:
        assert len(row) == width
        by_run.setdefault(row[names.index("run_id")], []).append(tuple(row[k] for k in kept))
    assert by_run[general_run.id] == by_run[short_run.id]
    assert len(by_run[general_run.id]) == len(METADATA_CASES)
    ids = {
        row[0]: (row[names.index("run_id")], row[names.index("submission_order")])
        for row in snapshots
    }
    for table in ("snapshot_triggers", "snapshot_ports", "snapshot_settings"):
        children: dict[object, list[tuple[object, ...]]] = {}
        for row in _rows(catalog, table, "snapshot_id, position"):
            run_id, order = ids[row[0]]
            children.setdefault(run_id, []).append((order, *row[1:]))
        assert children.get(general_run.id) == children.get(short_run.id), table
    general_records = catalog.snapshots(run=general_run.id)
    short_records = catalog.snapshots(run=short_run.id)
    for a, b in zip(general_records, short_records, strict=True):
        assert repr(a.to_metadata()) == repr(b.to_metadata())  # repr: NaN equals NaN


def test_workflow_rows_are_stored_as_the_orm_stores_them(catalog: Catalog, tmp_path: Path) -> None:
    """Bulk workflow rows hold what an ORM-inserted row holds: defaults, enums, time format."""
    run = catalog.ensure_run(tmp_path)
    added = catalog.record_snapshot_batch(run.id, [_new(tmp_path / "m_1.pack", 0.5)])
    (sid,) = added.values()
    members: dict[str, int | None] = {"macro": sid, "micro": None}
    (bulk_id,) = catalog.record_workflow_snapshots(
        run.id, [NewWorkflowSnapshot(members, "described", sid, tmp_path / "snapshots" / "s.ymmsl")]
    )
    with catalog.write_session() as session:
        orm_row = WorkflowSnapshotRow(
            run_id=run.id,
            sequence=2,
            completed_by_snapshot_id=sid,
            timestamp=0.5,
            description="described",
            resume_file="snapshots/s.ymmsl" if catalog.root is not None else None,
            source=Source.REGISTRY,
            members_key="x" * 64,
        )
        session.add(orm_row)
        session.flush()
        orm_id = orm_row.id
    columns = (
        "id, run_id, sequence, completed_by_snapshot_id, timestamp, description, source, status"
    )
    with catalog.read_session() as session:
        rows = {
            row[0]: row[1:]
            for row in session.execute(text(f"SELECT {columns} FROM workflow_snapshots"))
        }
        times: dict[int, object] = {
            workflow_id: created
            for workflow_id, created in session.execute(
                text("SELECT id, created_at FROM workflow_snapshots")
            )
        }
    bulk, orm = rows[bulk_id], rows[orm_id]
    assert bulk[0] == orm[0] and bulk[2:] == orm[2:]  # all but the sequence
    assert bulk[1] == 1 and orm[1] == 2
    assert type(times[bulk_id]) is type(times[orm_id])
    bulk_time, orm_time = times[bulk_id], times[orm_id]
    if isinstance(bulk_time, str) and isinstance(orm_time, str):  # SQLite: the same layout
        assert re.sub("[0-9]", "0", bulk_time) == re.sub("[0-9]", "0", orm_time)
    record = catalog.workflow_snapshot(bulk_id)
    assert record.members == {"macro": "m_1.pack", "micro": None}  # as submitted
    assert record.timestamp == 0.5
    assert record.resume_file == tmp_path / "snapshots" / "s.ymmsl"
