"""A snapshot's data from its record, its id or its file: for notebooks and ``show --data``.

The catalog records metadata only; the data (numpy arrays, grids, whatever
the instance saved) stays in the ``.pack`` file. This module reads it back,
checking on the way that the file is still the one recorded: the sha256 is
computed while the file is read, so the check costs no second read. A file
that is gone, changed or broken is a :class:`~catalog.errors.SnapshotFileError`
naming the file and what to do about it.

It also turns message data into JSON (:func:`data_to_json`) for
``muscle-catalog show --data --json``.

Kept apart from :mod:`catalog.records` because it needs numpy and the codec,
which a records import must not pull in.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from catalog.errors import CatalogError, SnapshotFileError
from catalog.message import ClosePort, Grid, Milestone
from catalog.snapshot import Snapshot
from catalog.store import LoadedFile, load_pack

if TYPE_CHECKING:
    from catalog.catalog import Catalog
    from catalog.records import SnapshotRecord

#: Said when a recorded file is gone; verify marks it, relocate follows a moved run.
_GONE_FIX = (
    "If its run directory was moved, run `muscle-catalog relocate OLD_DIR NEW_DIR`; "
    "`muscle-catalog verify` lists the catalog's files that are gone or changed "
    "(and `verify --fix` marks them)."
)


def load_record_file(record: SnapshotRecord, *, check_sha256: bool = True) -> LoadedFile:
    """Read and decode a recorded snapshot's file.

    Args:
        record: The snapshot's record.
        check_sha256: Refuse a file whose bytes differ from those recorded.

    Raises:
        SnapshotFileError: The file is gone, unreadable or corrupt (the
            message names it and the fix).
        SnapshotChangedError: Its sha256 differs from the recorded one.
        SnapshotTooLargeError: There is not enough memory to decode it.
    """
    path = record.path
    if not path.exists():
        raise SnapshotFileError(
            path,
            f"the file does not exist (snapshot {record.id} of run {record.run!r}, "
            f"status {record.status}). {_GONE_FIX}",
        )
    expected = record.sha256 if check_sha256 else None
    return load_pack(path, expected_sha256=expected)


def load_record(record: SnapshotRecord, *, check_sha256: bool = True) -> Snapshot:
    """The snapshot a record describes, read from its file (see :func:`load_record_file`)."""
    return load_record_file(record, check_sha256=check_sha256).snapshot


def load_snapshot(
    cat: Catalog | None, id_or_path: int | str | Path, *, check_sha256: bool = True
) -> Snapshot:
    """Read a snapshot by catalog id, or from a ``.pack`` file recorded or not.

    Args:
        cat: The catalog; may be None when a path is given.
        id_or_path: A snapshot id (int), or the path of a ``.pack`` file.
            A path the catalog records is checked against its record.
        check_sha256: Refuse a recorded file whose bytes changed.

    Returns:
        The snapshot: its message (``.message.data``: grids with numpy
        arrays, dicts, lists, ...), settings overlay and counts.

    Raises:
        CatalogError: No snapshot has that id, or an id was given without a catalog.
        SnapshotFileError: The file is gone, unreadable, corrupt or changed.
    """
    if isinstance(id_or_path, bool) or not isinstance(id_or_path, int | str | Path):
        raise TypeError(f"Expected a snapshot id or a path, got {id_or_path!r}")
    if isinstance(id_or_path, int):
        if cat is None:
            raise CatalogError(
                f"Snapshot id {id_or_path} needs a catalog: pass the catalog, or a .pack path."
            )
        return load_record(cat.snapshot(id_or_path), check_sha256=check_sha256)
    path = Path(id_or_path)
    record = cat.snapshot_by_path(path) if cat is not None else None
    if record is not None:
        return load_record(record, check_sha256=check_sha256)
    return load_pack(path).snapshot


# --------------------------------------------------------------------------- JSON


#: What :func:`data_to_json` cannot represent exactly, for the notes it returns.
NOTE_NON_FINITE = "non-finite floats (NaN, Infinity) are written as null"
NOTE_KEYS = "map keys that are not strings are written as their str()"


def data_to_json(data: Any) -> tuple[Any, list[str]]:
    """Message data as a JSON-compatible value, and notes on what JSON could not hold.

    The mapping, chosen so that a script can rebuild the data:

    * None, bool, int and str as themselves; finite floats as numbers,
      non-finite ones (NaN, Infinity) as null;
    * lists (and tuples) as lists; maps as objects (non-string keys as their
      ``str()``);
    * a numpy array as ``{"dtype", "shape", "order", "values"}`` with the
      values as nested lists (C order, whatever the memory order);
    * a :class:`~catalog.message.Grid` as ``{"grid": {"array": <array>,
      "indexes": [...] or null}}``;
    * bytes as ``{"bytes_base64": "..."}``;
    * ClosePort as ``{"close_port": true}``, a Milestone as
      ``{"milestone": [iteration...]}``, Settings as ``{"settings": {...}}``;
    * anything else (unknown msgpack ext types) as ``{"unsupported": type name}``.

    Returns:
        The JSON value and the notes (empty when the mapping was exact).
    """
    notes: list[str] = []
    return _to_json(data, notes), notes


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


def _float(value: float, notes: list[str]) -> float | None:
    if math.isfinite(value):
        return value
    _note(notes, NOTE_NON_FINITE)
    return None


def _to_json(data: Any, notes: list[str]) -> Any:
    if data is None or isinstance(data, bool | int | str):
        return data
    if isinstance(data, float):
        return _float(data, notes)
    if isinstance(data, Grid) or (hasattr(data, "array") and hasattr(data, "indexes")):
        return {"grid": {"array": _array(data.array, notes), "indexes": data.indexes}}
    if isinstance(data, np.ndarray):
        return _array(data, notes)
    if isinstance(data, np.generic):
        return _to_json(data.item(), notes)
    if isinstance(data, bytes | bytearray):
        return {"bytes_base64": base64.b64encode(bytes(data)).decode("ascii")}
    if isinstance(data, list | tuple):
        return [_to_json(item, notes) for item in data]
    if isinstance(data, dict):
        converted = {}
        for key, value in data.items():
            if not isinstance(key, str):
                _note(notes, NOTE_KEYS)
            converted[str(key)] = _to_json(value, notes)
        return converted
    if isinstance(data, ClosePort):
        return {"close_port": True}
    if isinstance(data, Milestone):
        return {"milestone": list(data.iteration)}
    if hasattr(data, "as_ordered_dict"):  # ymmsl Settings
        return {"settings": _to_json(dict(data.as_ordered_dict()), notes)}
    name = type(data).__name__
    _note(notes, f"values of type {name} are left out (written as {{'unsupported': {name!r}}})")
    return {"unsupported": name}


def _array(array: np.ndarray[Any, Any], notes: list[str]) -> dict[str, Any]:
    values: Any
    if array.dtype.kind == "f" and not bool(np.isfinite(array).all()):
        _note(notes, NOTE_NON_FINITE)
        boxed = array.astype(object)
        boxed[~np.isfinite(array)] = None
        values = boxed.tolist()
    else:
        values = array.tolist()
    return {
        "dtype": str(array.dtype),
        "shape": list(array.shape),
        "order": "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C",
        "values": values,
    }
