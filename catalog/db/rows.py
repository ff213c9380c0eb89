"""The column values of a recorded snapshot's rows, for every path that writes them.

A snapshot is recorded as a ``snapshots`` row plus child rows (triggers,
ports, settings). Three paths write them: :mod:`catalog.db.bulk` through
SQLAlchemy (import, the registry, ``Catalog.record_snapshot``),
:mod:`catalog.db.sqlite_recorder` through the stdlib ``sqlite3`` (the
instance side on a SQLite catalog) and :mod:`catalog.db.pg_recorder`
through psycopg (the instance side on PostgreSQL). All take the table
names, column names and values from here, so that they cannot store a
snapshot differently: the NaN split of floats, the settings' JSON, the port
order and counts are decided once; and the recorders build the manager's
metadata from those values (:func:`written_metadata`). Nothing here imports
SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import TYPE_CHECKING, Any

from catalog.db.floats import join_float, split_float
from catalog.enums import SnapshotStatus

if TYPE_CHECKING:  # catalog.snapshot imports numpy and ymmsl, which reading never needs
    from catalog.records import MetadataSnapshot, NewSnapshot
    from catalog.snapshot import Snapshot, SnapshotMetadata

#: The table of snapshot rows.
SNAPSHOTS = "snapshots"
#: The child tables of a snapshot row and their columns, in the order they are inserted.
TRIGGERS = ("snapshot_triggers", ("snapshot_id", "position", "trigger"))
PORTS = ("snapshot_ports", ("snapshot_id", "port", "position", "num_slots", "counts"))
SETTINGS = ("snapshot_settings", ("snapshot_id", "position", "name", "value_json"))
CHILD_TABLES = (TRIGGERS, PORTS, SETTINGS)


#: The columns of a ``snapshots`` row, in the order of :func:`snapshot_values`.
SNAPSHOT_COLUMNS = (
    "run_id",
    "instance",
    "sequence",
    "submission_order",
    "path",
    "snapshot_filename",
    "format_version",
    "size_bytes",
    "sha256",
    "wallclock_time",
    "wallclock_time_nan",
    "timestamp",
    "timestamp_nan",
    "next_timestamp",
    "next_timestamp_nan",
    "is_final_snapshot",
    "is_implicit",
    "status",
    "recorded_at",
    "copied_from_snapshot_id",
)


def snapshot_row(
    run_id: int, stored: str, order: int, new: NewSnapshot, now: dt.datetime
) -> dict[str, Any]:
    """The ``snapshots`` row of a new snapshot, column name -> value (booleans as bool).

    Args:
        run_id: The run it belongs to.
        stored: Its path as stored (see :func:`catalog.location.stored_path`).
        order: Its submission order in the run.
        new: The snapshot.
        now: When it is recorded (UTC).
    """
    values = snapshot_values(run_id, stored, order, new, now)
    return dict(zip(SNAPSHOT_COLUMNS, values, strict=True))


def snapshot_values(
    run_id: int, stored: str, order: int, new: NewSnapshot, now: dt.datetime
) -> tuple[Any, ...]:
    """The ``snapshots`` row of a new snapshot as a tuple in :data:`SNAPSHOT_COLUMNS` order.

    Bulk inserts pass these tuples to the driver as they are (no dict per
    row): floats are Python floats or None, booleans are bools, which every
    driver we support binds as the column's type processors would.
    """
    snapshot = new.snapshot
    message = snapshot.message
    return _row_values(
        (run_id, new.instance, new.sequence, order, stored, new.snapshot_filename),
        snapshot.format_version,
        (new.size_bytes, new.sha256),
        snapshot.wallclock_time,
        None if message is None else (message.timestamp, message.next_timestamp),
        bool(snapshot.is_final_snapshot),
        (str(new.status), now, new.copied_from_snapshot_id),
    )


def _row_values(
    identity: tuple[Any, ...],
    format_version: int,
    file: tuple[int | None, str | None],
    wallclock_time: float,
    times: tuple[float, float | None] | None,
    is_final: bool,
    state: tuple[str, Any, int | None],
) -> tuple[Any, ...]:
    """A ``snapshots`` row in :data:`SNAPSHOT_COLUMNS` order, its floats split for storage.

    The one place that order is written. ``times`` is the message's
    ``(timestamp, next_timestamp)``, or None for an implicit snapshot (no
    message), which stores its NaN timestamp as the flag alone.
    """
    if times is None:
        timestamp, timestamp_nan = None, True  # split_float(NaN)
        next_ts, next_ts_nan = None, False  # split_float(None)
    else:
        timestamp, timestamp_nan = split_float(times[0])
        next_ts, next_ts_nan = split_float(times[1])
    wallclock, wallclock_nan = split_float(wallclock_time)
    return (
        *identity,
        format_version,
        *file,
        wallclock,
        wallclock_nan,
        timestamp,
        timestamp_nan,
        next_ts,
        next_ts_nan,
        is_final,
        times is None,
        *state,
    )


#: The format version of a snapshot rebuilt from metadata (``catalog.snapshot.FORMAT_V1``,
#: not imported: that module imports ymmsl and numpy).
METADATA_FORMAT_VERSION = 1
_MISSING = str(SnapshotStatus.MISSING)


def metadata_values(
    run_id: int, stored: str, order: int, new: MetadataSnapshot, now: Any
) -> tuple[Any, ...]:
    """:func:`snapshot_values` of a snapshot recorded from its metadata alone.

    The values :func:`snapshot_values` gives for the :class:`NewSnapshot` that
    ``catalog.submission.new_snapshot`` builds when the file is not there
    (status ``missing``, no size or digest, the message's timestamps from the
    metadata, none for an implicit snapshot's NaN), straight from the metadata.
    """
    metadata = new.metadata
    implicit = math.isnan(metadata.timestamp)
    return _row_values(
        (run_id, new.instance, new.sequence, order, stored, new.snapshot_filename),
        METADATA_FORMAT_VERSION,
        (None, None),
        metadata.wallclock_time,
        None if implicit else (metadata.timestamp, metadata.next_timestamp),
        bool(metadata.is_final_snapshot),
        (_MISSING, now, None),
    )


def add_metadata_child_rows(
    snapshot_id: int,
    metadata: SnapshotMetadata,
    triggers: list[tuple[Any, ...]],
    ports: list[tuple[Any, ...]],
) -> None:
    """:func:`add_child_rows` of a snapshot recorded from its metadata (it has no settings)."""
    triggers.extend([(snapshot_id, i, t) for i, t in enumerate(metadata.triggers)])
    ports.extend(
        [
            (snapshot_id, port, position, len(slot_counts), counts_json(slot_counts))
            for position, (port, slot_counts) in enumerate(metadata.port_message_counts.items())
        ]
    )


def child_rows(snapshot_id: int, snapshot: Snapshot) -> dict[str, list[tuple[Any, ...]]]:
    """The child rows of a snapshot, per table of :data:`CHILD_TABLES`, in their columns' order.

    Ports keep their position in the counts map, so the port order
    survives the round trip, and their slots' counts as one JSON array.
    """
    triggers: list[tuple[Any, ...]] = []
    ports: list[tuple[Any, ...]] = []
    settings: list[tuple[Any, ...]] = []
    add_child_rows(snapshot_id, snapshot, triggers, ports, settings)
    return {
        TRIGGERS[0]: triggers,
        PORTS[0]: ports,
        SETTINGS[0]: settings,
    }


def add_child_rows(
    snapshot_id: int,
    snapshot: Snapshot,
    triggers: list[tuple[Any, ...]],
    ports: list[tuple[Any, ...]],
    settings: list[tuple[Any, ...]],
) -> None:
    """Append a snapshot's child rows to the lists of its tables (as :func:`child_rows`).

    Bulk inserts collect the rows of thousands of snapshots per table; adding
    to those lists directly saves a dict and three lists per snapshot.
    """
    triggers.extend([(snapshot_id, i, t) for i, t in enumerate(snapshot.triggers)])
    ports.extend(
        [
            (snapshot_id, port, position, len(slot_counts), counts_json(slot_counts))
            for position, (port, slot_counts) in enumerate(snapshot.port_message_counts.items())
        ]
    )
    if snapshot.settings_overlay:
        settings.extend(
            [
                (snapshot_id, i, str(k), settings_json(v))
                for i, (k, v) in enumerate(_settings_items(snapshot))
            ]
        )


#: The range of a message count the catalog stores: MUSCLE3 writes -1 for an
#: unconnected F_INIT port, and the ``port_counts`` view reads counts as 64-bit
#: integers, which every count a real run reaches fits in.
COUNT_MIN, COUNT_MAX = -1, 2**63 - 1


def counts_json(slot_counts: list[int]) -> str:
    """A port's slot counts as stored in ``snapshot_ports.counts``: a compact JSON array.

    Raises:
        ValueError: A count is outside ``COUNT_MIN..COUNT_MAX`` (corrupt
            metadata); the snapshot is refused rather than stored where SQL
            cannot read it.
    """
    if len(slot_counts) == 1:  # most ports: one slot, a plain int within range
        count = slot_counts[0]
        if type(count) is int and COUNT_MIN <= count <= COUNT_MAX:
            return f"[{count}]"
    counts = [int(count) for count in slot_counts]
    if counts and (min(counts) < COUNT_MIN or max(counts) > COUNT_MAX):
        raise ValueError(
            f"a message count of {min(counts) if min(counts) < COUNT_MIN else max(counts)} "
            f"is outside the range a catalog stores ({COUNT_MIN} to 2**63 - 1): the "
            "snapshot's metadata is corrupt"
        )
    return "[" + ",".join(map(str, counts)) + "]"


def _settings_items(snapshot: Snapshot) -> list[tuple[str, Any]]:
    overlay = snapshot.settings_overlay
    if overlay is None:
        return []
    return [(str(k), v) for k, v in overlay.items()]


def settings_json(value: Any) -> str:
    """A settings value as the JSON text stored in ``snapshot_settings.value_json``."""
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value, default=_json_default)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def written_metadata(
    row: dict[str, Any], children: dict[str, list[tuple[Any, ...]]], snapshot_filename: str
) -> SnapshotMetadata:
    """The manager's metadata from the values written, as a read-back record would give it.

    Every recorder gives the manager this rather than reading the new rows
    back: the values are the ones just written, and reading them back would
    cost a save several more statements (round trips, on PostgreSQL).

    The same conversions as :meth:`catalog.records.SnapshotRecord.to_metadata`
    of a record read back: NaN from its flag, a missing wallclock time as 0.
    """
    wallclock = join_float(row["wallclock_time"], row["wallclock_time_nan"])
    timestamp = join_float(row["timestamp"], row["timestamp_nan"])
    counts = {
        port: _counts_of(slot_counts)
        for _sid, port, _position, _num_slots, slot_counts in children[PORTS[0]]
    }
    from catalog.snapshot import SnapshotMetadata

    return SnapshotMetadata(
        triggers=[str(trigger) for _sid, _position, trigger in children[TRIGGERS[0]]],
        wallclock_time=wallclock if wallclock is not None else 0.0,
        timestamp=timestamp if timestamp is not None else math.nan,
        next_timestamp=join_float(row["next_timestamp"], row["next_timestamp_nan"]),
        port_message_counts=counts,
        is_final_snapshot=bool(row["is_final_snapshot"]),
        snapshot_filename=snapshot_filename,
    )


def _counts_of(stored: str) -> list[int]:
    """The slot counts of :func:`counts_json`'s text (``[3,3,2]``), without a JSON parser."""
    inner = stored[1:-1]
    return [int(count) for count in inner.split(",")] if inner else []
