"""Interoperability with the real MUSCLE3 0.10.0 (installed by the ``test`` extra from PyPI).

Both directions: ``.pack`` files we write load in libmuscle with equal content,
and files libmuscle writes load in ours with equal content. Content covers
every ext type: ClosePort, Settings, grids of each dtype in C and Fortran
order, with and without indexes, nested in lists and dicts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ymmsl import Settings

from catalog.message import ClosePort, Grid, Message
from catalog.payload import decode_snapshot, encode_snapshot
from catalog.snapshot import Snapshot

libmuscle = pytest.importorskip("libmuscle", reason="interop tests need the 'test' extra")
from libmuscle import mpp_message as lm_mpp  # noqa: E402
from libmuscle import snapshot as lm_snapshot  # noqa: E402
from libmuscle.snapshot_manager import SnapshotManager as LmSnapshotManager  # noqa: E402

pytestmark = pytest.mark.interop


def _payloads() -> list[Any]:
    fortran = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4) / 4)
    return [
        None,
        "text",
        3,
        2.5,
        b"\x00\x01binary",
        [1, "two", 3.0, None, True],
        {"nested": {"list": [1, 2], "flag": False}},
        np.arange(5, dtype=np.int32),
        np.arange(6, dtype=np.int64).reshape(2, 3),
        np.linspace(0, 1, 4, dtype=np.float32),
        fortran,
        np.array([[True, False], [False, True]]),
        "grid-with-indexes",
        [np.zeros((2, 2)), {"inner": np.ones(3, dtype=np.int32)}],
        "settings-in-data",
        "close-port",
    ]


def _ours(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if value == "grid-with-indexes":
        return Grid(np.arange(6, dtype=np.float64).reshape(2, 3), ["x", "y"])
    if value == "settings-in-data":
        return {"params": Settings({"alpha": 0.5, "model.beta": [1.0, 2.0]})}
    if value == "close-port":
        return ClosePort()
    return value


def _theirs(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if value == "grid-with-indexes":
        return libmuscle.Grid(np.arange(6, dtype=np.float64).reshape(2, 3), ["x", "y"])
    if value == "settings-in-data":
        return {"params": Settings({"alpha": 0.5, "model.beta": [1.0, 2.0]})}
    if value == "close-port":
        return lm_mpp.ClosePort()
    return value


def _same(ours: Any, theirs: Any) -> None:
    """Compare a value we decoded with one libmuscle decoded (or vice versa)."""
    if isinstance(ours, Grid):
        assert isinstance(theirs, libmuscle.Grid)
        assert ours.indexes == theirs.indexes
        assert ours.array.dtype == theirs.array.dtype
        np.testing.assert_array_equal(ours.array, theirs.array)
        if ours.array.ndim > 1:
            assert ours.array.flags.f_contiguous == theirs.array.flags.f_contiguous
    elif isinstance(ours, list):
        assert isinstance(theirs, list) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            _same(a, b)
    elif isinstance(ours, dict):
        assert isinstance(theirs, dict) and list(ours) == list(theirs)
        for key in ours:
            _same(ours[key], theirs[key])
    elif isinstance(ours, Settings):
        assert ours.as_ordered_dict() == theirs.as_ordered_dict()
    elif isinstance(ours, ClosePort):
        assert isinstance(theirs, lm_mpp.ClosePort)
    else:
        assert ours == theirs and type(ours) is type(theirs)


@pytest.mark.parametrize("payload", _payloads(), ids=repr)
def test_libmuscle_loads_what_we_write(tmp_path: Path, payload: Any) -> None:
    snapshot = Snapshot(
        triggers=["simulation_time >= 0.4", "at_end"],
        wallclock_time=12.5,
        port_message_counts={"o_i": [3, 4], "s": [3, 3], "muscle_settings_in": [0]},
        is_final_snapshot=True,
        message=Message(0.4, 0.6, _ours(payload), Settings({"k": -1.5})),
        settings_overlay=Settings({"macro.dt": 0.1}),
    )
    path = tmp_path / "macro_1.pack"
    path.write_bytes(encode_snapshot(snapshot))

    loaded: Any = LmSnapshotManager.load_snapshot_from_file(path)
    assert loaded.triggers == snapshot.triggers
    assert loaded.wallclock_time == snapshot.wallclock_time
    assert loaded.port_message_counts == snapshot.port_message_counts
    assert loaded.is_final_snapshot is True
    assert loaded.settings_overlay.as_ordered_dict() == {"macro.dt": 0.1}
    assert loaded.message.timestamp == 0.4 and loaded.message.next_timestamp == 0.6
    assert loaded.message.settings.as_ordered_dict() == {"k": -1.5}
    back = decode_snapshot(path.read_bytes(), path)  # ours, for the like-for-like comparison
    assert back.message is not None
    _same(back.message.data, loaded.message.data)


@pytest.mark.parametrize("payload", _payloads(), ids=repr)
def test_we_load_what_libmuscle_writes(tmp_path: Path, payload: Any) -> None:
    message = libmuscle.Message(1.5, None, _theirs(payload), Settings({"s": "v"}))
    theirs = lm_snapshot.MsgPackSnapshot(
        ["wallclock_time >= 5.0"],
        5.25,
        {"f_i": [7], "o_f": [-1], "muscle_settings_in": [0]},
        False,
        message,
        Settings({"micro.t_max": 2.0}),
    )
    path = tmp_path / "micro-3_2.pack"
    path.write_bytes(lm_snapshot.MsgPackSnapshot.SNAPSHOT_VERSION_BYTE + theirs.to_bytes())

    ours = decode_snapshot(path.read_bytes(), path)
    assert ours.triggers == ["wallclock_time >= 5.0"]
    assert ours.wallclock_time == 5.25
    assert ours.port_message_counts == {"f_i": [7], "o_f": [-1], "muscle_settings_in": [0]}
    assert ours.is_final_snapshot is False
    assert ours.settings_overlay.as_ordered_dict() == {"micro.t_max": 2.0}
    assert ours.message is not None
    assert ours.message.timestamp == 1.5 and ours.message.next_timestamp is None
    assert ours.message.settings is not None
    assert ours.message.settings.as_ordered_dict() == {"s": "v"}
    reread: Any = LmSnapshotManager.load_snapshot_from_file(path)
    _same(ours.message.data, reread.message.data)
    # and writing it back gives libmuscle's bytes exactly (bare arrays, now Grids, too)
    assert encode_snapshot(ours) == path.read_bytes()


def test_implicit_snapshot_both_ways(tmp_path: Path) -> None:
    snapshot = Snapshot(["at_end"], 1.0, {"f_i": [1]}, True, None)
    path = tmp_path / "micro_1.pack"
    path.write_bytes(encode_snapshot(snapshot))
    loaded = LmSnapshotManager.load_snapshot_from_file(path)
    assert loaded.message is None
    theirs = lm_snapshot.MsgPackSnapshot(["at_end"], 1.0, {"f_i": [1]}, True, None, Settings())
    assert b"1" + theirs.to_bytes() == path.read_bytes()
    assert decode_snapshot(path.read_bytes(), path).message is None


def test_non_finite_timestamps_survive(tmp_path: Path) -> None:
    snapshot = Snapshot(["x"], 0.0, {}, False, Message(-math.inf, math.inf, None))
    path = tmp_path / "a_1.pack"
    path.write_bytes(encode_snapshot(snapshot))
    loaded: Any = LmSnapshotManager.load_snapshot_from_file(path)
    assert loaded.message.timestamp == -math.inf and loaded.message.next_timestamp == math.inf
