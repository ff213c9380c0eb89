"""The light recorder writes exactly what the full Catalog writes, and only where it may."""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
from ymmsl import Settings

from catalog import CatalogError, Message, SnapshotMetadata, open_catalog
from catalog.db.revision import VERSION_TABLE
from catalog.db.sqlite_recorder import SqliteSnapshotRecorder
from catalog.instance import SnapshotManager
from catalog.records import NewSnapshot
from catalog.snapshot import FORMAT_V2, Snapshot

#: A stored time with its digits masked: both paths must spell times alike.
DIGIT = re.compile(r"\d")
#: Columns that differ between two recordings of the same snapshots by nature;
#: compared by their spelling only.
RECORDING_TIMES = {"recorded_at", "created_at"}
CONFIGURATION = "ymmsl_version: v0.1\nmodel:\n  name: light_model\n"


def _snapshots(run_dir: Path) -> list[NewSnapshot]:
    """Saves of several kinds, with paths below ``run_dir``."""
    many_ports = {f"port_{p}": [p * 10 + s - 3 for s in range(p * 7)] for p in range(6)}
    many_ports["empty"] = []
    settings = Settings(
        {"alpha": 1.5, "n": 3, "name": "x", "vec": [1.0, 2.0], "grid": [[1.0, 2.0], [3.0, 4.0]]}
    )
    snapshots = [
        # An implicit snapshot: NaN timestamp, no next timestamp.
        ("macro", Snapshot(["at_start"], 0.25, {"o_i": [0], "s": [0]}, False, None)),
        ("macro", Snapshot(["sim_time"], 1.5, {"o_i": [1], "s": [1]}, False, Message(1.0, 2.0))),
        # A final snapshot with settings and many ports and slots, some negative.
        (
            "micro[3]",
            Snapshot(["at_end", "wall"], 7.0, many_ports, True, Message(-math.inf), settings),
        ),
        # Format 2, NaN wallclock time, infinite next timestamp, vector instance.
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
        # More ports than one multi-row INSERT takes (the recorder's executemany).
        ("micro[4]", Snapshot(["t"], 2.0, {f"p{p}": [p] for p in range(70)}, False, Message(4.0))),
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
            copied_from_snapshot_id=1 if i == 3 else None,
        )
        for i, (instance, snapshot) in enumerate(snapshots, start=1)
    ]


def _comparable(metadata: SnapshotMetadata) -> dict[str, Any]:
    """Metadata as a dict in which NaN equals NaN."""
    return {
        key: "NaN" if isinstance(value, float) and math.isnan(value) else value
        for key, value in dataclasses.asdict(metadata).items()
    }


def _every_row(db_file: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, ids replaced by what they name, with each value's type."""
    connection = sqlite3.connect(db_file)
    try:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        paths = dict(connection.execute("SELECT id, path FROM snapshots").fetchall())
        runs = dict(connection.execute("SELECT id, run_dir FROM runs").fetchall())
        rows: dict[str, list[tuple[Any, ...]]] = {}
        for table in tables:
            cursor = connection.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            found = []
            for row in cursor:
                values = []
                for column, value in zip(columns, row, strict=True):
                    if column == "id":
                        continue
                    if column in RECORDING_TIMES:
                        value = DIGIT.sub("9", value)
                    if column in ("snapshot_id", "copied_from_snapshot_id") and value is not None:
                        value = paths[value]
                    if column == "run_id":
                        value = runs[value]
                    values.append((column, type(value).__name__, value))
                found.append(tuple(values))
            rows[table] = sorted(found, key=repr)
        return rows
    finally:
        connection.close()


def test_the_light_path_writes_the_rows_the_catalog_writes(tmp_path: Path) -> None:
    light_dir, full_dir = tmp_path / "light", tmp_path / "full"
    light_dir.mkdir()
    full_dir.mkdir()
    open_catalog(light_dir / "cat.sqlite", create=True).close()
    recorder = SqliteSnapshotRecorder.open(light_dir / "cat.sqlite")
    assert recorder is not None
    light_run = light_dir / "run"
    run_id: int | None = None
    light_metadata = []
    for new in _snapshots(light_run):
        run_id, _sid, metadata = recorder.record(
            run_id, new, run_dir=light_run, model_name="light_model", configuration=CONFIGURATION
        )
        light_metadata.append(metadata)
    recorder.close()

    full_run = full_dir / "run"
    full_metadata = []
    with open_catalog(full_dir / "cat.sqlite", create=True) as full:
        run = full.ensure_run(full_run, model_name="light_model", configuration=CONFIGURATION)
        for new in _snapshots(full_run):
            full_metadata.append(full.record_snapshot(run.id, new).to_metadata())

    light_rows = _every_row(light_dir / "cat.sqlite")
    assert light_rows == _every_row(full_dir / "cat.sqlite")
    assert {t for t, rows in light_rows.items() if rows} >= {
        "runs",
        "snapshots",
        "snapshot_triggers",
        "snapshot_ports",
        "snapshot_settings",
    }
    assert [_comparable(m) for m in light_metadata] == [_comparable(m) for m in full_metadata]
    # The full Catalog reads the light path's rows back as its own (times included).
    with open_catalog(light_dir / "cat.sqlite", create=True) as light:
        records = light.snapshots()
        assert [_comparable(r.to_metadata()) for r in records] == [
            _comparable(m) for m in light_metadata
        ]
        assert records[0].recorded_at.tzinfo is not None
        (read_run,) = light.runs()
        assert read_run.model_name == "light_model"
        assert read_run.status == "running"
        assert read_run.source == "live"


def test_a_save_of_a_known_run_is_five_statements(tmp_path: Path) -> None:
    """BEGIN, the row (its order computed, its id returned), one INSERT per child table, COMMIT."""
    db_file = tmp_path / "cat.sqlite"
    open_catalog(db_file, create=True).close()
    recorder = SqliteSnapshotRecorder.open(db_file)
    assert recorder is not None
    run_dir = tmp_path / "run"
    first, second, third = _snapshots(run_dir)[:3]
    run_id, _sid, _metadata = recorder.record(None, first, run_dir=run_dir)
    executed: list[str] = []
    recorder._connection.set_trace_callback(executed.append)
    recorder.record(run_id, second, run_dir=run_dir)  # triggers and ports, no settings
    assert [sql.split(" (")[0] for sql in executed] == [
        "BEGIN IMMEDIATE",
        'INSERT INTO "snapshots"',
        'INSERT INTO "snapshot_triggers"',
        'INSERT INTO "snapshot_ports"',
        "COMMIT",
    ]
    executed.clear()
    recorder.record(run_id, third, run_dir=run_dir)  # many ports, settings: one INSERT each
    assert len(executed) == 6
    recorder.close()
    with open_catalog(db_file) as cat:
        assert [r.submission_order for r in cat.snapshots()] == [1, 2, 3]


def test_an_existing_run_gets_what_it_lacks_and_a_path_is_recorded_once(tmp_path: Path) -> None:
    db_file = tmp_path / "cat.sqlite"
    run_dir = tmp_path / "run"
    with open_catalog(db_file, create=True) as cat:
        existing = cat.ensure_run(run_dir)
    recorder = SqliteSnapshotRecorder.open(db_file)
    assert recorder is not None
    first = _snapshots(run_dir)[0]
    run_id, _sid, _metadata = recorder.record(
        None, first, run_dir=run_dir, model_name="m", configuration=CONFIGURATION
    )
    assert run_id == existing.id
    with pytest.raises(CatalogError, match="never recorded twice"):
        recorder.record(run_id, first, run_dir=run_dir)
    with pytest.raises(CatalogError, match="No run with id 99"):
        recorder.record(99, _snapshots(run_dir)[1], run_dir=run_dir)
    recorder.close()
    with open_catalog(db_file, create=True) as cat:
        (run,) = cat.runs()
        assert (run.model_name, run.num_snapshots) == ("m", 1)
        assert cat.run_configuration(run.id) == CONFIGURATION


def test_a_run_reached_through_a_symlink_is_one_run(tmp_path: Path) -> None:
    db_file = tmp_path / "cat.sqlite"
    real = tmp_path / "real" / "run"
    real.mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "real", target_is_directory=True)
    open_catalog(db_file, create=True).close()
    recorder = SqliteSnapshotRecorder.open(db_file)
    assert recorder is not None
    run_id, _sid, _metadata = recorder.record(
        None, _snapshots(link / "run")[0], run_dir=link / "run"
    )
    again, _sid, _metadata = recorder.record(None, _snapshots(real)[1], run_dir=real)
    recorder.close()
    assert again == run_id
    with open_catalog(db_file, create=True) as cat:
        assert cat.ensure_run(link / "run").id == run_id
        (run,) = cat.runs()
        assert run.run_dir == real


def test_only_a_sqlite_catalog_at_the_head_revision_is_written(tmp_path: Path) -> None:
    assert SqliteSnapshotRecorder.open(tmp_path / "missing.sqlite") is None
    assert not (tmp_path / "missing.sqlite").exists()
    not_sqlite = tmp_path / "notes.sqlite"
    not_sqlite.write_text("not a database " * 100)
    assert SqliteSnapshotRecorder.open(not_sqlite) is None
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    assert SqliteSnapshotRecorder.open(empty) is None
    old = tmp_path / "old.sqlite"
    open_catalog(old, create=True).close()
    connection = sqlite3.connect(old)
    with connection:
        connection.execute(f"UPDATE {VERSION_TABLE} SET version_num = '0001'")
    connection.execute("PRAGMA journal_mode = DELETE")
    connection.close()
    before = old.read_bytes()
    assert SqliteSnapshotRecorder.open(old) is None
    assert old.read_bytes() == before  # the header (journal mode) is left alone


def _save_in_process(catalog: str, directory: str, instance: str, count: int) -> list[str]:
    manager = MagicMock()
    communicator = MagicMock()
    communicator.get_message_counts.return_value = {"o_i": [1]}
    saver = SnapshotManager(instance, manager, communicator, catalog)
    saver.prepare_resume(None, Path(directory))
    names = []
    for i in range(count):
        saver.save_snapshot(Message(float(i)), False, ["t"], 1.0, None, Settings())
        names.append(manager.submit_snapshot_metadata.call_args[0][0].snapshot_filename)
    saver.close()
    return names


def test_concurrent_light_savers_create_one_run_and_order_every_snapshot(tmp_path: Path) -> None:
    db_file = tmp_path / "snapshot_catalog.sqlite"
    open_catalog(db_file, create=True).close()
    run_dir = tmp_path / "run"
    jobs = [
        (str(db_file), str(run_dir / "instances" / f"m[{i}]" / "snapshots"), f"m[{i}]", 15)
        for i in range(4)
    ]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(_save_in_process, jobs)
    names = {n for result in results for n in result}
    with open_catalog(db_file, create=True) as cat:
        (run,) = cat.runs()
        assert run.run_dir == run_dir
        records = cat.snapshots()
        assert sorted(r.submission_order for r in records) == list(range(1, 61))
        assert {str(r.path) for r in records} == names


def test_an_instance_save_into_a_sqlite_catalog_does_not_import_sqlalchemy(
    tmp_path: Path,
) -> None:
    pytest.importorskip("libmuscle")
    db_file = tmp_path / "snapshot_catalog.sqlite"
    open_catalog(db_file, create=True).close()
    snapshots = tmp_path / "run" / "instances" / "macro" / "snapshots"
    snapshots.mkdir(parents=True)
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from unittest.mock import MagicMock

        import catalog.muscle3.instance
        from catalog.instance import SnapshotManager
        from catalog.message import Message
        from ymmsl import Settings

        communicator = MagicMock()
        communicator.get_message_counts.return_value = {{"o_i": [1]}}
        manager = MagicMock()
        saver = SnapshotManager("macro", manager, communicator, {str(db_file)!r})
        saver.prepare_resume(None, Path({str(snapshots)!r}))
        saver.save_snapshot(Message(1.0), False, ["t"], 1.0, None, Settings())
        saver.close()
        assert manager.submit_snapshot_metadata.called
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "sqlalchemy")
        print("sqlalchemy modules:", loaded)
        sys.exit(1 if loaded else 0)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with open_catalog(db_file, create=True) as cat:
        (record,) = cat.snapshots()
        assert record.path == snapshots / "macro_1.pack"
