"""Snapshot data from records, ids and files; show --data/--json; memory on large files."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import numpy as np
import pytest
from ymmsl import Settings

from catalog import (
    Catalog,
    CatalogError,
    Grid,
    Message,
    SnapshotChangedError,
    SnapshotFileError,
    SnapshotTooLargeError,
    load_snapshot,
    open_catalog,
    payload,
)
from catalog.instance import SnapshotManager
from catalog.message import ClosePort, Milestone
from catalog.payload import decode_snapshot, encode_snapshot
from catalog.run_import import import_run_directory
from catalog.snapshot import FORMAT_V1, Snapshot
from catalog.snapshot_data import NOTE_KEYS, NOTE_NON_FINITE, data_to_json
from catalog.store import DECODE_LIMIT_ENV, decode_limit, load_pack, load_pack_metadata

from .conftest import FORMATS, RUNS
from .test_cli import invoke, strict_json

RD_PYTHON = (RUNS / "v0.10/rd_python").absolute()  # macro saves a Grid (MUSCLE3 0.10)
MM_SCALAR_V011 = (RUNS / "v0.11/mm_scalar").absolute()  # macro saves {"i": int, "u": Grid}
STATELESS = (RUNS / "v0.10/mm_stateless").absolute()  # micro's snapshots are implicit
SRC = Path(__file__).resolve().parents[1]


def copy_run(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "runs" / source.name
    shutil.copytree(source, target)
    return target


def macro_pack(run_dir: Path, number: int) -> Path:
    return run_dir / f"instances/macro/snapshots/macro_{number}.pack"


def grid_snapshot(array: np.ndarray[Any, Any], timestamp: float = 0.5) -> Snapshot:
    return Snapshot(
        triggers=["simulation_time >= 0.5"],
        wallclock_time=3.0,
        port_message_counts={"state_out": [4], "muscle_settings_in": [0]},
        is_final_snapshot=False,
        message=Message(timestamp, None, Grid(array, ["x", "y"])),
        settings_overlay=Settings({"alpha": 0.25}),
        format_version=FORMAT_V1,
    )


# --------------------------------------------------------------------------- data from records


def test_record_load_gives_the_grid_muscle3_wrote(catalog: Catalog) -> None:
    import_run_directory(catalog, RD_PYTHON)
    record = catalog.snapshots(instance="macro")[0]

    snapshot = record.load()
    data = record.load_data()

    assert snapshot.message is not None and snapshot.message.timestamp == record.timestamp
    assert snapshot.port_message_counts == record.port_message_counts
    assert dict(snapshot.settings_overlay.items()) == record.settings_overlay
    assert isinstance(data, Grid) and data.array.shape == (2, 100) and data.array.dtype == "f8"
    assert data == snapshot.message.data
    assert data.array.flags.writeable and data.array.flags.owndata
    snapshot_manager = pytest.importorskip("libmuscle.snapshot_manager")
    theirs = snapshot_manager.SnapshotManager.load_snapshot_from_file(record.path)
    assert np.array_equal(theirs.message.data.array, data.array)


def test_load_snapshot_by_id_by_path_and_without_a_catalog(catalog: Catalog) -> None:
    import_run_directory(catalog, MM_SCALAR_V011)
    record = catalog.snapshots(instance="macro")[-1]

    by_id = load_snapshot(catalog, record.id)
    by_path = load_snapshot(catalog, record.path)
    by_str = load_snapshot(catalog, str(record.path))
    no_catalog = load_snapshot(None, record.path)

    assert by_id.format_version == 2
    assert by_id.message is not None and set(by_id.message.data) == {"i", "u"}
    assert isinstance(by_id.message.data["u"], Grid)
    for other in (by_path, by_str, no_catalog):
        assert other.message is not None
        assert other.message.data == by_id.message.data
        assert other.port_message_counts == by_id.port_message_counts


def test_an_implicit_snapshot_has_no_data(catalog: Catalog) -> None:
    import_run_directory(catalog, STATELESS)
    record = catalog.snapshots(instance="micro")[0]
    assert record.is_implicit
    assert record.load().message is None
    assert record.load_data() is None


def test_data_saved_by_our_snapshot_manager_loads_back(catalog: Catalog, tmp_path: Path) -> None:
    communicator = MagicMock()
    communicator.get_message_counts.return_value = {"out": [2], "muscle_settings_in": [0]}
    communicator.list_ports.return_value = {}
    communicator.settings_in_connected.return_value = False
    saver = SnapshotManager("macro", MagicMock(), communicator, catalog)
    saver.prepare_resume(None, tmp_path)
    fortran = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    data = {"u": Grid(fortran, ["x", "y"]), "n": 3, "raw": b"\x00\x01", "v": np.arange(3)}
    saver.save_snapshot(Message(0.75, 1.0, data), False, ["t >= 0.75"], 2.0, None, Settings())

    (record,) = catalog.snapshots()
    loaded = record.load_data()

    assert loaded["u"] == Grid(fortran, ["x", "y"]) and loaded["u"].array.flags.f_contiguous
    assert loaded["v"] == Grid(np.arange(3))  # a bare array comes back as a Grid, as libmuscle
    assert (loaded["n"], loaded["raw"]) == (3, b"\x00\x01")
    assert load_snapshot(catalog, record.id).message.next_timestamp == 1.0  # type: ignore[union-attr]


def test_a_missing_file_names_it_and_the_fix(catalog: Catalog, tmp_path: Path) -> None:
    run_dir = copy_run(RD_PYTHON, tmp_path)
    import_run_directory(catalog, run_dir)
    gone = macro_pack(run_dir, 2)
    gone.unlink()
    record = catalog.snapshot_by_path(gone)
    assert record is not None

    with pytest.raises(SnapshotFileError) as error:
        record.load()

    message = str(error.value)
    assert str(gone) in message and "does not exist" in message
    assert "muscle-catalog relocate" in message and "muscle-catalog verify" in message
    with pytest.raises(SnapshotFileError, match="does not exist"):
        load_snapshot(catalog, record.id)


def test_a_changed_file_is_refused_unless_asked(catalog: Catalog, tmp_path: Path) -> None:
    run_dir = copy_run(RD_PYTHON, tmp_path)
    import_run_directory(catalog, run_dir)
    changed = macro_pack(run_dir, 1)
    shutil.copyfile(macro_pack(run_dir, 3), changed)  # valid, but other bytes
    record = catalog.snapshot_by_path(changed)
    assert record is not None and record.sha256 is not None

    with pytest.raises(SnapshotChangedError) as error:
        record.load()

    message = str(error.value)
    assert str(changed) in message and record.sha256 in message
    assert "changed since the catalog recorded it" in message and "muscle-catalog verify" in message
    with pytest.raises(SnapshotChangedError):
        load_snapshot(catalog, changed)
    assert record.load(check_sha256=False).message is not None
    assert load_snapshot(None, changed).message is not None  # no record, nothing to check


def test_a_corrupt_file_is_named(catalog: Catalog, tmp_path: Path) -> None:
    run_dir = copy_run(RD_PYTHON, tmp_path)
    import_run_directory(catalog, run_dir)
    broken = macro_pack(run_dir, 4)
    broken.write_bytes(broken.read_bytes()[:300])
    record = catalog.snapshot_by_path(broken)
    assert record is not None

    with pytest.raises(SnapshotChangedError):
        record.load()
    with pytest.raises(SnapshotFileError, match="truncated") as error:
        record.load(check_sha256=False)
    assert str(broken) in str(error.value)
    with pytest.raises(SnapshotFileError, match="unknown version"):
        load_snapshot(None, FORMATS / "bad/random_bytes.pack")


def test_ids_need_a_catalog_that_has_them(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="needs a catalog"):
        load_snapshot(None, 1)
    with pytest.raises(CatalogError, match="No snapshot with id 42"):
        load_snapshot(catalog, 42)


def test_records_stay_light_to_import() -> None:
    code = (
        "import sys, catalog.records; "
        "print(sorted(m for m in ('catalog.snapshot_data', 'catalog.payload', 'catalog.store', "
        "'msgpack') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- JSON of data


def test_data_to_json_keeps_what_json_can_hold_and_says_what_not() -> None:
    data = {
        "g": Grid(np.asfortranarray([[1.0, math.nan], [math.inf, 4.0]]), ["x", "y"]),
        "b": b"\xffab",
        "flags": [True, None, ClosePort(), Milestone([2])],
        3: np.array([1, 2], dtype=np.int32),
    }

    value, notes = data_to_json(data)

    text = json.dumps(value, allow_nan=False)  # strict JSON
    assert json.loads(text) == {
        "g": {
            "grid": {
                "array": {
                    "dtype": "float64",
                    "shape": [2, 2],
                    "order": "F",
                    "values": [[1.0, None], [None, 4.0]],
                },
                "indexes": ["x", "y"],
            }
        },
        "b": {"bytes_base64": "/2Fi"},
        "flags": [True, None, {"close_port": True}, {"milestone": [2]}],
        "3": {"dtype": "int32", "shape": [2], "order": "C", "values": [1, 2]},
    }
    assert notes == [NOTE_NON_FINITE, NOTE_KEYS]
    assert data_to_json([1, "a", 0.5]) == ([1, "a", 0.5], [])


# --------------------------------------------------------------------------- show --data / --json


def test_show_data_prints_it_as_muscle3_does(catalog_url: str) -> None:
    invoke(catalog_url, "import", str(RD_PYTHON), str(STATELESS))
    with open_catalog(catalog_url) as catalog:
        grid = catalog.snapshots(run="rd_python", instance="macro")[0]
        implicit = catalog.snapshots(run="mm_stateless", instance="micro")[0]

    result = invoke(catalog_url, "show", "--data", str(grid.id))
    assert result.exit_code == 0, result.output
    assert "Snapshot data:\nGrid(array([[" in result.stdout
    assert f"catalog id          │ {grid.id} " in result.stdout  # the table still comes first

    short = invoke(catalog_url, "show", "-d", str(implicit.id))
    assert short.exit_code == 0, short.output
    assert short.stdout.endswith("Snapshot data:\nNo data available\n")


def test_show_json_gives_the_metadata(catalog_url: str) -> None:
    invoke(catalog_url, "import", str(STATELESS))
    with open_catalog(catalog_url) as catalog:
        record = catalog.snapshots(run="mm_stateless", instance="micro")[0]

    result = invoke(catalog_url, "show", "--json", str(record.id))

    assert result.exit_code == 0, result.output
    shown = strict_json(result.stdout)
    assert shown["id"] == record.id and shown["run"] == "mm_stateless"
    assert shown["instance"] == "micro" and shown["path"] == str(record.path)
    assert Path(shown["path"]).is_absolute()
    assert shown["timestamp"] == "NaN" and shown["is_implicit"]
    # the same spelling as the snapshot's record in `snapshots --json`
    listed = invoke(catalog_url, "snapshots", "--json", "--run", "mm_stateless")
    (same,) = [r for r in strict_json(listed.stdout) if r["id"] == record.id]
    assert {k: same[k] for k in ("timestamp", "wallclock_time", "next_timestamp")} == {
        k: shown[k] for k in ("timestamp", "wallclock_time", "next_timestamp")
    }
    assert shown["triggers"] == list(record.triggers)
    assert shown["port_message_counts"] == record.port_message_counts
    assert shown["settings_overlay"] == record.settings_overlay
    assert (shown["sha256"], shown["size"]) == (record.sha256, record.size_bytes)
    assert shown["status"] == "present" and shown["recorded_sha256_matches"] is True
    assert "data" not in shown


def test_show_json_with_data_of_a_file_not_recorded(tmp_path: Path) -> None:
    pack = (RUNS / "v0.11/mm_scalar/instances/macro/snapshots/macro_2.pack").absolute()
    expected = load_pack(pack).snapshot.message
    assert expected is not None

    result = invoke(str(tmp_path / "none.sqlite"), "show", "--data", "--json", str(pack))

    assert result.exit_code == 0, result.output
    shown = strict_json(result.stdout)
    assert (shown["id"], shown["run"], shown["status"]) == (None, None, None)
    assert shown["path"] == str(pack) and shown["format_version"] == 2
    array = shown["data"]["u"]["grid"]["array"]
    assert array["dtype"] == "float64" and array["shape"] == [4]
    assert array["values"] == expected.data["u"].array.tolist()
    assert shown["data"]["i"] == expected.data["i"]
    assert shown["data_notes"] == []


def test_show_warns_about_a_changed_file_and_errors_on_a_missing_one(
    catalog_url: str, tmp_path: Path
) -> None:
    run_dir = copy_run(RD_PYTHON, tmp_path)
    invoke(catalog_url, "import", str(run_dir))
    shutil.copyfile(macro_pack(run_dir, 3), macro_pack(run_dir, 1))
    macro_pack(run_dir, 2).unlink()
    with open_catalog(catalog_url) as catalog:
        changed = catalog.snapshot_by_path(macro_pack(run_dir, 1))
        gone = catalog.snapshot_by_path(macro_pack(run_dir, 2))
    assert changed is not None and gone is not None

    shown = invoke(catalog_url, "show", "--json", str(changed.id))
    assert shown.exit_code == 0, shown.output
    assert strict_json(shown.stdout)["recorded_sha256_matches"] is False
    assert "changed since it was recorded" in shown.stderr and "verify" in shown.stderr

    missing = invoke(catalog_url, "show", "--data", str(gone.id))
    assert missing.exit_code == 1 and missing.stdout == ""
    (line,) = missing.stderr.splitlines()
    assert line.startswith("Error: ") and "does not exist" in line and "relocate" in line


# --------------------------------------------------------------------------- memory


@pytest.fixture(scope="module")
def big_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot file of one 64 MiB float64 grid, written by our codec as MUSCLE3 writes it."""
    path = tmp_path_factory.mktemp("big") / "macro_1.pack"
    path.write_bytes(encode_snapshot(grid_snapshot(np.ones((2048, 4096)))))
    return path


def test_decoding_a_large_grid_needs_about_twice_the_file(big_pack: Path) -> None:
    size = big_pack.stat().st_size
    tracemalloc.start()
    try:
        loaded = load_pack(big_pack)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert loaded.snapshot.message is not None
    assert loaded.snapshot.message.data.array.shape == (2048, 4096)
    assert peak < 2.2 * size, f"peak {peak / size:.2f}x the file size"


def test_reading_only_the_metadata_does_not_grow_with_the_data(big_pack: Path) -> None:
    size = big_pack.stat().st_size
    full = load_pack(big_pack)
    tracemalloc.start()
    try:
        light = load_pack_metadata(big_pack)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 0.1 * size, f"peak {peak / size:.2f}x the file size"
    assert not light.data_decoded and light.snapshot.message is not None
    assert light.snapshot.message.data is None
    assert light.sha256 == full.sha256 and light.size_bytes == full.size_bytes
    assert light.snapshot.message.timestamp == 0.5
    assert light.snapshot.port_message_counts == full.snapshot.port_message_counts
    assert light.snapshot.settings_overlay == full.snapshot.settings_overlay


def test_metadata_of_real_files_matches_a_full_decode() -> None:
    for pack in sorted([*FORMATS.glob("v*/*.pack"), *MM_SCALAR_V011.glob("instances/*/*/*")]):
        full, light = load_pack(pack).snapshot, load_pack_metadata(pack).snapshot
        assert (light.message is None) == (full.message is None), pack
        if full.message is not None and light.message is not None:
            assert light.message.timestamp == full.message.timestamp, pack
            assert light.message.next_timestamp == full.message.next_timestamp, pack
            full.message = light.message
        assert light == full, pack


_UNDER_MEMORY_LIMIT = """
import resource, sys
from pathlib import Path
import catalog.errors, catalog.run_import
from catalog import open_catalog
from catalog.store import load_pack, load_pack_metadata

big, run_dir, catalog_path = (Path(p) for p in sys.argv[1:4])
size = big.stat().st_size
cat = open_catalog(catalog_path, create=True)
cat.runs()
with open("/proc/self/statm") as statm:
    used = int(statm.read().split()[0]) * resource.getpagesize()
# Room for the file's bytes but not also for its array.
resource.setrlimit(resource.RLIMIT_AS, (used + int(size * 1.5), resource.RLIM_INFINITY))
try:
    load_pack(big)
except catalog.errors.SnapshotTooLargeError as exc:
    print("ERROR", exc)
print("METADATA", load_pack_metadata(big).snapshot.message.timestamp)
report = catalog.run_import.import_run_directory(cat, run_dir, decode_limit_bytes=size * 10)
print("ADDED", report.snapshots_added)
for warning in report.warnings:
    print("WARNING", warning)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses RLIMIT_AS and /proc")
def test_a_file_too_large_for_memory_is_a_clear_error_and_import_goes_on(
    big_pack: Path, tmp_path: Path
) -> None:
    run_dir = copy_run(RD_PYTHON, tmp_path)
    big = macro_pack(run_dir, 10)
    shutil.copyfile(big_pack, big)
    catalog_path = tmp_path / "catalog.sqlite"
    open_catalog(catalog_path, create=True).close()
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    args = [str(big), str(run_dir), str(catalog_path)]
    code = textwrap.dedent(_UNDER_MEMORY_LIMIT)

    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300
    )

    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    (error,) = [line for line in lines if line.startswith("ERROR")]
    assert str(big) in error and f"{big.stat().st_size} bytes" in error
    assert "not enough memory" in error and "more memory" in error
    assert "METADATA 0.5" in lines
    assert "ADDED 19" in lines  # all 18 files of the run, and the large one
    (warning,) = [line for line in lines if line.startswith("WARNING")]
    assert str(big) in warning and "recorded from its metadata alone" in warning
    with open_catalog(catalog_path) as catalog:
        record = catalog.snapshot_by_path(big)
        assert record is not None and record.timestamp == 0.5
        assert record.size_bytes == big.stat().st_size


# --------------------------------------------------------------------------- import's decode limit


def test_import_records_files_above_the_decode_limit_from_their_metadata(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = copy_run(RD_PYTHON, tmp_path)
    large = macro_pack(run_dir, 10)
    large.write_bytes(
        encode_snapshot(grid_snapshot(np.arange(1 << 18, dtype=float).reshape(512, 512), 9.5))
    )
    monkeypatch.setenv(DECODE_LIMIT_ENV, "1M")
    assert decode_limit() == 1 << 20

    report = import_run_directory(catalog, run_dir)

    assert report.snapshots_added == 19
    (warning,) = report.warnings
    assert str(large) in warning and "decode limit of 1048576 bytes" in warning
    assert DECODE_LIMIT_ENV in warning
    record = catalog.snapshot_by_path(large)
    assert record is not None and record.timestamp == 9.5
    assert record.port_message_counts == {"state_out": [4], "muscle_settings_in": [0]}
    assert record.settings_overlay == {"alpha": 0.25}
    assert record.sha256 == load_pack(large).sha256
    assert record.load_data().array.shape == (512, 512)  # loading is not limited


def test_metadata_only_import_records_the_same_rows(catalog: Catalog, tmp_path: Path) -> None:
    full_dir = copy_run(RD_PYTHON, tmp_path / "full")
    light_dir = copy_run(RD_PYTHON, tmp_path / "light")
    import_run_directory(catalog, full_dir)

    report = import_run_directory(catalog, light_dir, decode_limit_bytes=0)

    assert report.snapshots_added == 18 and len(report.warnings) == 18
    full = catalog.snapshots(run="rd_python")
    light = catalog.snapshots(run=report.run_name)

    def fields(record: Any) -> tuple[Any, ...]:
        return (
            record.instance,
            record.sequence,
            record.path.name,
            record.sha256,
            record.size_bytes,
            record.triggers,
            record.wallclock_time,
            record.timestamp,
            record.next_timestamp,
            record.port_message_counts,
            record.is_final_snapshot,
            record.is_implicit,
            record.settings_overlay,
        )

    assert [fields(r) for r in light] == [fields(r) for r in full]


def test_a_broken_file_above_the_limit_is_still_skipped(catalog: Catalog, tmp_path: Path) -> None:
    run_dir = copy_run(RD_PYTHON, tmp_path)
    broken = macro_pack(run_dir, 9)
    broken.write_bytes(broken.read_bytes()[:100])

    report = import_run_directory(catalog, run_dir, decode_limit_bytes=0)

    assert report.snapshots_added == 17
    assert any(str(broken) in w and "Nothing was recorded" in w for w in report.warnings)
    assert catalog.snapshot_by_path(broken) is None


def test_a_bad_decode_limit_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DECODE_LIMIT_ENV, "lots")
    with pytest.raises(CatalogError, match=f"{DECODE_LIMIT_ENV}='lots' is not a size"):
        decode_limit()
    monkeypatch.setenv(DECODE_LIMIT_ENV, "2GiB")
    assert decode_limit() == 2 << 30
    monkeypatch.setenv(DECODE_LIMIT_ENV, "4096")
    assert decode_limit() == 4096


def test_too_large_is_a_snapshot_file_error() -> None:
    error = SnapshotTooLargeError(Path("/data/big.pack"), 3 << 30)
    assert isinstance(error, SnapshotFileError) and error.size_bytes == 3 << 30
    assert "/data/big.pack" in str(error) and "3.00 GiB" in str(error)
    # decode_snapshot reads bytes, bytearrays and memoryviews alike
    data = (FORMATS / "v1/grid_f32.pack").read_bytes()
    assert decode_snapshot(bytearray(data), "x") == decode_snapshot(memoryview(data), "x")


def every_pack_fixture() -> list[Path]:
    return sorted([*FORMATS.rglob("*.pack"), *RUNS.rglob("*.pack")])


def outcome(pack: Path) -> Any:
    try:
        return decode_snapshot(pack.read_bytes(), pack)
    except SnapshotFileError as exc:
        return str(exc)


def test_in_place_decoding_gives_what_one_msgpack_call_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Small files are decoded by msgpack in one call, large ones in place: both must agree."""
    packs = every_pack_fixture()
    assert len(packs) > 250
    expected = [outcome(pack) for pack in packs]
    monkeypatch.setattr(payload, "_IN_PLACE_MIN", 0)  # every file and value in place

    for pack, wanted in zip(packs, expected, strict=True):
        assert outcome(pack) == wanted, pack
