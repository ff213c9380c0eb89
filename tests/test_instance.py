"""SnapshotManager: the seed's scenarios, MUSCLE3's bytes and names, the catalog it fills."""

from __future__ import annotations

import hashlib
import math
import multiprocessing
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
from ymmsl import Operator, Settings

from catalog import (
    Catalog,
    CatalogError,
    Message,
    SnapshotFileError,
    SnapshotMetadata,
    SnapshotWriteError,
    open_catalog,
)
from catalog.instance import SnapshotManager
from catalog.location import catalog_for_snapshot_directory
from catalog.payload import decode_snapshot
from catalog.run_dir import run_dir_of

from .conftest import FORMATS


def make_communicator(
    counts: dict[str, list[int]],
    ports: dict[Operator, list[str]] | None = None,
    settings_in_connected: bool = False,
) -> MagicMock:
    communicator = MagicMock()
    communicator.get_message_counts.side_effect = lambda: {k: list(v) for k, v in counts.items()}
    communicator.list_ports.return_value = ports or {}
    communicator.settings_in_connected.return_value = settings_in_connected
    return communicator


def submitted(manager: MagicMock) -> SnapshotMetadata:
    metadata = manager.submit_snapshot_metadata.call_args[0][0]
    assert isinstance(metadata, SnapshotMetadata)
    return metadata


@pytest.fixture
def cat(catalog: Catalog) -> Catalog:
    return catalog


def test_no_resume(cat: Catalog, tmp_path: Path) -> None:
    manager = MagicMock()
    snapshot_manager = SnapshotManager("test", manager, make_communicator({}), cat)
    assert snapshot_manager.prepare_resume(None, tmp_path) is None
    assert not snapshot_manager.resuming_from_intermediate()
    assert not snapshot_manager.resuming_from_final()
    assert snapshot_manager.resume_overlay is None  # as libmuscle: Instance keeps its overlay
    manager.submit_snapshot_metadata.assert_not_called()


def test_save_then_resume_from_intermediate(cat: Catalog, tmp_path: Path) -> None:
    counts = {"in": [1], "out": [2], "muscle_settings_in": [0]}
    manager = MagicMock()
    communicator = make_communicator(counts)
    first = SnapshotManager("test[1]", manager, communicator, cat)
    first.prepare_resume(None, tmp_path)
    returned = first.save_snapshot(
        Message(0.2, None, "test data"), False, ["test"], 13.0, None, Settings()
    )
    assert returned == 0.2
    metadata = submitted(manager)
    assert metadata.triggers == ["test"]
    assert metadata.wallclock_time == 13.0
    assert metadata.timestamp == 0.2
    assert metadata.next_timestamp is None
    assert metadata.port_message_counts == counts
    assert not metadata.is_final_snapshot
    path = Path(metadata.snapshot_filename)
    assert path == tmp_path / "test-1_1.pack"

    manager2 = MagicMock()
    communicator2 = make_communicator(counts)
    second = SnapshotManager("test[1]", manager2, communicator2, cat)
    assert second.prepare_resume(path, tmp_path) == 0.2
    communicator2.restore_message_counts.assert_called_with(counts)
    assert second.resuming_from_intermediate()
    assert not second.resuming_from_final()
    message = second.load_snapshot()
    assert (message.timestamp, message.next_timestamp, message.data) == (0.2, None, "test data")
    copy = submitted(manager2)
    assert Path(copy.snapshot_filename) == tmp_path / "test-1_2.pack"  # _1 is taken
    assert Path(copy.snapshot_filename).read_bytes() == path.read_bytes()
    assert copy.triggers == ["test"] and copy.wallclock_time == 13.0
    original, copied = cat.snapshots()
    assert copied.copied_from_snapshot_id == original.id  # live lineage
    assert original.copied_from_snapshot_id is None

    communicator2.list_ports.return_value = {Operator.F_INIT: ["in"]}
    returned = second.save_snapshot(
        Message(0.6, None, "test data2"), True, ["test"], 42.2, 1.2, Settings()
    )
    assert returned == 1.2  # f_init_max_timestamp wins for final snapshots
    final = submitted(manager2)
    assert Path(final.snapshot_filename).name == "test-1_3.pack"
    assert final.is_final_snapshot
    assert final.port_message_counts == {"in": [0], "out": [2], "muscle_settings_in": [0]}
    assert [r.path.name for r in cat.snapshots()] == [
        "test-1_1.pack",
        "test-1_2.pack",
        "test-1_3.pack",
    ]


def test_resume_from_final_snapshot(cat: Catalog, tmp_path: Path) -> None:
    manager = MagicMock()
    communicator = make_communicator({"f_i": [3], "o_f": [2]}, {Operator.F_INIT: ["f_i"]})
    saver = SnapshotManager("micro", manager, communicator, cat)
    saver.prepare_resume(None, tmp_path)
    saver.save_snapshot(Message(0.5, 0.6, [1, 2]), True, ["at_end"], 1.0, None, Settings())
    path = Path(submitted(manager).snapshot_filename)
    resumer = SnapshotManager("micro", MagicMock(), make_communicator({}), cat)
    assert resumer.prepare_resume(path, tmp_path / "next") == 0.5
    assert resumer.resuming_from_final()
    assert not resumer.resuming_from_intermediate()
    assert resumer.load_snapshot().next_timestamp == 0.6


def test_implicit_snapshot_resumes_from_scratch_but_restores_counts(
    cat: Catalog, tmp_path: Path
) -> None:
    manager = MagicMock()
    communicator = make_communicator({"f_i": [5], "o_f": [4]}, {Operator.F_INIT: ["f_i"]})
    saver = SnapshotManager("micro[0]", manager, communicator, cat)
    saver.prepare_resume(None, tmp_path)
    overlay = Settings({"micro.dt": 0.5})
    assert saver.save_snapshot(None, True, ["at_end"], 2.0, 0.7, overlay) == 0.7
    metadata = submitted(manager)
    assert math.isnan(metadata.timestamp)
    assert metadata.port_message_counts == {"f_i": [4], "o_f": [4]}
    assert saver.save_snapshot(None, True, ["at_end"], 2.0, None, overlay) == -math.inf

    resume_communicator = make_communicator({})
    resumer = SnapshotManager("micro[0]", MagicMock(), resume_communicator, cat)
    assert resumer.prepare_resume(Path(metadata.snapshot_filename), tmp_path) is None
    assert not resumer.resuming_from_final() and not resumer.resuming_from_intermediate()
    assert resumer.resume_overlay == overlay
    resume_communicator.restore_message_counts.assert_called_with({"f_i": [4], "o_f": [4]})
    record = cat.snapshots(instance="micro[0]")[0]
    assert record.is_implicit and math.isnan(record.timestamp)


def test_final_decrement_includes_connected_settings_in_and_goes_negative_as_muscle3(
    cat: Catalog, tmp_path: Path
) -> None:
    """MUSCLE3 0.10 lowers an unconnected F_INIT port to -1; we do too, for identical bytes."""
    manager = MagicMock()
    communicator = make_communicator(
        {"f_i": [4], "unconnected": [0], "o_f": [3], "muscle_settings_in": [4]},
        {Operator.F_INIT: ["f_i", "unconnected"], Operator.O_F: ["o_f"]},
        settings_in_connected=True,
    )
    saver = SnapshotManager("micro", manager, communicator, cat)
    saver.prepare_resume(None, tmp_path)
    saver.save_snapshot(Message(0.65, None, {"i": 3}), True, ["x"], 12.5, 0.82, Settings())
    assert submitted(manager).port_message_counts == {
        "f_i": [3],
        "unconnected": [-1],
        "o_f": [3],
        "muscle_settings_in": [3],
    }


@pytest.mark.parametrize("case", ["final_snapshot", "final_snapshot_settings_in", "msg_str"])
def test_writes_the_bytes_muscle3_writes(case: str, tmp_path: Path) -> None:
    import json

    sidecar = json.loads((FORMATS / "v1" / f"{case}.json").read_text())
    expected = (FORMATS / "v1" / f"{case}.pack").read_bytes()
    original = decode_snapshot(expected, case)
    inputs = sidecar["inputs"]
    ports = {Operator[name]: list(names) for name, names in inputs["declared_ports"].items()}
    communicator = make_communicator(
        inputs["port_message_counts_from_port_manager"], ports, inputs["settings_in_connected"]
    )
    manager = MagicMock()
    with open_catalog(tmp_path / "cat.sqlite", create=True) as cat:
        saver = SnapshotManager(sidecar["instance"], manager, communicator, cat)
        saver.prepare_resume(None, tmp_path / "snapshots")
        returned = saver.save_snapshot(
            original.message,
            inputs["final"],
            inputs["triggers"],
            inputs["wallclock_time"],
            inputs["f_init_max_timestamp"],
            original.settings_overlay,
        )
    metadata = submitted(manager)
    assert Path(metadata.snapshot_filename).name == sidecar["file_name_written_by_libmuscle"]
    assert Path(metadata.snapshot_filename).read_bytes() == expected
    assert returned == sidecar["save_snapshot_return_value"]
    expected_md = dict(sidecar["metadata_submitted_to_manager"])
    expected_md["snapshot_filename"] = metadata.snapshot_filename
    assert metadata.__dict__ == expected_md


@pytest.mark.parametrize("case", sorted(p.stem for p in (FORMATS / "v2").glob("*.pack")), ids=str)
def test_writes_the_bytes_muscle3_0_11_writes(case: str, tmp_path: Path) -> None:
    """Given MUSCLE3 0.11's communicator state, the file is 0.11's, byte for byte."""
    import json

    sidecar = json.loads((FORMATS / "v2" / f"{case}.json").read_text())
    expected = (FORMATS / "v2" / f"{case}.pack").read_bytes()
    original = decode_snapshot(expected, case)
    assert original.communicator_state is not None
    communicator = MagicMock()  # format 2 takes nothing from the communicator
    manager = MagicMock()
    with open_catalog(tmp_path / "cat.sqlite", create=True) as cat:
        saver = SnapshotManager(sidecar["instance"], manager, communicator, cat)
        saver.prepare_resume(None, tmp_path / "snapshots")
        returned = saver.save_snapshot(
            original.message,
            original.is_final_snapshot,
            original.triggers,
            original.wallclock_time,
            sidecar["inputs"]["f_init_max_timestamp"],
            original.settings_overlay,
            original.communicator_state,
        )
        (record,) = cat.snapshots()
    assert communicator.mock_calls == []
    metadata = submitted(manager)
    assert Path(metadata.snapshot_filename).read_bytes() == expected
    assert returned == sidecar["save_snapshot_return_value"]
    expected_md = dict(sidecar["metadata_submitted_to_manager"])
    expected_md["snapshot_filename"] = metadata.snapshot_filename
    if metadata.timestamp != metadata.timestamp:  # NaN: implicit snapshot
        assert expected_md.pop("timestamp") == "NaN"
        del metadata.__dict__["timestamp"]
    assert metadata.__dict__ == expected_md
    assert record.format_version == 2


def test_a_format_2_save_needs_the_counts_in_the_state(cat: Catalog, tmp_path: Path) -> None:
    saver = SnapshotManager("macro", MagicMock(), MagicMock(), cat)
    saver.prepare_resume(None, tmp_path)
    with pytest.raises(SnapshotWriteError, match="port_message_counts"):
        saver.save_snapshot(Message(1.0), False, ["t"], 1.0, None, Settings(), {"x": 1})


def test_resuming_refuses_a_catalogued_file_whose_bytes_changed(
    cat: Catalog, tmp_path: Path
) -> None:
    manager = MagicMock()
    saver = SnapshotManager("macro", manager, make_communicator({"o_i": [2]}), cat)
    saver.prepare_resume(None, tmp_path / "run1")
    saver.save_snapshot(Message(0.5, None, [1, 2]), False, ["t"], 3.0, None, Settings())
    path = Path(submitted(manager).snapshot_filename)
    recorded = cat.snapshot_by_path(path)
    assert recorded is not None and recorded.sha256
    # same size, still a valid snapshot, other content: only the digest tells
    changed = path.read_bytes().replace(b"\x92\x01\x02", b"\x92\x01\x03")
    assert changed != path.read_bytes()
    path.write_bytes(changed)
    actual = hashlib.sha256(changed).hexdigest()

    communicator = make_communicator({})
    resumer = SnapshotManager("macro", MagicMock(), communicator, cat)
    with pytest.raises(SnapshotFileError) as info:
        resumer.prepare_resume(path, tmp_path / "run2")
    message = str(info.value)
    assert str(path) in message and recorded.sha256 in message and actual in message
    communicator.restore_message_counts.assert_not_called()
    assert len(cat.snapshots()) == 1


def test_resuming_from_a_file_the_catalog_does_not_know(cat: Catalog, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "macro_4.pack"
    outside.parent.mkdir()
    outside.write_bytes((FORMATS / "v1" / "msg_dict.pack").read_bytes())
    resumer = SnapshotManager("macro", MagicMock(), make_communicator({}), cat)
    assert resumer.prepare_resume(outside, tmp_path / "run2") is not None
    (copy,) = cat.snapshots()
    assert copy.copied_from_snapshot_id is None


def test_a_copy_of_a_moved_file_finds_its_origin_by_content(cat: Catalog, tmp_path: Path) -> None:
    manager = MagicMock()
    saver = SnapshotManager("micro", manager, make_communicator({"f_i": [1]}), cat)
    saver.prepare_resume(None, tmp_path / "run1")
    saver.save_snapshot(Message(0.1, None, "x"), False, ["t"], 1.0, None, Settings())
    original = Path(submitted(manager).snapshot_filename)
    moved = tmp_path / "moved" / original.name
    moved.parent.mkdir()
    moved.write_bytes(original.read_bytes())
    resumer = SnapshotManager("micro", MagicMock(), make_communicator({}), cat)
    resumer.prepare_resume(moved, tmp_path / "run2")
    first, copy = cat.snapshots()
    assert copy.path.parent == tmp_path / "run2"
    assert copy.copied_from_snapshot_id == first.id


def test_resuming_goes_on_unchecked_when_the_catalog_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with open_catalog(tmp_path / "cat.sqlite", create=True) as cat:

        def database_down(*_args: object) -> None:
            raise CatalogError("the database server went away")

        monkeypatch.setattr(cat, "snapshot_by_path", database_down)
        resumer = SnapshotManager("macro", MagicMock(), make_communicator({}), cat)
        assert resumer.prepare_resume(FORMATS / "v1" / "msg_dict.pack", tmp_path / "r") is not None
        assert "unchecked" in caplog.text
        (copy,) = cat.snapshots()
        assert copy.copied_from_snapshot_id is None


def test_resuming_from_a_broken_file_names_it(cat: Catalog, tmp_path: Path) -> None:
    broken = tmp_path / "macro_1.pack"
    broken.write_bytes((FORMATS / "bad" / "truncated_v1.pack").read_bytes())
    resumer = SnapshotManager("macro", MagicMock(), make_communicator({}), cat)
    with pytest.raises(SnapshotFileError, match=r"macro_1\.pack"):
        resumer.prepare_resume(broken, tmp_path / "new")
    with pytest.raises(RuntimeError, match="does not exist"):
        SnapshotManager.load_snapshot_from_file(tmp_path / "missing.pack")
    assert cat.snapshots() == []


def test_load_snapshot_from_file_reads_both_versions() -> None:
    v1 = SnapshotManager.load_snapshot_from_file(FORMATS / "v1" / "msg_dict.pack")
    v2 = SnapshotManager.load_snapshot_from_file(FORMATS / "v2" / "msg_dict.pack")
    assert v1.format_version == 1 and v2.format_version == 2
    assert v1.message is not None and v2.message is not None
    assert v1.message.data == v2.message.data
    assert v1.port_message_counts == v2.port_message_counts


def test_catalog_for_snapshot_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUSCLE_SNAPSHOT_CATALOG", raising=False)
    run_snapshots = tmp_path / "run" / "instances" / "micro[1]" / "snapshots"
    assert run_dir_of(run_snapshots) == tmp_path / "run"
    assert catalog_for_snapshot_directory(run_snapshots) == str(
        tmp_path / "run" / "snapshot_catalog.sqlite"
    )
    assert catalog_for_snapshot_directory(tmp_path / "elsewhere") == str(
        tmp_path / "elsewhere" / "snapshot_catalog.sqlite"
    )
    monkeypatch.setenv("MUSCLE_SNAPSHOT_CATALOG", "postgresql+psycopg://h/db")
    assert catalog_for_snapshot_directory(run_snapshots) == "postgresql+psycopg://h/db"


def test_saving_without_a_catalog_argument_records_in_the_run_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MUSCLE_SNAPSHOT_CATALOG", raising=False)
    run_dir = tmp_path / "run"
    (run_dir / "instances" / "macro" / "snapshots").mkdir(parents=True)
    config = (
        Path(__file__).parent / "data" / "runs" / "v0.10" / "mm_vector5" / "configuration.ymmsl"
    )
    (run_dir / "configuration.ymmsl").write_text(config.read_text())
    manager = MagicMock()
    saver = SnapshotManager("macro", manager, make_communicator({"o_i": [1]}))
    saver.prepare_resume(None, run_dir / "instances" / "macro" / "snapshots")
    saver.save_snapshot(Message(1.0), False, ["t"], 1.0, None, Settings())
    saver.close()
    with open_catalog(run_dir / "snapshot_catalog.sqlite", create=True) as cat:
        (run,) = cat.runs()
        assert run.run_dir == run_dir
        assert run.model_name == "macro_micro"
        (record,) = cat.snapshots()
        assert record.path == run_dir / "instances" / "macro" / "snapshots" / "macro_1.pack"
        assert record.to_metadata() == submitted(manager)


def test_catalog_failure_keeps_the_file_and_still_tells_the_manager(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_catalog(tmp_path / "cat.sqlite", create=True) as cat:
        manager = MagicMock()
        saver = SnapshotManager("macro", manager, make_communicator({"o_i": [1]}), cat)
        saver.prepare_resume(None, tmp_path / "snaps")

        def database_down(*_args: object) -> None:
            raise CatalogError("the database server went away")

        monkeypatch.setattr(cat, "record_snapshot_metadata", database_down)
        saver.save_snapshot(Message(0.2), False, ["t"], 2.0, None, Settings())
        metadata = submitted(manager)
        assert Path(metadata.snapshot_filename) == tmp_path / "snaps" / "macro_1.pack"
        assert decode_snapshot(Path(metadata.snapshot_filename).read_bytes(), "x").message
        assert metadata.timestamp == 0.2
        assert "muscle-catalog import" in caplog.text
        assert cat.snapshots() == []


def _save_in_process(url: str, directory: str, instance: str, count: int) -> list[str]:
    manager = MagicMock()
    names: list[str] = []
    with open_catalog(url, create=True) as cat:
        saver = SnapshotManager(instance, manager, make_communicator({"o_i": [1]}), cat)
        saver.prepare_resume(None, Path(directory))
        for i in range(count):
            saver.save_snapshot(Message(float(i)), False, ["t"], 1.0, None, Settings())
            names.append(submitted(manager).snapshot_filename)
    return names


def test_concurrent_instances_record_every_snapshot(catalog_url: str, tmp_path: Path) -> None:
    jobs: list[tuple[Any, ...]] = [
        (
            catalog_url,
            str(tmp_path / "run" / "instances" / f"micro[{i % 2}]" / "snapshots"),
            f"micro[{i % 2}]",
            15,
        )
        for i in range(4)
    ]
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        results = pool.starmap(_save_in_process, jobs)
    names = [n for result in results for n in result]
    assert len(set(names)) == 60  # two savers per instance and directory: no overwrite
    with open_catalog(catalog_url, create=True) as cat:
        records = cat.snapshots()
        assert len(records) == 60
        assert sorted(r.submission_order for r in records) == list(range(1, 61))
        assert {str(r.path) for r in records} == set(names)
