"""The ``.pack`` codec: MUSCLE3's snapshot bytes, read and written in both versions.

A ``.pack`` file is one version byte followed by one msgpack map. Version 1
(``b"1"``) is what MUSCLE3 0.7-0.10 write and read; version 2 (``b"2"``) is
MUSCLE3 0.11's, which moved the port counts into a ``communicator_state``.
Each MUSCLE3 release reads only its own version, so we write each byte for
byte as that release does (version 1 as MUSCLE3 0.10, version 2 as 0.11):
a run can then be resumed by MUSCLE3 from files we wrote and vice versa. We
read both, so that a catalog can index any run directory.

The instance's message is stored as an encoded MUSCLE3 wire message (an
"MPP message") inside the map, with numpy arrays, settings and port markers
as msgpack ext types. The ext type numbers and the map key order are part of
the format; see ``docs/muscle3-formats.md``.

Unlike MUSCLE3, every way a file can be broken (empty, truncated, a flipped
bit, a field of the wrong type, an unknown version) ends in one error type,
:class:`~catalog.errors.SnapshotFileError`, naming the file and the problem.
"""

from __future__ import annotations

import itertools
import math
import mmap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
from ymmsl import Settings

from catalog import msgpack_spans as spans
from catalog.errors import SnapshotFileError, SnapshotTooLargeError, SnapshotWriteError
from catalog.message import ClosePort, Grid, Message, Milestone
from catalog.snapshot import FORMAT_V1, FORMAT_V2, Snapshot

#: First byte of a version 1 file (MUSCLE3 0.7-0.10).
VERSION_BYTE_V1 = b"1"
#: First byte of a version 2 file (MUSCLE3 0.11).
VERSION_BYTE_V2 = b"2"

_VERSION_BYTES = {VERSION_BYTE_V1: FORMAT_V1, VERSION_BYTE_V2: FORMAT_V2}
_VERSION_BYTE_OF = {version: byte for byte, version in _VERSION_BYTES.items()}

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


# --------------------------------------------------------------------------- value classes


@dataclass(frozen=True)
class PayloadTypes:
    """The classes a message's grids and port markers are read into, and accepted from.

    msgpack stores plain values by itself; grids and MUSCLE3's port markers
    are ext types, and which Python classes stand for them is the caller's
    choice. By default they are this package's own (:mod:`catalog.message`).
    Inside MUSCLE3, :mod:`catalog.muscle3` passes libmuscle's classes
    instead: the encoder then stores a program's ``libmuscle.Grid`` as it is,
    without walking or copying the program's state, and the decoder hands
    back ``libmuscle.Grid`` objects the program can send on a port again.

    The encoder always accepts this package's classes as well, so a family
    only adds to what can be written.

    Attributes:
        grid: Called as ``grid(array, indexes)``; its instances have
            ``.array`` (a numpy array) and ``.indexes`` (list of str or None).
        close_port: Called with no arguments; ext type 0 of version 1 files.
            None when the family has none (MUSCLE3 0.11).
        milestone: Called as ``milestone(iteration)``, has ``.iteration``;
            ext type 0 of version 2 files. None when the family has none
            (MUSCLE3 0.10).
    """

    grid: type[Any] = Grid
    close_port: type[Any] | None = ClosePort
    milestone: type[Any] | None = Milestone


#: This package's own classes (:mod:`catalog.message`), the default everywhere.
CATALOG_TYPES = PayloadTypes()


def _classes(ours: type[Any], theirs: type[Any] | None) -> tuple[type[Any], ...]:
    return (ours,) if theirs is None or theirs is ours else (ours, theirs)


# --------------------------------------------------------------------------- writing


def encode_snapshot(snapshot: Snapshot, types: PayloadTypes = CATALOG_TYPES) -> bytes:
    """Encode a snapshot as a ``.pack`` file, byte-identical to what MUSCLE3 writes.

    Version 1 is MUSCLE3 0.10's file, version 2 MUSCLE3 0.11's; each is
    written byte for byte as that release writes it for the same state, so
    that either side can resume from the other's files.

    Args:
        snapshot: What to store. Its ``format_version`` picks the format.
            Version 2 also needs ``communicator_state`` (what MUSCLE3 0.11's
            ``CommunicatorState.asdict()`` gives), which is written as given;
            its ``port_message_counts`` are the counts, and the snapshot's own
            ``port_message_counts`` are not written.
        types: Classes accepted in the message data besides this package's
            own (see :class:`PayloadTypes`).

    Returns:
        The complete file content, version byte included.

    Raises:
        SnapshotWriteError: The message holds something MUSCLE3 cannot store
            (an unsupported numpy dtype, a port marker of the other format, an
            arbitrary object), or a version 2 snapshot has no communicator state.
    """
    version = snapshot.format_version
    if version not in (FORMAT_V1, FORMAT_V2):
        raise SnapshotWriteError(f"Cannot write snapshot format version {version}: only 1 and 2")
    body: dict[str, Any] = {
        "triggers": list(snapshot.triggers),
        "wallclock_time": float(snapshot.wallclock_time),
    }
    if version == FORMAT_V1:
        body["port_message_counts"] = {
            port: [int(count) for count in counts]
            for port, counts in snapshot.port_message_counts.items()
        }
    body["is_final_snapshot"] = bool(snapshot.is_final_snapshot)
    body["message"] = (
        b"" if snapshot.message is None else _encode_message(snapshot.message, version, types)
    )
    body["settings_overlay"] = _settings_dict(snapshot.settings_overlay)
    if version == FORMAT_V2:
        if snapshot.communicator_state is None:
            raise SnapshotWriteError(
                "A version 2 (MUSCLE3 0.11) snapshot needs its communicator_state; "
                "pass the instance's CommunicatorState.asdict()"
            )
        body["communicator_state"] = snapshot.communicator_state
    try:
        encoded: bytes = msgpack.packb(body, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise SnapshotWriteError(f"Cannot encode the snapshot: {exc}") from exc
    return _VERSION_BYTE_OF[version] + encoded


def _settings_dict(settings: Settings | Mapping[str, Any] | None) -> dict[str, Any]:
    if settings is None:
        return {}
    if isinstance(settings, Settings):
        return dict(settings.as_ordered_dict())
    return dict(settings)


def _encode_message(message: Message, version: int, types: PayloadTypes) -> bytes:
    """Encode a message as MUSCLE3's ``MPPMessage(...).encoded()`` does for snapshots.

    The two MPP versions differ only in their last keys: version 1 (MUSCLE3
    0.10) has ``saved_until`` before ``data``, version 2 (0.11) has an empty
    ``iteration`` after it.
    """
    mpp: dict[str, Any] = {
        "sender": "_",
        "receiver": "_",
        "port_length": None,
        "timestamp": float(message.timestamp),
        "next_timestamp": (
            None if message.next_timestamp is None else float(message.next_timestamp)
        ),
        "settings_overlay": _settings_ext(message.settings or Settings()),
        "message_number": 0,
    }
    if version == FORMAT_V1:
        mpp["saved_until"] = -1.0
    mpp["data"] = message.data
    if version == FORMAT_V2:
        mpp["iteration"] = []
    try:
        encoded: bytes = msgpack.packb(mpp, default=_ExtEncoder(version, types), use_bin_type=True)
    except SnapshotWriteError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise SnapshotWriteError(f"Cannot encode the snapshot's message data: {exc}") from exc
    return encoded


def _settings_ext(settings: Settings) -> msgpack.ExtType:
    return msgpack.ExtType(EXT_SETTINGS, msgpack.packb(_settings_dict(settings), use_bin_type=True))


class _ExtEncoder:
    """Msgpack ``default`` hook: the values MUSCLE3 stores as ext types, for one format."""

    def __init__(self, version: int, types: PayloadTypes) -> None:
        self._version = version
        self._grids = _classes(Grid, types.grid)
        self._close_ports = _classes(ClosePort, types.close_port)
        self._milestones = _classes(Milestone, types.milestone)

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, Settings):
            return _settings_ext(obj)
        if isinstance(obj, self._grids):
            return _grid_ext(obj.array, obj.indexes)
        if isinstance(obj, np.ndarray):
            return _grid_ext(obj, None)
        if isinstance(obj, np.generic):
            # numpy scalars (np.int64(3)) are a common slip; MUSCLE3 refuses them,
            # we store the equivalent Python value, which MUSCLE3 reads back fine.
            return obj.item()
        if isinstance(obj, self._close_ports):
            if self._version == FORMAT_V1:
                return msgpack.ExtType(EXT_CLOSE_PORT_OR_MILESTONE, b"")
            raise SnapshotWriteError(
                "Cannot store a ClosePort in a version 2 snapshot: MUSCLE3 0.11 has Milestone "
                "instead"
            )
        if isinstance(obj, self._milestones):
            if self._version == FORMAT_V2:
                iteration = msgpack.packb(obj.iteration, use_bin_type=True)
                return msgpack.ExtType(EXT_CLOSE_PORT_OR_MILESTONE, iteration)
            raise SnapshotWriteError(
                "Cannot store a Milestone in a version 1 snapshot: it exists only in MUSCLE3 0.11 "
                "files"
            )
        raise SnapshotWriteError(
            f"Cannot store a value of type {type(obj).__name__} in a snapshot. Supported are "
            "None, bool, int, float, str, bytes, lists, dicts, numpy arrays, Grid and Settings."
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

#: Maps and lists in message data with at most this many entries are walked
#: here, so that the grids inside them are copied straight from the file's
#: buffer into their arrays; larger ones go to msgpack's C decoder, which is far
#: faster on long lists of numbers (a grid inside one costs one more copy).
_WALK_LIMIT = 1024
#: Data smaller than this is decoded by msgpack in one call (walking it here
#: would only be slower); the in-place decoding is for large data.
_IN_PLACE_MIN = 1 << 16

_Buffer = bytes | bytearray | memoryview | mmap.mmap


class _CorruptError(Exception):
    """Internal: a structural problem found while decoding, turned into SnapshotFileError."""


def decode_snapshot(
    data: _Buffer,
    source: _PathLike,
    types: PayloadTypes = CATALOG_TYPES,
    *,
    with_data: bool = True,
) -> Snapshot:
    """Decode the bytes of a version 1 or version 2 ``.pack`` file.

    A large file (64 KiB or more) is read in place, with the value headers
    located by :mod:`catalog.msgpack_spans`: a grid's data is copied once,
    from ``data`` into its array, so decoding needs about twice the file's
    size in memory (the file and its arrays), not the five copies that
    decoding each nested level with msgpack would make. A small file is
    decoded by msgpack in one call, which is faster and whose copies cost
    nothing; both ways give the same result and the same errors.

    Args:
        data: The whole file (bytes, or a bytearray/memoryview/mmap of it).
        source: Where the bytes came from, named in errors.
        types: The classes to build grids and port markers of (see
            :class:`PayloadTypes`); this package's own by default.
        with_data: False to skip the message's data: the snapshot's message
            then has its timestamps and settings but ``data`` None. This
            reads only the metadata (what a catalog records), at a cost that
            does not grow with the size of the data, and does not check the
            data for corruption.

    Returns:
        The snapshot. Bare numpy arrays come back as grids (``types.grid``),
        as libmuscle returns them; their arrays are writable and own their memory.

    Raises:
        SnapshotFileError: The bytes are not a valid snapshot: unknown version
            byte, truncated, corrupt, or with missing or mistyped fields.
        SnapshotTooLargeError: There was not enough memory to decode it.
    """
    view = memoryview(data)
    version = _VERSION_BYTES.get(bytes(view[:1]))
    if version is None:
        raise SnapshotFileError(source, _UNKNOWN_VERSION.format(byte=bytes(view[:1])))
    try:
        return _decode_body(view, version, types, with_data)
    except MemoryError:
        raise SnapshotTooLargeError(source, len(view)) from None
    except _CorruptError as exc:
        raise SnapshotFileError(source, f"{exc} (format version {version})") from None
    except spans.TruncatedError:
        raise SnapshotFileError(
            source,
            "corrupt snapshot data: the file is truncated (incomplete msgpack data) "
            f"(format version {version})",
        ) from None
    except msgpack.ExtraData:
        raise SnapshotFileError(
            source, f"unexpected bytes after the snapshot data (format version {version})"
        ) from None
    except (spans.InvalidByteError, ValueError, msgpack.UnpackException) as exc:
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


def _unpack(data: _Buffer, ext_hook: Callable[[int, bytes], Any] | None = None) -> Any:
    if ext_hook is None:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=ext_hook)


class _SpanMap(Mapping[Any, Any]):
    """A msgpack map inside a buffer whose values are decoded only when asked for.

    Keys are decoded up front (they are short); values stay where they are,
    so a large value is never copied unless it is looked at.
    """

    def __init__(
        self,
        view: memoryview,
        start: int,
        end: int,
        what: str,
        ext_hook: Callable[[int, bytes], Any] | None = None,
    ) -> None:
        found = spans.head(view, start, end)
        if found.kind != spans.MAP:
            raise _CorruptError(f"{what} should be a map but is {_kind_name(view, start, end)}")
        self.view = view
        self.ext_hook = ext_hook
        self.spans: dict[Any, tuple[int, int]] = {}
        self.end = found.body
        for key_start, value_start, value_end in spans.entries(view, found, end):
            self.spans[_unpack(view[key_start:value_start])] = (value_start, value_end)
            self.end = value_end

    def __getitem__(self, key: Any) -> Any:
        start, end = self.spans[key]
        return _unpack(self.view[start:end], self.ext_hook)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.spans)

    def __len__(self) -> int:
        return len(self.spans)

    def span(self, key: str) -> tuple[int, int]:
        """Where a field's value is; raises the missing-field error if it is not there."""
        if key not in self.spans:
            raise _CorruptError(f"the field {key!r} is missing")
        return self.spans[key]


def _kind_name(view: memoryview, start: int, end: int) -> str:
    """The Python type name of the value at ``start``, as msgpack would decode it."""
    return type(_unpack(view[start:end])).__name__


def _decode_body(view: memoryview, version: int, types: PayloadTypes, with_data: bool) -> Snapshot:
    """Decode the map after the version byte; the versions differ in where the counts are.

    A small file is decoded by msgpack in one call, which is fastest and
    whose copies cost nothing; a large one in place, value by value.
    """
    top: Mapping[Any, Any]
    if len(view) < _IN_PLACE_MIN:
        top = _expect_map(_unpack(view[1:]), "the snapshot")
    else:
        top = _SpanMap(view, 1, len(view), "the snapshot")
        if top.end != len(view):
            raise _CorruptError("unexpected bytes after the snapshot data")
    counts_in: Mapping[Any, Any] = top
    state = None
    if version == FORMAT_V2:
        state = _expect_map(_field(top, "communicator_state"), "communicator_state")
        counts_in = state
    ext_hook = partial(_ext_hook, version, types)
    return Snapshot(
        triggers=_triggers(top),
        wallclock_time=_number(top, "wallclock_time"),
        port_message_counts=_counts(_field(counts_in, "port_message_counts")),
        is_final_snapshot=_bool(top, "is_final_snapshot"),
        message=_message(view, top, ext_hook, types, with_data),
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


def _message(
    view: memoryview,
    top: Mapping[Any, Any],
    ext_hook: Callable[[int, bytes], Any],
    types: PayloadTypes,
    with_data: bool,
) -> Message | None:
    mpp: Mapping[Any, Any]
    if isinstance(top, _SpanMap):
        start, end = top.span("message")
        found = spans.head(view, start, end)
        if found.kind != spans.BIN:
            raise _CorruptError(
                f"the field 'message' should be binary but is {_kind_name(view, start, end)}"
            )
        if found.length == 0:
            return None  # an implicit snapshot: no state, only counts
        mpp = _SpanMap(view, found.body, found.payload_end, "the message", ext_hook)
        if mpp.end != found.payload_end:
            raise _CorruptError("unexpected bytes after the message")
        data_start, data_end = mpp.span("data")
        data = _data(view, data_start, data_end, ext_hook, types) if with_data else None
    else:
        encoded = _field(top, "message")
        if not isinstance(encoded, bytes):
            raise _CorruptError(
                f"the field 'message' should be binary but is {type(encoded).__name__}"
            )
        if encoded == b"":
            return None
        mpp = _expect_map(_unpack(encoded, ext_hook), "the message")
        data = _field(mpp, "data") if with_data else None
    settings = _field(mpp, "settings_overlay")
    if not isinstance(settings, Settings):
        raise _CorruptError("the message's settings_overlay is not a Settings ext type")
    return Message(
        timestamp=_number(mpp, "timestamp"),
        next_timestamp=_optional_number(mpp, "next_timestamp"),
        data=data,
        settings=settings,
    )


def _data(
    view: memoryview,
    start: int,
    end: int,
    ext_hook: Callable[[int, bytes], Any],
    types: PayloadTypes,
) -> Any:
    """Decode message data in place: grids, and grids in small maps and lists, from ``view``."""
    if end - start < _IN_PLACE_MIN:
        return _unpack(view[start:end], ext_hook)  # copies of small values cost nothing
    found = spans.head(view, start, end)
    if found.kind == spans.EXT and found.ext_code in _GRID_DTYPE_BY_EXT:
        dtype = _GRID_DTYPE_BY_EXT[found.ext_code]
        return _decode_grid(dtype, view[found.body : found.payload_end], types)
    if found.kind == spans.MAP and found.length <= _WALK_LIMIT:
        return {
            _unpack(view[key_start:value_start], ext_hook): _data(
                view, value_start, value_end, ext_hook, types
            )
            for key_start, value_start, value_end in spans.entries(view, found, end)
        }
    if found.kind == spans.ARRAY and found.length <= _WALK_LIMIT:
        starts = spans.items(view, found, end)
        return [_data(view, a, b, ext_hook, types) for a, b in itertools.pairwise(starts)]
    return _unpack(view[start:end], ext_hook)


def _ext_hook(version: int, types: PayloadTypes, code: int, payload: bytes) -> Any:
    """Msgpack ``ext_hook``: ext type 0 is ClosePort in version 1 and Milestone in version 2."""
    if code == EXT_CLOSE_PORT_OR_MILESTONE:
        if version == FORMAT_V1:
            return (types.close_port or ClosePort)()
        iteration = _unpack(payload)
        if not isinstance(iteration, list):
            raise _CorruptError("a Milestone's iteration should be a list")
        return (types.milestone or Milestone)(iteration)
    if code == EXT_SETTINGS:
        return _settings(_unpack(payload), "a Settings value")
    dtype = _GRID_DTYPE_BY_EXT.get(code)
    if dtype is not None:
        return _decode_grid(dtype, memoryview(payload), types)
    # MUSCLE3 hands unknown ext types to the program as-is; so do we.
    return msgpack.ExtType(code, payload)


def _decode_grid(dtype: str, payload: memoryview, types: PayloadTypes) -> Any:
    """A grid from its ext payload, its data copied once: from ``payload`` into the array."""
    grid: Mapping[Any, Any]
    if len(payload) < _IN_PLACE_MIN:
        grid = _expect_map(_unpack(payload), "a grid")
        raw = _field(grid, "data")
        if not isinstance(raw, bytes):
            raise _CorruptError("a grid's data is not binary")
    else:
        grid = _SpanMap(payload, 0, len(payload), "a grid")
        if grid.end != len(payload):
            raise _CorruptError("unexpected bytes after a grid")
        start, end = grid.span("data")
        found = spans.head(payload, start, end)
        if found.kind != spans.BIN:
            raise _CorruptError("a grid's data is not binary")
        raw = payload[found.body : found.payload_end]
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
    expected = math.prod(shape) * np.dtype(dtype).itemsize
    if len(raw) != expected:
        raise _CorruptError(
            f"a {dtype} grid of shape {tuple(shape)} needs {expected} bytes but has {len(raw)}"
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
    in_file = np.frombuffer(raw, dtype=np.dtype(dtype))
    in_file = in_file.reshape(tuple(shape), order="F" if order == _ORDER_F else "C")
    # libmuscle returns a read-only view on the file's bytes; a writable copy
    # (same memory order, aligned, not keeping the file's buffer alive) is
    # what a resuming program actually wants. It is the one copy made.
    return types.grid(in_file.copy(order="K"), indexes)
