"""The instance side's save (``Catalog.record_snapshot_metadata``): one round trip on PostgreSQL.

It must store a snapshot exactly as ``Catalog.record_snapshot`` does, refuse
a path already recorded with nothing written, hand out distinct submission
orders to concurrent writers, and give back the metadata of the row it wrote.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from ymmsl import Settings

from catalog import CatalogError, Message, SnapshotMetadata, open_catalog
from catalog.catalog import Catalog
from catalog.db.pg_recorder import PgSnapshotRecorder
from catalog.records import NewSnapshot, SnapshotRecord
from catalog.snapshot import FORMAT_V2, Snapshot

CHILD_TABLES = ("snapshot_triggers", "snapshot_ports", "snapshot_settings")


def _snapshots(run_dir: Path) -> list[NewSnapshot]:
    """Saves of every kind the rows distinguish, with paths below ``run_dir``."""
    many_ports = {f"port_{p}": [p * 10 + s - 3 for s in range(p * 7)] for p in range(6)}
    many_ports["empty"] = []
    settings = Settings({"alpha": 1.5, "n": 3, "name": "x", "grid": [[1.0, 2.0], [3.0, 4.0]]})
    snapshots = [
        # Implicit: NaN timestamp, no next timestamp, no settings.
        ("macro", Snapshot(["at_start"], 0.25, {"o_i": [0], "s": [0]}, False, None)),
        # No triggers and no ports at all: the child arrays are empty.
        ("macro", Snapshot([], 1.5, {}, False, Message(1.0, 2.0))),
        # Final, with settings, many ports and slots, some counts negative.
        ("micro[3]", Snapshot(["at_end", "wall"], 7.0, many_ports, True, Message(-1.0), settings)),
        # Format 2, NaN wallclock time, infinite next timestamp.
        (
            "micro[12]",
            Snapshot(
                ["t"],
                math.nan,
                {"f_i": [4]},
                False,
                Message(3.0, math.inf),
                Settings({"x": 1}),
                FORMAT_V2,
                {"port_message_counts": {"f_i": [4]}},
            ),
        ),
    ]
    return [
        NewSnapshot(
            instance=instance,
            path=run_dir / "instances" / instance / "snapshots" / f"{instance}_{i}.pack",
            snapshot_filename=f"instances/{instance}/snapshots/{instance}_{i}.pack",
            snapshot=snapshot,
            size_bytes=100 + i,
            sha256=f"{i:064x}",
            sequence=i,
        )
        for i, (instance, snapshot) in enumerate(snapshots, start=1)
    ]


def _nan_equal(value: Any) -> Any:
    """A value in which NaN compares equal to NaN."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: _nan_equal(v) for k, v in value.items()}
    return value


def _metadata(metadata: SnapshotMetadata) -> dict[str, Any]:
    return _nan_equal(dataclasses.asdict(metadata))  # type: ignore[no-any-return]


def _record_as_written(record: SnapshotRecord, run_dir: Path) -> dict[str, Any]:
    """A record without what differs between two runs recording the same snapshots."""
    fields = _nan_equal(dataclasses.asdict(record))
    for name in ("id", "run", "run_id", "recorded_at"):
        del fields[name]
    fields["path"] = record.path.relative_to(run_dir)
    return fields  # type: ignore[no-any-return]


def _rows(catalog: Catalog, run_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """A run's rows in the snapshot tables as stored, ids replaced, with each value's type."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with catalog.engine.connect() as connection:
        result = connection.execute(
            text("SELECT * FROM snapshots WHERE run_id = :run ORDER BY submission_order"),
            {"run": run_id},
        )
        found["snapshots"] = [
            tuple(
                (column, type(value).__name__, value.split("/instances/", 1)[1])
                if column == "path"
                else (column, type(value).__name__, value)
                for column, value in row._mapping.items()
                if column not in ("id", "run_id", "recorded_at")
            )
            for row in result
        ]
        for table in CHILD_TABLES:
            result = connection.execute(
                text(
                    f"SELECT s.submission_order, c.* FROM {table} c JOIN snapshots s "
                    "ON s.id = c.snapshot_id WHERE s.run_id = :run "
                    "ORDER BY s.submission_order, c.position"
                ),
                {"run": run_id},
            )
            found[table] = [
                tuple(
                    (column, type(value).__name__, value)
                    for column, value in row._mapping.items()
                    if column != "snapshot_id"
                )
                for row in result
            ]
    return found


def test_the_instance_save_stores_what_record_snapshot_stores(
    catalog: Catalog, tmp_path: Path
) -> None:
    orm_dir, fast_dir = tmp_path / "orm", tmp_path / "fast"
    orm_run = catalog.ensure_run(orm_dir)
    fast_run = catalog.ensure_run(fast_dir)
    orm_records = [catalog.record_snapshot(orm_run.id, new) for new in _snapshots(orm_dir)]
    recorded = [catalog.record_snapshot_metadata(fast_run.id, new) for new in _snapshots(fast_dir)]

    fast_records = catalog.snapshots(run=fast_run.id)
    assert [r.id for r in fast_records] == [r.snapshot_id for r in recorded]
    assert [r.submission_order for r in fast_records] == [1, 2, 3, 4]
    assert [r.submission_order for r in recorded] == [1, 2, 3, 4]
    # The metadata given back is what the row read back says.
    assert [_metadata(r.metadata) for r in recorded] == [
        _metadata(r.to_metadata()) for r in fast_records
    ]
    assert [_record_as_written(r, fast_dir) for r in fast_records] == [
        _record_as_written(r, orm_dir) for r in orm_records
    ]
    assert fast_records[0].recorded_at.tzinfo is not None
    # Every column of every row, with its stored type.
    assert _rows(catalog, fast_run.id) == _rows(catalog, orm_run.id)


def test_a_path_recorded_twice_is_refused_with_nothing_written(
    catalog: Catalog, tmp_path: Path
) -> None:
    run = catalog.ensure_run(tmp_path / "run")
    first, second, third, _fourth = _snapshots(tmp_path / "run")
    kept = catalog.record_snapshot_metadata(run.id, first)
    before = _rows(catalog, run.id)
    again = dataclasses.replace(second, path=first.path)  # other content, same file
    with pytest.raises(CatalogError) as refused:
        catalog.record_snapshot_metadata(run.id, again)
    assert str(refused.value) == (
        f"{first.path} is already recorded in {catalog.location} (snapshot {kept.snapshot_id}); "
        "a snapshot file is never recorded twice."
    )
    assert _rows(catalog, run.id) == before
    with pytest.raises(CatalogError, match="No run with id 999 in the catalog"):
        catalog.record_snapshot_metadata(999, second)
    assert catalog.snapshots() == catalog.snapshots(run=run.id)
    # The connection is usable after a refusal, and no submission order was used up.
    assert catalog.record_snapshot_metadata(run.id, third).submission_order == 2
    assert [r.path for r in catalog.snapshots()] == [first.path, third.path]


def _save_many(url: str, run_dir: str, writer: int, count: int) -> list[tuple[int, int]]:
    """Record ``count`` snapshots as one process; (snapshot id, submission order) of each.

    Writer 0 uses the ORM path (``record_snapshot``), the others the instance
    side's save, so that both take the same lock.
    """
    directory = Path(run_dir)
    results = []
    with open_catalog(url, create=True) as catalog:
        run = catalog.ensure_run(directory)
        for i in range(count):
            snapshot = Snapshot(["t"], float(i), {"o_i": [i]}, False, Message(float(i)))
            new = NewSnapshot(
                f"m[{writer}]",
                directory / f"m{writer}_{i}.pack",
                f"m{writer}_{i}.pack",
                snapshot,
                10,
                f"{writer:032x}{i:032x}",
                i,
            )
            if writer == 0:
                record = catalog.record_snapshot(run.id, new)
                results.append((record.id, record.submission_order))
            else:
                recorded = catalog.record_snapshot_metadata(run.id, new)
                results.append((recorded.snapshot_id, recorded.submission_order))
    return results


def test_concurrent_writers_get_distinct_submission_orders(pg_url: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    open_catalog(pg_url, create=True).close()
    jobs = [(pg_url, str(run_dir), writer, 20) for writer in range(4)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(_save_many, jobs)
    given = [pair for result in results for pair in result]
    with open_catalog(pg_url) as catalog:
        records = catalog.snapshots()
    assert sorted(r.submission_order for r in records) == list(range(1, 81))
    assert sorted((r.id, r.submission_order) for r in records) == sorted(given)
    for result in results:  # each writer's saves are in its own order
        orders = [order for _id, order in result]
        assert orders == sorted(orders)


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_one_save_is_one_round_trip(pg_url: str, tmp_path: Path) -> None:
    """The protocol trace (libpq's) of a save: every message sent, then every answer."""
    with open_catalog(pg_url, create=True) as catalog:
        run = catalog.ensure_run(tmp_path / "run")
        location = catalog.location
    first, second, _third, fourth = _snapshots(tmp_path / "run")
    with psycopg.connect(_conninfo(pg_url), autocommit=True) as connection:
        recorder = PgSnapshotRecorder(connection, location)
        recorder.record(run.id, str(first.path), first)  # the statements get prepared
        for new in (second, fourth):
            trace = tmp_path / f"trace_{new.sequence}.txt"
            with trace.open("w") as sink:
                connection.pgconn.trace(sink.fileno())
                try:
                    recorder.record(run.id, str(new.path), new)
                finally:
                    connection.pgconn.untrace()
            # One message a line (time, direction, length, type, ...); a statement's
            # own line breaks continue the line before.
            messages = [
                fields[1:4:2]
                for fields in (line.split("\t") for line in trace.read_text().splitlines())
                if len(fields) >= 4 and fields[1] in ("F", "B")
            ]
            directions = [direction for direction, _message in messages]
            turns = "".join(d for i, d in enumerate(directions) if i == 0 or directions[i - 1] != d)
            assert turns == "FB", trace.read_text()
            # BEGIN, the run's lock, the INSERT and COMMIT, all in that one send.
            assert messages.count(["F", "Execute"]) == 4, trace.read_text()
    with open_catalog(pg_url) as catalog:
        assert [r.submission_order for r in catalog.snapshots()] == [1, 2, 3]
