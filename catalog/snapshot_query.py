"""What a snapshot query asks for, turned into SQL: filters, instance patterns and ordering.

:meth:`catalog.catalog.Catalog.snapshots`, :meth:`~catalog.catalog.Catalog.iter_snapshots`,
:meth:`~catalog.catalog.Catalog.snapshots_frame` and the ``snapshots`` command
all take the same filters; they are checked and translated here, once, so a
notebook and the command line always select the same rows.

Instance names follow MUSCLE3: a vector instance ``micro`` has elements
``micro[0]``, ``micro[1]``, ... An ``instance`` filter is therefore one of:

* an exact name (``micro[3]``, ``macro``);
* a plain base name (``micro``), which also matches the vector's elements,
  since a user asking for "micro" of a vector run means all of them;
* a pattern with ``*`` (any characters) or ``?`` (one character), such as
  ``micro[*]`` or ``micro*``. Brackets are literal, as in instance names.

Patterns become ``GLOB`` on SQLite and ``LIKE`` on PostgreSQL, both
case-sensitive like instance names (SQLite's ``LIKE`` is not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from catalog.db.schema import SnapshotRow, SnapshotTrigger

#: ``order_by`` names and the columns they sort on (ties by run and submission order).
ORDERINGS: dict[str, tuple[InstrumentedAttribute[Any], ...]] = {
    "submission": (),
    "id": (SnapshotRow.id,),
    "timestamp": (SnapshotRow.timestamp,),
    "wallclock_time": (SnapshotRow.wallclock_time,),
    "recorded_at": (SnapshotRow.recorded_at,),
    "instance": (SnapshotRow.instance,),
    "size_bytes": (SnapshotRow.size_bytes,),
}


class QueryError(ValueError):
    """A query argument that cannot be right (an unknown ordering, a negative limit...)."""


@dataclass(frozen=True)
class SnapshotFilter:
    """The filters of a snapshot query; None means "any".

    Attributes:
        run_id: Only this run.
        instance: An exact instance name, a vector's base name or a pattern
            (see the module docstring).
        final: Only final (True) or only intermediate (False) snapshots.
        after_time: Only snapshots at or after this simulation time.
        before_time: Only snapshots at or before this simulation time.
        trigger: Only snapshots with this trigger (exact, or a ``*``/``?`` pattern).
        limit: At most this many, after ordering.
        order_by: One of :data:`ORDERINGS`, ``-`` in front for descending.
    """

    run_id: int | None = None
    instance: str | None = None
    final: bool | None = None
    after_time: float | None = None
    before_time: float | None = None
    trigger: str | None = None
    limit: int | None = None
    order_by: str = "submission"

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise QueryError(f"limit must be 0 or more, not {self.limit}")
        if self.order_by.removeprefix("-") not in ORDERINGS:
            known = ", ".join(ORDERINGS)
            raise QueryError(
                f"Cannot order snapshots by {self.order_by!r}; choose one of {known} "
                "(with '-' in front for descending)"
            )
        for name in ("after_time", "before_time"):
            value = getattr(self, name)
            if value is not None and math.isnan(value):
                raise QueryError(f"{name} must be a number, not NaN")
        if (
            self.after_time is not None
            and self.before_time is not None
            and self.after_time > self.before_time
        ):
            raise QueryError(
                f"after_time {self.after_time} is later than before_time {self.before_time}: "
                "nothing can match"
            )

    def conditions(self, dialect: str) -> list[ColumnElement[bool]]:
        """The WHERE conditions on ``snapshots`` for a database of this dialect."""
        found: list[ColumnElement[bool]] = []
        if self.run_id is not None:
            found.append(SnapshotRow.run_id == self.run_id)
        if self.instance is not None:
            found.append(instance_condition(self.instance, dialect))
        if self.final is not None:
            found.append(SnapshotRow.is_final_snapshot == self.final)
        if self.after_time is not None:
            found.append(SnapshotRow.timestamp >= self.after_time)
        if self.before_time is not None:
            found.append(SnapshotRow.timestamp <= self.before_time)
        if self.trigger is not None:
            having = select(SnapshotTrigger.snapshot_id).where(
                _matches(SnapshotTrigger.trigger, self.trigger, dialect)
                if is_pattern(self.trigger)
                else SnapshotTrigger.trigger == self.trigger
            )
            found.append(SnapshotRow.id.in_(having))
        return found

    def ordering(self) -> list[ColumnElement[Any]]:
        """The ORDER BY columns: the chosen one, then run and submission order."""
        descending = self.order_by.startswith("-")
        columns: list[ColumnElement[Any]] = []
        for column in ORDERINGS[self.order_by.removeprefix("-")]:
            columns.append(column.desc() if descending else column.asc())
        tail = (SnapshotRow.run_id, SnapshotRow.submission_order)
        columns.extend(c.desc() if descending else c.asc() for c in tail)
        return columns


def is_pattern(text: str) -> bool:
    """Whether a filter value is a pattern (has ``*`` or ``?``)."""
    return "*" in text or "?" in text


def instance_condition(instance: str, dialect: str) -> ColumnElement[bool]:
    """The condition selecting an instance by name, base name or pattern."""
    column = SnapshotRow.instance
    if is_pattern(instance):
        return _matches(column, instance, dialect)
    if "[" in instance:
        return column == instance
    return or_(column == instance, _matches(column, instance + "[*", dialect))


def _matches(column: Any, pattern: str, dialect: str) -> ColumnElement[bool]:
    """A case-sensitive ``*``/``?`` pattern match with literal brackets."""
    if dialect == "sqlite":
        return column.op("GLOB")(pattern.replace("[", "[[]"))  # type: ignore[no-any-return]
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped.replace("*", "%").replace("?", "_"), escape="\\")  # type: ignore[no-any-return]
