"""A record's triggers, ports and settings come back exactly, whatever they hold, by every read.

The children are read one key per snapshot and decoded once per distinct
key (:mod:`catalog.db.children`); these tests hold that to what was
recorded: position order (not name order), several children of a kind, no
children, names full of quotes, separators and control characters, values
that are not what the catalog writes, and records that share nothing a
caller could change. Each query path is compared: the list, the stream
(with ids close together and far apart) and the lookup by id.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from ymmsl import Settings

from catalog import Catalog, NewSnapshot, Snapshot
from catalog.records import SnapshotRecord

#: Text that a separator-based encoding, or a careless JSON one, would get wrong.
AWKWARD = [
    'quote " and \\ backslash',
    "line\nbreak\ttab\r\x01\x1f\x1e\x7f",
    '][,"]',
    "ünïcödé ☃ 😀 \u2028\u2029",
    "",
    "[1]",
]


def _snapshot(step: int, instance: int) -> Snapshot:
    # Ports in an order that is not their names' order; counts differ per step.
    counts = {"z_out": [step], "a_in": [step, step + 1], "m_empty": []}
    return Snapshot(
        triggers=[f"time >= {step}", AWKWARD[step % len(AWKWARD)], "at_end"][: step % 4],
        wallclock_time=float(step),
        port_message_counts=counts if step % 4 else {},
        is_final_snapshot=False,
        message=None,
        settings_overlay=Settings(
            {"dt": 0.5, "grid": [[1.0, float(step)]], "name": AWKWARD[step % len(AWKWARD)]}
            if step % 5
            else {}
        ),
    )


def _record(catalog: Catalog, tmp_path: Path, steps: int, instances: int) -> dict[str, Snapshot]:
    """Snapshots of ``instances`` instances, interleaved step by step; path -> what was saved."""
    run = catalog.ensure_run(tmp_path / "run")
    saved: dict[str, Snapshot] = {}
    for step in range(steps):
        for instance in range(instances):
            path = tmp_path / "run" / f"m{instance}_{step}.pack"
            snapshot = _snapshot(step, instance)
            saved[str(path)] = snapshot
            catalog.record_snapshot(
                run.id,
                NewSnapshot(
                    instance=f"m[{instance}]",
                    path=path,
                    snapshot_filename=path.name,
                    snapshot=snapshot,
                    size_bytes=1,
                    sha256=None,
                    sequence=step,
                ),
            )
    return saved


def _same_children(record: SnapshotRecord, snapshot: Snapshot) -> bool:
    overlay = snapshot.settings_overlay.as_ordered_dict() if snapshot.settings_overlay else {}
    return (
        record.triggers == tuple(snapshot.triggers)
        and list(record.port_message_counts.items()) == list(snapshot.port_message_counts.items())
        and list(record.settings_overlay.items()) == list(overlay.items())
    )


def test_children_come_back_in_position_order_by_every_read(
    catalog: Catalog, tmp_path: Path
) -> None:
    saved = _record(catalog, tmp_path, steps=12, instances=3)
    records = catalog.snapshots()
    assert len(records) == len(saved)
    for record in records:
        assert _same_children(record, saved[str(record.path)]), record
        assert catalog.snapshot(record.id) == record
    # One instance of three interleaved: ids far apart (read by the filter or the ids).
    one = catalog.snapshots(instance="m[1]")
    assert [r.id for r in one] == [r.id for r in records if r.instance == "m[1]"]
    assert one == [r for r in records if r.instance == "m[1]"]
    assert list(catalog.iter_snapshots(instance="m[1]", batch_size=4)) == one
    assert catalog.snapshots(instance="m[1]", limit=5, order_by="-id") == one[::-1][:5]
    # Every snapshot: ids close together (read by id range), batch by batch.
    assert list(catalog.iter_snapshots(batch_size=5)) == records


def test_awkward_names_round_trip_exactly(catalog: Catalog, tmp_path: Path) -> None:
    _record(catalog, tmp_path, steps=1, instances=1)
    names = AWKWARD[:-1] + (["nul \x00 inside"] if catalog.engine.dialect.name == "sqlite" else [])
    with catalog.write_session() as session:
        sid = session.execute(text("SELECT id FROM snapshots")).scalar_one()
        for table in ("snapshot_triggers", "snapshot_ports", "snapshot_settings"):
            session.execute(text(f"DELETE FROM {table}"))
        for position, name in enumerate(names):
            session.execute(
                text("INSERT INTO snapshot_triggers VALUES (:s, :p, :t)"),
                {"s": sid, "p": position, "t": name},
            )
            session.execute(
                text("INSERT INTO snapshot_ports VALUES (:s, :port, :p, 1, :c)"),
                {"s": sid, "port": name, "p": len(names) - position, "c": f"[{position}]"},
            )
            session.execute(
                text("INSERT INTO snapshot_settings VALUES (:s, :p, :n, :v)"),
                {"s": sid, "p": position, "n": name, "v": json.dumps(name)},
            )
    (record,) = catalog.snapshots()
    assert record.triggers == tuple(names)
    assert list(record.port_message_counts.items()) == [
        (name, [position]) for position, name in reversed(list(enumerate(names)))
    ]
    assert list(record.settings_overlay.items()) == [(name, name) for name in names]
    assert list(catalog.iter_snapshots()) == [record]


@pytest.mark.parametrize(
    "counts", ['{"not": "counts"}', "[1, true]", "[1.5]", '"text"', "[[1], [2]]", "null"]
)
def test_counts_the_catalog_does_not_write_decode_as_json_for_each_record(
    catalog: Catalog, tmp_path: Path, counts: str
) -> None:
    _record(catalog, tmp_path, steps=4, instances=2)
    with catalog.write_session() as session:
        session.execute(text("UPDATE snapshot_ports SET counts = :c"), {"c": counts})
    records = [r for r in catalog.snapshots() if r.port_message_counts]
    assert len(records) >= 2
    for record in records:
        assert list(record.port_message_counts) == ["z_out", "a_in", "m_empty"]
        assert all(v == json.loads(counts) for v in record.port_message_counts.values())
    assert list(catalog.iter_snapshots(batch_size=3)) == catalog.snapshots()
    first, second = records[0].port_message_counts, records[1].port_message_counts
    if isinstance(first["z_out"], list | dict):  # each record has its own
        assert first["z_out"] is not second["z_out"]
        assert first["z_out"] is not first["a_in"]


def test_records_share_nothing_a_caller_can_change(catalog: Catalog, tmp_path: Path) -> None:
    _record(catalog, tmp_path, steps=2, instances=3)
    # Step 1 of three instances: the same triggers, counts and settings, read once.
    first, second = [r for r in catalog.snapshots() if r.sequence == 1][:2]
    assert first.triggers == second.triggers
    assert first.port_message_counts == second.port_message_counts
    assert first.settings_overlay == second.settings_overlay
    first.port_message_counts["z_out"].append(99)
    first.port_message_counts["new"] = [1]
    first.settings_overlay["grid"][0].append(7.0)
    first.settings_overlay["dt"] = 9.0
    assert second == catalog.snapshot(second.id)
    assert second.port_message_counts == {"z_out": [1], "a_in": [1, 2], "m_empty": []}
    assert second.settings_overlay["grid"] == [[1.0, 1.0]]
    assert second.settings_overlay["dt"] == 0.5
