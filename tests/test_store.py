"""The file side: MUSCLE3's naming, never overwriting, durable writes, clear read errors."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from pathlib import Path

import pytest

from catalog import InvalidInstanceError, SnapshotFileError, SnapshotWriteError
from catalog.naming import instance_sort_key, parse_pack_name, safe_id
from catalog.store import load_pack, read_pack_bytes, store_pack

from .conftest import FORMATS


def test_safe_id_matches_muscle3() -> None:
    assert safe_id("micro[3]") == "micro-3"
    assert safe_id("a.b[1][2]") == "a.b-1-2"
    assert parse_pack_name("a.b-1-2_17.pack") == ("a.b-1-2", 17)
    assert parse_pack_name("notes.txt") is None
    assert sorted(["micro[10]", "micro[2]", "macro"], key=instance_sort_key) == [
        "macro",
        "micro[2]",
        "micro[10]",
    ]


@pytest.mark.parametrize(
    "name", ["../etc", "a/b", "micro[-1]", "", "a b", "micro[1", "x\x00y", ".hidden", "a" * 300]
)
def test_hostile_instance_names_never_become_paths(name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInstanceError, match="not a valid MUSCLE3 instance name"):
        store_pack(tmp_path, name, b"1", 1)
    assert list(tmp_path.iterdir()) == []


def test_naming_skips_taken_names_like_muscle3(tmp_path: Path) -> None:
    behaviour = json.loads((FORMATS / "v1" / "naming_behaviour.json").read_text())
    for name in behaviour["pre_existing"]:
        (tmp_path / name).write_bytes(b"existing")
    number = 1
    written = []
    for _ in behaviour["written_in_order"]:
        stored = store_pack(tmp_path, "micro[2]", b"1new", number)
        number = stored.next_number
        written.append(stored.path.name)
    assert written == behaviour["written_in_order"]
    for name in behaviour["pre_existing"]:
        assert (tmp_path / name).read_bytes() == b"existing"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        behaviour["pre_existing"] + behaviour["written_in_order"]
    )  # no temporary files left


def test_stored_file_has_the_bytes_size_and_checksum(tmp_path: Path) -> None:
    stored = store_pack(tmp_path / "new" / "dir", "macro", b"1payload", 1)
    assert stored.path == tmp_path / "new" / "dir" / "macro_1.pack"
    assert stored.path.read_bytes() == b"1payload"
    assert stored.size_bytes == 8
    assert stored.sha256 == hashlib.sha256(b"1payload").hexdigest()


def _save_many(directory: str, tag: int, count: int) -> list[str]:
    names = []
    number = 1
    for i in range(count):
        stored = store_pack(Path(directory), "macro", f"1{tag}-{i}".encode(), number)
        number = stored.next_number
        names.append(stored.path.name)
    return names


def test_two_processes_saving_one_instance_never_overwrite(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        results = pool.starmap(_save_many, [(str(tmp_path), 1, 40), (str(tmp_path), 2, 40)])
    all_names = results[0] + results[1]
    assert len(set(all_names)) == 80
    contents = {p.read_bytes() for p in tmp_path.glob("*.pack")}
    assert contents == {f"1{t}-{i}".encode() for t in (1, 2) for i in range(40)}


def test_write_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can write to read-only directories")
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(SnapshotWriteError, match="no snapshot was recorded"):
            store_pack(tmp_path, "macro", b"1x", 1)
    finally:
        tmp_path.chmod(0o700)
    assert list(tmp_path.iterdir()) == []


def test_running_out_of_names_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import catalog.store

    monkeypatch.setattr(catalog.store, "MAX_NAME_ATTEMPTS", 3)
    for n in (1, 2, 3):
        (tmp_path / f"macro_{n}.pack").write_bytes(b"old")
    with pytest.raises(SnapshotWriteError, match="Could not find an available filename"):
        store_pack(tmp_path, "macro", b"1x", 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"macro_{n}.pack" for n in (1, 2, 3)]


def test_reading_missing_or_directory_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(SnapshotFileError, match="does not exist") as info:
        read_pack_bytes(tmp_path / "gone.pack")
    assert str(tmp_path / "gone.pack") in str(info.value)
    with pytest.raises(SnapshotFileError, match="is a directory"):
        load_pack(tmp_path)


def test_load_pack_reads_a_real_muscle3_file() -> None:
    loaded = load_pack(FORMATS / "v1" / "msg_str.pack")
    assert loaded.size_bytes == (FORMATS / "v1" / "msg_str.pack").stat().st_size
    assert len(loaded.sha256) == 64
    assert loaded.snapshot.format_version == 1
