"""The .pack codec against files the real MUSCLE3 0.10 and 0.11 wrote, and against broken files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from ymmsl import Settings

from catalog.errors import SnapshotFileError, SnapshotWriteError
from catalog.message import ClosePort, Grid, Message, Milestone
from catalog.payload import PayloadTypes, decode_snapshot, encode_snapshot
from catalog.snapshot import FORMAT_V1, FORMAT_V2, Snapshot
from catalog.store import load_pack
from tests.conftest import FORMATS


def _cases(version: str) -> list[Path]:
    return sorted((FORMATS / version).glob("*.pack"))


def _sidecar(pack: Path) -> dict[str, Any]:
    side: dict[str, Any] = json.loads(pack.with_suffix(".json").read_text())
    return side


def _float(value: float | str | None) -> float | None:
    if isinstance(value, str):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[value]
    return value


def _value(desc: dict[str, Any] | None, *, as_written: bool) -> Any:
    """Build the Python value a sidecar's typed description stands for.

    ``as_written`` gives numpy arrays as the program passed them; otherwise
    they are Grids, as the real loader returns them.
    """
    if desc is None:
        return None
    kind = desc["type"]
    if kind == "nil":
        return None
    if kind in ("bool", "int", "str"):
        return desc["value"]
    if kind == "float":
        return _float(desc["value"])
    if kind == "bytes":
        return bytes.fromhex(desc["hex"])
    if kind == "list":
        return [_value(item, as_written=as_written) for item in desc["items"]]
    if kind == "dict":
        return {
            _value(k, as_written=as_written): _value(v, as_written=as_written)
            for k, v in desc["items"]
        }
    if kind == "Settings (ExtType 1)":
        return Settings({k: _value(v, as_written=as_written) for k, v in desc["value"].items()})
    if kind in ("Grid", "numpy.ndarray"):
        array = np.array(desc["values"], dtype=desc["dtype"], order=desc["memory_order"])
        array = array.reshape(desc["shape"], order=desc["memory_order"])
        if kind == "numpy.ndarray" and as_written:
            return array
        return Grid(array, desc["indexes"])
    raise AssertionError(f"unknown sidecar type {kind}")


def _snapshot_from_sidecar(side: dict[str, Any]) -> Snapshot:
    msg = side["message"]
    message = None
    if msg is not None:
        message = Message(
            timestamp=msg["timestamp"],
            next_timestamp=msg["next_timestamp"],
            data=_value(msg["data"], as_written=True),
            settings=Settings(msg["settings"]) if msg["settings"] is not None else None,
        )
    return Snapshot(
        triggers=side["triggers"],
        wallclock_time=side["wallclock_time"],
        port_message_counts=side["port_message_counts"],
        is_final_snapshot=side["is_final_snapshot"],
        message=message,
        settings_overlay=Settings(side["settings_overlay"]),
    )


def _assert_same_data(actual: Any, expected: Any) -> None:
    if isinstance(expected, Grid):
        assert isinstance(actual, Grid)
        assert actual == expected
        # memory order survives, as MUSCLE3 keeps it
        if expected.array.ndim > 1:
            assert actual.array.flags.f_contiguous == expected.array.flags.f_contiguous
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            _assert_same_data(a, e)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and list(actual) == list(expected)
        for key in expected:
            _assert_same_data(actual[key], expected[key])
    elif isinstance(expected, Settings):
        assert isinstance(actual, Settings)
        assert actual.as_ordered_dict() == expected.as_ordered_dict()
    else:
        assert type(actual) is type(expected)
        assert actual == expected


@pytest.mark.parametrize("pack", _cases("v1"), ids=lambda p: p.stem)
def test_encoding_matches_muscle3_bytes(pack: Path) -> None:
    """Encoding what a MUSCLE3 0.10 file holds gives that file, byte for byte."""
    snapshot = _snapshot_from_sidecar(_sidecar(pack))
    assert encode_snapshot(snapshot) == pack.read_bytes()


@pytest.mark.parametrize("pack", _cases("v2"), ids=lambda p: p.stem)
def test_encoding_matches_muscle3_0_11_bytes(pack: Path) -> None:
    """A MUSCLE3 0.11 file, decoded and written again (as format 2), is the same file."""
    snapshot = decode_snapshot(pack.read_bytes(), pack)
    assert snapshot.format_version == FORMAT_V2
    assert encode_snapshot(snapshot) == pack.read_bytes()


def test_format_2_stores_the_communicator_state_as_given() -> None:
    state = {
        "port_message_counts": {"f_i": [3], "o_f": [2]},
        "timeline_state": {"iteration": [2], "send_participated": [], "subtimeline_states": {}},
        "message_cache": [["f_i", None, b"\x80"]],
    }
    snapshot = Snapshot(
        ["at_end"], 2.0, {"f_i": [3], "o_f": [2]}, True, Message(1.0, None, [Milestone([2])]),
        format_version=FORMAT_V2, communicator_state=state,
    )  # fmt: skip
    data = encode_snapshot(snapshot)
    assert data[:1] == b"2"
    top = msgpack.unpackb(data[1:], raw=False)
    assert list(top) == [
        "triggers", "wallclock_time", "is_final_snapshot", "message", "settings_overlay",
        "communicator_state",
    ]  # fmt: skip
    assert top["communicator_state"] == state
    mpp = msgpack.unpackb(top["message"], raw=False)
    assert list(mpp)[-2:] == ["data", "iteration"] and mpp["iteration"] == []
    assert mpp["data"] == [msgpack.ExtType(0, msgpack.packb([2]))]
    back = decode_snapshot(data, "mem.pack")
    assert back.port_message_counts == {"f_i": [3], "o_f": [2]}
    assert back.message is not None and back.message.data == [Milestone([2])]


def test_format_2_without_a_communicator_state_is_refused() -> None:
    snapshot = Snapshot(["t"], 1.0, {}, False, None, format_version=FORMAT_V2)
    with pytest.raises(SnapshotWriteError, match="communicator_state"):
        encode_snapshot(snapshot)


def test_a_closeport_cannot_go_into_a_format_2_file() -> None:
    state: dict[str, Any] = {"port_message_counts": {}}
    snapshot = Snapshot(
        ["t"], 1.0, {}, False, Message(1.0, None, ClosePort()), format_version=FORMAT_V2,
        communicator_state=state,
    )  # fmt: skip
    with pytest.raises(SnapshotWriteError, match=r"ClosePort.*version 2"):
        encode_snapshot(snapshot)


class _TheirGrid:
    """Stands for libmuscle.Grid: the same fields, another class."""

    def __init__(self, array: np.ndarray[Any, Any], indexes: list[str] | None = None) -> None:
        self.array = array
        self.indexes = indexes


class _TheirClosePort:
    pass


def test_other_grid_and_marker_classes_are_written_and_read_back_as_such() -> None:
    """A caller's own Grid class is stored like ours, and read back into that class."""
    types = PayloadTypes(grid=_TheirGrid, close_port=_TheirClosePort, milestone=None)
    array = np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3))
    theirs = {"g": _TheirGrid(array, ["x", "y"]), "end": _TheirClosePort(), "ours": Grid(array)}
    ours = {"g": Grid(array, ["x", "y"]), "end": ClosePort(), "ours": Grid(array)}

    def snapshot(data: Any) -> Snapshot:
        return Snapshot(["t"], 1.0, {"a": [1]}, False, Message(0.5, None, data))

    data = encode_snapshot(snapshot(theirs), types)
    assert data == encode_snapshot(snapshot(ours))
    with pytest.raises(SnapshotWriteError, match="_TheirGrid"):
        encode_snapshot(snapshot(theirs))  # only when asked for

    back = decode_snapshot(data, "mem.pack", types)
    assert back.message is not None
    loaded = back.message.data
    assert type(loaded["g"]) is _TheirGrid and type(loaded["ours"]) is _TheirGrid
    assert loaded["g"].indexes == ["x", "y"] and loaded["g"].array.flags.f_contiguous
    np.testing.assert_array_equal(loaded["g"].array, array)
    assert type(loaded["end"]) is _TheirClosePort
    # a family without the marker class gets ours
    plain = decode_snapshot(data, "mem.pack", PayloadTypes(grid=_TheirGrid, close_port=None))
    assert plain.message is not None and plain.message.data["end"] == ClosePort()


@pytest.mark.parametrize(
    "pack", _cases("v1") + _cases("v2"), ids=lambda p: f"{p.parent.name}-{p.stem}"
)
def test_decoding_gives_what_the_real_loader_gives(pack: Path) -> None:
    side = _sidecar(pack)
    loaded = side["loaded_back_by_real_loader"]
    snapshot = decode_snapshot(pack.read_bytes(), pack)

    assert snapshot.format_version == (FORMAT_V1 if pack.parent.name == "v1" else FORMAT_V2)
    assert snapshot.triggers == side["triggers"]
    assert snapshot.wallclock_time == side["wallclock_time"]
    assert snapshot.port_message_counts == side["port_message_counts"]
    assert snapshot.is_final_snapshot is side["is_final_snapshot"]
    assert snapshot.settings_overlay.as_ordered_dict() == loaded["settings_overlay"]
    if loaded["message_is_none"]:
        assert snapshot.message is None
        return
    message = snapshot.message
    assert message is not None
    assert message.timestamp == loaded["timestamp"]
    assert message.next_timestamp == loaded["next_timestamp"]
    assert message.settings is not None
    assert message.settings.as_ordered_dict() == loaded["message_settings"]
    _assert_same_data(message.data, _value(loaded["data"], as_written=False))


def test_v2_keeps_the_communicator_state() -> None:
    pack = FORMATS / "v2" / "grid_f64_2d_fortran.pack"
    snapshot = decode_snapshot(pack.read_bytes(), pack)
    state = snapshot.communicator_state
    assert state is not None
    expected = _sidecar(pack)["communicator_state"]
    assert state["timeline_state"] == expected["timeline_state"]
    assert state["port_message_counts"] == snapshot.port_message_counts


def test_v2_milestone_decodes() -> None:
    """A version 2 file's ext type 0 is a Milestone with its iteration, not a ClosePort."""
    mpp = {
        "sender": "_", "receiver": "_", "port_length": None, "timestamp": 1.0,
        "next_timestamp": None,
        "settings_overlay": msgpack.ExtType(1, msgpack.packb({})),
        "message_number": 0,
        "data": [msgpack.ExtType(0, msgpack.packb([3, 1]))],
        "iteration": [],
    }  # fmt: skip
    body = {
        "triggers": ["at_end"], "wallclock_time": 1.0, "is_final_snapshot": True,
        "message": msgpack.packb(mpp, use_bin_type=True), "settings_overlay": {},
        "communicator_state": {"port_message_counts": {"a": [1]}},
    }  # fmt: skip
    snapshot = decode_snapshot(b"2" + msgpack.packb(body, use_bin_type=True), "mem.pack")
    assert snapshot.message is not None
    assert snapshot.message.data == [Milestone([3, 1])]


def test_round_trip_of_everything_a_message_can_hold() -> None:
    fortran = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    data = {
        "close": ClosePort(),
        "grids": [Grid(np.arange(6, dtype=np.int64).reshape(2, 3), ["x", "y"]), fortran],
        "flags": np.array([True, False]),
        "nested": {"settings": Settings({"a": 1, "b": [1.0, 2.0]}), "raw": b"\x00\xff"},
        "nan": math.nan,
        "empty": np.zeros((0, 3), dtype=np.float64),
        "scalar": np.int64(7),
    }
    snapshot = Snapshot(
        triggers=["wallclock_time >= 5.0", "at_end"],
        wallclock_time=5.25,
        port_message_counts={"o_i": [1, 2, 3], "muscle_settings_in": [-1]},
        is_final_snapshot=True,
        message=Message(-math.inf, math.inf, data, Settings({"k": "v"})),
        settings_overlay=Settings({"x": 0.5}),
    )
    back = decode_snapshot(encode_snapshot(snapshot), "mem.pack")
    assert back.port_message_counts == snapshot.port_message_counts
    assert back.settings_overlay.as_ordered_dict() == {"x": 0.5}
    message = back.message
    assert message is not None
    assert message.timestamp == -math.inf and message.next_timestamp == math.inf
    assert message.data["close"] == ClosePort()
    assert message.data["grids"][0] == data["grids"][0]  # type: ignore[index]
    assert message.data["grids"][1] == Grid(fortran)
    assert message.data["grids"][1].array.flags.f_contiguous
    assert message.data["flags"] == Grid(np.array([True, False]))
    assert message.data["nested"]["settings"] == Settings({"a": 1, "b": [1.0, 2.0]})
    assert message.data["nested"]["raw"] == b"\x00\xff"
    assert math.isnan(message.data["nan"])
    assert message.data["empty"].array.shape == (0, 3)
    assert message.data["scalar"] == 7
    # decoded arrays are ordinary writable arrays
    message.data["grids"][0].array[0, 0] = 99


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (np.zeros(3, dtype=np.complex128), "Unsupported array data type complex128"),
        (object(), "type object"),
        (Milestone([1]), "Milestone"),
    ],
)
def test_unstorable_data_is_refused_clearly(data: Any, problem: str) -> None:
    snapshot = Snapshot(["at_end"], 1.0, {}, False, Message(1.0, None, data))
    with pytest.raises(SnapshotWriteError, match=problem):
        encode_snapshot(snapshot)


@pytest.mark.parametrize("pack", sorted((FORMATS / "bad").glob("*.pack")), ids=lambda p: p.stem)
def test_broken_files_give_one_clear_error(pack: Path) -> None:
    with pytest.raises(SnapshotFileError) as info:
        load_pack(pack)
    assert isinstance(info.value, RuntimeError)
    assert str(pack) in str(info.value)
    assert "Unable to load snapshot from" in str(info.value)


def test_truncated_file_says_truncated() -> None:
    pack = FORMATS / "bad" / "truncated_v1.pack"
    with pytest.raises(SnapshotFileError, match="truncated"):
        load_pack(pack)


def test_unknown_version_names_the_byte() -> None:
    pack = FORMATS / "bad" / "unknown_version_byte_3.pack"
    with pytest.raises(SnapshotFileError, match=r"unknown version.*b'3'"):
        load_pack(pack)


def test_trailing_bytes_are_an_error() -> None:
    data = (FORMATS / "v1" / "msg_int.pack").read_bytes() + b"\x00"
    with pytest.raises(SnapshotFileError, match="unexpected bytes after"):
        decode_snapshot(data, "extra.pack")


def test_missing_field_is_named() -> None:
    body = msgpack.packb({"triggers": [], "wallclock_time": 1.0}, use_bin_type=True)
    with pytest.raises(SnapshotFileError, match="'port_message_counts' is missing"):
        decode_snapshot(b"1" + body, "partial.pack")


def test_missing_and_directory_paths(tmp_path: Path) -> None:
    with pytest.raises(SnapshotFileError, match="does not exist"):
        load_pack(tmp_path / "nope.pack")
    with pytest.raises(SnapshotFileError, match="directory"):
        load_pack(tmp_path)


SWEEP_FILES = [
    FORMATS / "v1" / "msg_settings_nested.pack",
    FORMATS / "v1" / "grid_f64_2d_fortran.pack",
    FORMATS / "v2" / "msg_dict.pack",
    FORMATS / "v2" / "final_snapshot.pack",
]


@pytest.mark.parametrize("pack", SWEEP_FILES, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_every_truncation_is_a_clear_error(pack: Path) -> None:
    data = pack.read_bytes()
    for length in range(len(data)):
        with pytest.raises(SnapshotFileError):
            decode_snapshot(data[:length], pack)


@pytest.mark.parametrize("pack", SWEEP_FILES, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_every_bit_flip_is_an_error_or_a_valid_snapshot(pack: Path) -> None:
    """A flipped bit either gives a clear error or still decodes to a well-typed snapshot.

    Flips inside a number's bytes are undetectable from the format alone (the
    catalog's checksum catches them); what must never happen is any other
    exception escaping.
    """
    data = bytearray(pack.read_bytes())
    errors = 0
    for index in range(len(data)):
        for bit in range(8):
            data[index] ^= 1 << bit
            try:
                snapshot = decode_snapshot(bytes(data), pack)
            except SnapshotFileError:
                errors += 1
            else:
                assert isinstance(snapshot.triggers, list)
                assert isinstance(snapshot.wallclock_time, float)
                assert all(
                    isinstance(c, int) for v in snapshot.port_message_counts.values() for c in v
                )
            finally:
                data[index] ^= 1 << bit
    assert errors > 0
