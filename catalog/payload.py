"""The ``.pack`` codec: MUSCLE3's snapshot bytes, read (versions 1 and 2) and written (version 1).

A ``.pack`` file is one version byte followed by one msgpack map. Version 1
(``b"1"``) is what MUSCLE3 0.7-0.10 write and read; version 2 (``b"2"``) is
MUSCLE3 0.11's, which moved the port counts into a ``communicator_state``.
We write version 1 byte for byte as MUSCLE3 0.10 does, so that a run can be
resumed by MUSCLE3 from files we wrote, and read both, so that a catalog can
index any run directory.

The instance's message is stored as an encoded MUSCLE3 wire message (an
"MPP message") inside the map, with numpy arrays, settings and port markers
as msgpack ext types. The ext type numbers and the map key order are part of
the format; see ``docs/muscle3-formats.md``.

Unlike MUSCLE3, every way a file can be broken (empty, truncated, a flipped
bit, a field of the wrong type, an unknown version) ends in one error type,
:class:`~catalog.errors.SnapshotFileError`, naming the file and the problem.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
from ymmsl import Settings

from catalog.errors import SnapshotFileError, SnapshotWriteError
from catalog.message import ClosePort, Grid, Message, Milestone
from catalog.snapshot import FORMAT_V1, FORMAT_V2, Snapshot

#: First byte of a version 1 file (MUSCLE3 0.7-0.10).
VERSION_BYTE_V1 = b"1"
#: First byte of a version 2 file (MUSCLE3 0.11).
VERSION_BYTE_V2 = b"2"

_VERSION_BYTES = {VERSION_BYTE_V1: FORMAT_V1, VERSION_BYTE_V2: FORMAT_V2}

# msgpack ext type ids used inside messages (MUSCLE3's ExtTypeId).
EXT_CLOSE_PORT_OR_MILESTONE = 0
EXT_SETTINGS = 1
_GRID_EXT_BY_DTYPE = {"int32": 2, "int64": 3, "float32": 4, "float64": 5, "bool": 6}
_GRID_DTYPE_BY_EXT = {code: dtype for dtype, code in _GRID_EXT_BY_DTYPE.items()}

_ORDER_F = "fa"
_ORDER_C = "la"

_UNKNOWN_VERSION = (
    "unknown version of snapshot file (first byte {byte!r}; MUSCLE3 writes b'1' or b'2'). "
    "Was the file saved by a different program, or edited?"
)

_PathLike = Path | str


# --------------------------------------------------------------------------- writing


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """Encode a snapshot as a version 1 ``.pack`` file, byte-identical to MUSCLE3 0.10.

    Args:
        snapshot: What to store. Its ``format_version`` is ignored: we always
            write version 1, which every MUSCLE3 from 0.7 to 0.10 reads.

    Returns:
        The complete file content, version byte included.

    Raises:
        SnapshotWriteError: The message holds something MUSCLE3 cannot store
            (an unsupported numpy dtype, a Milestone, an arbitrary object).
    """
    message = b"" if snapshot.message is None else _encode_message_v1(snapshot.message)
    body = {
        "triggers": list(snapshot.triggers),
        "wallclock_time": float(snapshot.wallclock_time),
        "port_message_counts": {
            port: [int(count) for count in counts]
            for port, counts in snapshot.port_message_counts.items()
        },
        "is_final_snapshot": bool(snapshot.is_final_snapshot),
        "message": message,
        "settings_overlay": _settings_dict(snapshot.settings_overlay),
    }
    try:
        encoded: bytes = msgpack.packb(body, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise SnapshotWriteError(f"Cannot encode the snapshot: {exc}") from exc
    return VERSION_BYTE_V1 + encoded


def _settings_dict(settings: Settings | Mapping[str, Any] | None) -> dict[str, Any]:
    if settings is None:
        return {}
    if isinstance(settings, Settings):
        return dict(settings.as_ordered_dict())
    return dict(settings)


def _encode_message_v1(message: Message) -> bytes:
    """Encode a message as MUSCLE3 0.10's ``MPPMessage(...).encoded()`` does for snapshots."""
    mpp = {
        "sender": "_",
        "receiver": "_",
        "port_length": None,
        "timestamp": float(message.timestamp),
        "next_timestamp": (
            None if message.next_timestamp is None else float(message.next_timestamp)
        ),
        "settings_overlay": _settings_ext(message.settings or Settings()),
        "message_number": 0,
        "saved_until": -1.0,
        "data": message.data,
    }
    try:
        encoded: bytes = msgpack.packb(mpp, default=_encode_ext_v1, use_bin_type=True)
    except SnapshotWriteError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise SnapshotWriteError(f"Cannot encode the snapshot's message data: {exc}") from exc
    return encoded


def _settings_ext(settings: Settings) -> msgpack.ExtType:
    return msgpack.ExtType(EXT_SETTINGS, msgpack.packb(_settings_dict(settings), use_bin_type=True))


def _encode_ext_v1(obj: Any) -> Any:
    """Msgpack ``default`` hook: the types MUSCLE3 stores as ext types."""
    if isinstance(obj, ClosePort):
        return msgpack.ExtType(EXT_CLOSE_PORT_OR_MILESTONE, b"")
    if isinstance(obj, Settings):
        return _settings_ext(obj)
    if isinstance(obj, Grid):
        return _grid_ext(obj.array, obj.indexes)
    if isinstance(obj, np.ndarray):
        return _grid_ext(obj, None)
    if isinstance(obj, np.generic):
        # numpy scalars (np.int64(3)) are a common slip; MUSCLE3 refuses them,
        # we store the equivalent Python value, which MUSCLE3 reads back fine.
        return obj.item()
    if isinstance(obj, Milestone):
        raise SnapshotWriteError(
            "Cannot store a Milestone in a version 1 snapshot: it exists only in MUSCLE3 0.11 files"
        )
    raise SnapshotWriteError(
        f"Cannot store a value of type {type(obj).__name__} in a snapshot. Supported are None, "
        "bool, int, float, str, bytes, lists, dicts, numpy arrays, Grid and Settings."
    )


def _grid_ext(array: np.ndarray[Any, Any], indexes: list[str] | None) -> msgpack.ExtType:
    dtype = str(array.dtype)
    code = _GRID_EXT_BY_DTYPE.get(dtype)
    if code is None:
        raise SnapshotWriteError(
            f"Unsupported array data type {dtype}: snapshots can hold "
            f"{', '.join(_GRID_EXT_BY_DTYPE)} arrays"
        )
    grid = {
        "type": dtype,
        "shape": list(array.shape),
        "order": _ORDER_F if array.flags.f_contiguous else _ORDER_C,
        "data": array.tobytes(order="A"),
        "indexes": indexes,
    }
    return msgpack.ExtType(code, msgpack.packb(grid, use_bin_type=True))


# --------------------------------------------------------------------------- reading


class _CorruptError(Exception):
    """Internal: a structural problem found while decoding, turned into SnapshotFileError."""


def decode_snapshot(data: bytes, source: _PathLike) -> Snapshot:
    """Decode the bytes of a version 1 or version 2 ``.pack`` file.

    Args:
        data: The whole file.
        source: Where the bytes came from, named in errors.

    Returns:
        The snapshot. Bare numpy arrays come back as :class:`Grid` objects,
        as libmuscle returns them.

    Raises:
        SnapshotFileError: The bytes are not a valid snapshot: unknown version
            byte, truncated, corrupt, or with missing or mistyped fields.
    """
    version = _VERSION_BYTES.get(data[:1])
    if version is None:
        raise SnapshotFileError(source, _UNKNOWN_VERSION.format(byte=data[:1]))
    try:
        return _decode_body(data[1:], version)
    except _CorruptError as exc:
        raise SnapshotFileError(source, f"{exc} (format version {version})") from None
    except msgpack.ExtraData:
        raise SnapshotFileError(
            source, f"unexpected bytes after the snapshot data (format version {version})"
        ) from None
    except (ValueError, msgpack.UnpackException) as exc:
        problem = str(exc) or type(exc).__name__
        if "incomplete input" in problem:
            problem = "the file is truncated (incomplete msgpack data)"
        raise SnapshotFileError(
            source, f"corrupt snapshot data: {problem} (format version {version})"
        ) from None
    except (TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
        raise SnapshotFileError(
            source, f"corrupt snapshot data: {type(exc).__name__}: {exc} (format version {version})"
        ) from None


def _unpack(data: bytes, ext_hook: Callable[[int, bytes], Any] | None = None) -> Any:
    if ext_hook is None:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=ext_hook)


def _decode_body(body: bytes, version: int) -> Snapshot:
    """Decode the map after the version byte; the versions differ in where the counts are."""
    top = _expect_map(_unpack(body), "the snapshot")
    if version == FORMAT_V1:
        state, counts_in, ext_hook = None, top, _ext_hook_v1
    else:
        state = _expect_map(_field(top, "communicator_state"), "communicator_state")
        counts_in, ext_hook = state, _ext_hook_v2
    return Snapshot(
        triggers=_triggers(top),
        wallclock_time=_number(top, "wallclock_time"),
        port_message_counts=_counts(_field(counts_in, "port_message_counts")),
        is_final_snapshot=_bool(top, "is_final_snapshot"),
        message=_message(top, ext_hook),
        settings_overlay=_settings(_field(top, "settings_overlay"), "settings_overlay"),
        format_version=version,
        communicator_state=state,
    )


def _field(mapping: Mapping[Any, Any], key: str) -> Any:
    if key not in mapping:
        raise _CorruptError(f"the field {key!r} is missing")
    return mapping[key]


def _expect_map(value: Any, what: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise _CorruptError(f"{what} should be a map but is {type(value).__name__}")
    return value


def _triggers(top: Mapping[Any, Any]) -> list[str]:
    triggers = _field(top, "triggers")
    if not isinstance(triggers, list) or not all(isinstance(t, str) for t in triggers):
        raise _CorruptError("the field 'triggers' should be a list of strings")
    return triggers


def _number(mapping: Mapping[Any, Any], key: str) -> float:
    value = _field(mapping, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _CorruptError(f"the field {key!r} should be a number but is {type(value).__name__}")
    return float(value)


def _optional_number(mapping: Mapping[Any, Any], key: str) -> float | None:
    if mapping.get(key) is None:
        if key not in mapping:
            raise _CorruptError(f"the field {key!r} is missing")
        return None
    return _number(mapping, key)


def _bool(mapping: Mapping[Any, Any], key: str) -> bool:
    value = _field(mapping, key)
    if not isinstance(value, bool):
        raise _CorruptError(
            f"the field {key!r} should be true or false but is {type(value).__name__}"
        )
    return value


def _counts(value: Any) -> dict[str, list[int]]:
    counts = _expect_map(value, "port_message_counts")
    for port, slots in counts.items():
        if not isinstance(port, str):
            raise _CorruptError(f"port_message_counts has a non-text port name {port!r}")
        if not isinstance(slots, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in slots
        ):
            raise _CorruptError(f"port_message_counts[{port!r}] should be a list of integers")
    return counts


def _settings(value: Any, what: str) -> Settings:
    mapping = _expect_map(value, what)
    if not all(isinstance(key, str) for key in mapping):
        raise _CorruptError(f"{what} has a non-text setting name")
    try:
        return Settings(mapping)
    except Exception as exc:  # ymmsl validates values with its own errors
        raise _CorruptError(f"{what} holds an invalid setting: {exc}") from None


def _message(top: Mapping[Any, Any], ext_hook: Callable[[int, bytes], Any]) -> Message | None:
    encoded = _field(top, "message")
    if not isinstance(encoded, bytes):
        raise _CorruptError(f"the field 'message' should be binary but is {type(encoded).__name__}")
    if encoded == b"":
        return None  # an implicit snapshot: no state, only counts
    mpp = _expect_map(_unpack(encoded, ext_hook), "the message")
    settings = _field(mpp, "settings_overlay")
    if not isinstance(settings, Settings):
        raise _CorruptError("the message's settings_overlay is not a Settings ext type")
    timestamp = _number(mpp, "timestamp")
    return Message(
        timestamp=timestamp,
        next_timestamp=_optional_number(mpp, "next_timestamp"),
        data=_field(mpp, "data"),
        settings=settings,
    )


def _ext_hook_v1(code: int, payload: bytes) -> Any:
    if code == EXT_CLOSE_PORT_OR_MILESTONE:
        return ClosePort()
    return _ext_common(code, payload)


def _ext_hook_v2(code: int, payload: bytes) -> Any:
    if code == EXT_CLOSE_PORT_OR_MILESTONE:
        iteration = _unpack(payload)
        if not isinstance(iteration, list):
            raise _CorruptError("a Milestone's iteration should be a list")
        return Milestone(iteration)
    return _ext_common(code, payload)


def _ext_common(code: int, payload: bytes) -> Any:
    if code == EXT_SETTINGS:
        return _settings(_unpack(payload), "a Settings value")
    dtype = _GRID_DTYPE_BY_EXT.get(code)
    if dtype is not None:
        return _decode_grid(dtype, payload)
    # MUSCLE3 hands unknown ext types to the program as-is; so do we.
    return msgpack.ExtType(code, payload)


def _decode_grid(dtype: str, payload: bytes) -> Grid:
    grid = _expect_map(_unpack(payload), "a grid")
    if _field(grid, "type") != dtype:
        raise _CorruptError(f"a grid's type {grid['type']!r} does not match its ext type ({dtype})")
    shape = _field(grid, "shape")
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise _CorruptError(f"a grid's shape {shape!r} is not a list of sizes")
    order = _field(grid, "order")
    if order not in (_ORDER_F, _ORDER_C):
        raise _CorruptError(f"a grid's order {order!r} is neither 'fa' nor 'la'")
    buffer = _field(grid, "data")
    if not isinstance(buffer, bytes):
        raise _CorruptError("a grid's data is not binary")
    expected = math.prod(shape) * np.dtype(dtype).itemsize
    if len(buffer) != expected:
        raise _CorruptError(
            f"a {dtype} grid of shape {tuple(shape)} needs {expected} bytes but has {len(buffer)}"
        )
    indexes = _field(grid, "indexes")
    if indexes == []:
        indexes = None
    if indexes is not None and (
        not isinstance(indexes, list)
        or len(indexes) != len(shape)
        or not all(isinstance(name, str) for name in indexes)
    ):
        raise _CorruptError(f"a grid's indexes {indexes!r} do not name its {len(shape)} dimensions")
    array = np.ndarray(
        tuple(shape), dtype=np.dtype(dtype), buffer=buffer, order="F" if order == _ORDER_F else "C"
    )
    # libmuscle returns a read-only view on the file's bytes; a writable copy
    # (same memory order) is what a resuming program actually wants.
    return Grid(array.copy(order="K"), indexes)
