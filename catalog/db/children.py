"""Reading snapshots' triggers, ports and settings back, with little work per snapshot.

A hundred thousand records have a hundred thousand trigger lists, port maps
and settings overlays, mostly the same few repeated (every instance of one
step has the same trigger, counts and settings). So each child table is read
in one statement, its rows turned into one *key* per snapshot, and each
distinct key is decoded once; building a record is then a few dictionary
lookups, plus copies of what a record must own.

* Triggers and settings, nearly always one per snapshot, are read a row
  per child in position order. When no snapshot has two, the rows make the
  map from snapshot to key at C speed (``dict(rows)``), the key being the
  row's one text; otherwise a snapshot's key is the tuple of its texts. A
  setting's text is its name as a JSON string followed by its stored JSON
  value, so name and value come apart whatever characters the name holds.
* Ports, usually several per snapshot, are aggregated by the database: one
  text per snapshot of JSON arrays written one after the other (positions,
  ports, counts), which costs the database less than handing over a row
  per port. A database aggregates in whatever order it reads the rows, so
  the order is restored from the positions when a text is decoded, not
  assumed.

JSON makes every round trip exact by construction: no separator can collide
with a name. Decoded values are shared between records only where that
cannot be seen: trigger tuples are immutable; each record gets its own
counts lists and its own settings dict, and a value that is not what the
catalog writes (counts that are not a list of integers, a setting that is a
list or an object) is decoded afresh for every record, as a separate read
would give.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from catalog.db.bulk import IN_CHUNK
from catalog.db.fast_read import fetch_all
from catalog.db.schema import SnapshotPort, SnapshotSetting, SnapshotTrigger

#: A snapshot's triggers or settings as read: its one child's text, or its children's texts.
Key = str | tuple[str, ...]
#: Ports of one snapshot: ``(port, counts)`` pairs whose lists each record copies, or, for
#: values that are not the counts the catalog writes, a function decoding them afresh.
Ports = tuple[tuple[str, list[int]], ...] | Callable[[], dict[str, Any]]
#: Settings of one snapshot: ``(name, value)`` pairs of immutable values, or a function
#: decoding them afresh (values that are lists or objects).
Settings = tuple[tuple[str, Any], ...] | Callable[[], dict[str, Any]]

#: Decoded keys kept per kind before the caches start again (bounds a long stream's memory).
CACHE_LIMIT = 10_000
#: JSON values that are safe to share between records: immutable.
_SHAREABLE = (str, int, float, bool, type(None))

_DECODER = json.JSONDecoder()
_WHITESPACE = json.decoder.WHITESPACE  # type: ignore[attr-defined]


class SnapshotChildren:
    """The children of a set of snapshots as keys by snapshot id, and the keys decoded so far.

    A snapshot without children of a kind has no key; the caches give the
    empty value for the missing key None.

    Attributes:
        triggers: Snapshot id -> its triggers' key.
        ports: Snapshot id -> its ports' text.
        settings: Snapshot id -> its settings' key.
        trigger_values: Key -> the triggers (see :func:`decode_triggers`).
        port_values: Text -> the ports (see :func:`decode_ports`).
        setting_values: Key -> the settings (see :func:`decode_settings`).
    """

    def __init__(self) -> None:
        self.triggers: dict[int, Key] = {}
        self.ports: dict[int, str] = {}
        self.settings: dict[int, Key] = {}
        self.trigger_values: dict[Key | None, tuple[str, ...]] = {}
        self.port_values: dict[str | None, Ports] = {}
        self.setting_values: dict[Key | None, Settings] = {}
        self.forget_decoded()

    def forget_decoded(self) -> None:
        """Start the caches of decoded keys again."""
        for cache in (self.trigger_values, self.port_values, self.setting_values):
            cache.clear()
            cache[None] = ()

    def load(self, session: Session, ids: Any) -> None:
        """Read the children of the snapshots ``ids`` in three statements of the session.

        Replaces the keys of the previous load; keeps what was decoded
        unless the caches have grown past :data:`CACHE_LIMIT`.

        Args:
            session: The read session (its transaction is the consistent view).
            ids: A list of ids, a SELECT of ids, a range of ids (children of
                other snapshots in it are read and never looked up), or None
                for every snapshot.
        """
        caches = (self.trigger_values, self.port_values, self.setting_values)
        if max(len(cache) for cache in caches) > CACHE_LIMIT:
            self.forget_decoded()
        postgres = session.connection().dialect.name == "postgresql"
        name = SnapshotSetting.name
        quoted = cast(func.to_json(name), Text) if postgres else func.json_quote(name, type_=Text)
        setting = quoted.concat(SnapshotSetting.value_json)
        self.triggers = _keys(
            _rows(session, ids, SnapshotTrigger, SnapshotTrigger.trigger, False),
        )
        self.settings = _keys(_rows(session, ids, SnapshotSetting, setting, False))
        port_rows: Any = _rows(session, ids, SnapshotPort, _port_arrays(postgres), True)
        self.ports = dict(port_rows)


def _port_arrays(postgres: bool) -> Any:
    """Per snapshot, ``[positions][ports][counts]`` of its ports (to be grouped by snapshot).

    The three aggregates of a group are fed its rows in one order (whatever
    order the database reads them in), so the i-th entries belong together;
    the positions then give the ports' order. No ``ORDER BY`` inside the
    aggregates: PostgreSQL would sort each group three times, which cost
    twice the whole read.
    """

    def array(column: Any) -> Any:
        if postgres:
            return cast(func.json_agg(column), Text)
        return func.json_group_array(column, type_=Text)

    position, port, counts = SnapshotPort.position, SnapshotPort.port, SnapshotPort.counts
    return array(position).concat(array(port)).concat(array(counts))


def _rows(
    session: Session, ids: Any, table: Any, value: Any, grouped: bool
) -> Sequence[Sequence[Any]]:
    """``(snapshot id, value)`` of a child table's rows of the snapshots ``ids``.

    Grouped by snapshot (``value`` an aggregate), or else a row per child in
    snapshot and position order.
    """
    column = table.snapshot_id
    statement = select(column, value)
    if grouped:
        statement = statement.group_by(column)
    else:
        statement = statement.order_by(column, table.position)
    if ids is None:
        return fetch_all(session, statement)
    if isinstance(ids, range):
        return fetch_all(session, statement.where(column.between(ids.start, ids.stop - 1)))
    if not isinstance(ids, list):  # a SELECT of ids
        return fetch_all(session, statement.where(column.in_(ids)))
    rows: list[Sequence[Any]] = []
    for start in range(0, len(ids), IN_CHUNK):  # a few hundred ids per statement
        rows.extend(fetch_all(session, statement.where(column.in_(ids[start : start + IN_CHUNK]))))
    return rows


def _keys(rows: Sequence[Sequence[Any]]) -> dict[int, Key]:
    """Snapshot id -> key, from ``(snapshot id, text)`` rows in snapshot and position order."""
    keys: dict[int, Any] = dict(rows)  # type: ignore[arg-type]
    if len(keys) == len(rows):
        return keys  # one child each: its text is the key
    grouped: dict[int, list[str]] = {}
    for sid, text in rows:
        texts = grouped.get(sid)
        if texts is None:
            grouped[sid] = [text]
        else:
            texts.append(text)
    return {sid: texts[0] if len(texts) == 1 else tuple(texts) for sid, texts in grouped.items()}


def _texts_of(key: Key) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else key


def _arrays(text: str, count: int) -> list[list[Any]]:
    """The ``count`` JSON arrays written one after the other in ``text``, in position order.

    The first array is the positions; the others are given back reordered by
    them, without the positions.

    Raises:
        ValueError: The text is not that (a damaged catalog).
    """
    arrays: list[list[Any]] = []
    end = 0
    for _ in range(count):
        array, end = _DECODER.raw_decode(text, _WHITESPACE.match(text, end).end())
        arrays.append(array)
    positions = arrays[0]
    if end != len(text) or any(len(array) != len(positions) for array in arrays):
        raise ValueError(f"not {count} JSON arrays of one length: {text[:200]!r}")
    order = sorted(range(len(positions)), key=positions.__getitem__)
    return [[array[i] for i in order] for array in arrays[1:]]


def decode_triggers(key: Key) -> tuple[str, ...]:
    """The triggers of a key, in position order."""
    return _texts_of(key)


def decode_ports(text: str) -> Ports:
    """The ports of a text, in position order (see :data:`Ports`)."""
    ports, texts = _arrays(text, 3)
    loads = json.loads
    pairs = tuple((port, loads(counts)) for port, counts in zip(ports, texts, strict=True))
    if all(type(c) is list and all(type(n) is int for n in c) for _port, c in pairs):
        return pairs
    # Not the counts the catalog writes: decoded for each record, as a read of its own would.
    return lambda: {port: loads(counts) for port, counts in zip(ports, texts, strict=True)}


def decode_settings(key: Key) -> Settings:
    """The settings of a key, in position order (see :data:`Settings`)."""
    names: list[str] = []
    values: list[str] = []
    for text in _texts_of(key):
        name, end = _DECODER.raw_decode(text)
        names.append(name)
        values.append(text[end:])
    loads = json.loads
    pairs = tuple((name, loads(value)) for name, value in zip(names, values, strict=True))
    if all(isinstance(value, _SHAREABLE) for _name, value in pairs):
        return pairs
    # A list or object value: each record gets its own, so changing one changes no other.
    return lambda: {name: loads(value) for name, value in zip(names, values, strict=True)}
