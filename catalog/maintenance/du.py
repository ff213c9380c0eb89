"""Disk usage: how many snapshots, and how many bytes, per run or per instance.

Counted from the recorded sizes, not from the filesystem, so that it is
instant on a campaign of millions of files and works for a PostgreSQL catalog
whose files live on another machine. ``deleted`` rows are counted apart, so
that one sees both what the campaign takes now and what gc has freed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select

from catalog.catalog import Catalog
from catalog.db.schema import Run, SnapshotRow
from catalog.enums import SnapshotStatus

#: What ``du`` groups by.
Grouping = Literal["run", "instance"]


@dataclass(frozen=True)
class Usage:
    """Snapshot counts and bytes of one group (a run, or an instance across the runs).

    Attributes:
        key: The run's or the instance's name.
        present: How many snapshots are ``present``.
        present_bytes: Their recorded bytes.
        deleted: How many are ``deleted`` (by gc).
        deleted_bytes: The bytes they took.
        other: How many are ``missing`` or ``corrupt``.
        other_bytes: Their recorded bytes.
    """

    key: str
    present: int = 0
    present_bytes: int = 0
    deleted: int = 0
    deleted_bytes: int = 0
    other: int = 0
    other_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``du --json`` prints for this group."""
        return {
            "key": self.key,
            "present": self.present,
            "present_bytes": self.present_bytes,
            "deleted": self.deleted,
            "deleted_bytes": self.deleted_bytes,
            "missing_or_corrupt": self.other,
            "missing_or_corrupt_bytes": self.other_bytes,
        }


def disk_usage(catalog: Catalog, by: Grouping = "run") -> list[Usage]:
    """Counts and bytes per run (in run order) or per instance (by name).

    Args:
        catalog: The catalog.
        by: ``run`` or ``instance``.

    Returns:
        One :class:`Usage` per group; see :func:`total` for the campaign's.
    """
    if by == "run":
        key: Any = Run.name
        order: Any = Run.id
        query = select(Run.id, key, SnapshotRow.status, func.count(SnapshotRow.id))
        query = query.outerjoin(SnapshotRow, SnapshotRow.run_id == Run.id)
    else:
        key = order = SnapshotRow.instance
        query = select(key, key, SnapshotRow.status, func.count(SnapshotRow.id))
    query = query.add_columns(func.coalesce(func.sum(SnapshotRow.size_bytes), 0)).group_by(
        order, key, SnapshotRow.status
    )
    groups: dict[Any, dict[str, Any]] = {}
    with catalog.read_session() as session:
        for group, name, status, count, size in session.execute(query):
            fields = groups.setdefault(group, {"key": str(name)})
            if status is None:  # a run without snapshots
                continue
            prefix = (
                status if status in (SnapshotStatus.PRESENT, SnapshotStatus.DELETED) else "other"
            )
            fields[prefix] = fields.get(prefix, 0) + int(count)
            fields[f"{prefix}_bytes"] = fields.get(f"{prefix}_bytes", 0) + int(size)
    return [Usage(**groups[group]) for group in sorted(groups)]


def total(usages: Sequence[Usage]) -> Usage:
    """The sum of the groups: the whole campaign."""
    return Usage(
        key="total",
        present=sum(u.present for u in usages),
        present_bytes=sum(u.present_bytes for u in usages),
        deleted=sum(u.deleted for u in usages),
        deleted_bytes=sum(u.deleted_bytes for u in usages),
        other=sum(u.other for u in usages),
        other_bytes=sum(u.other_bytes for u in usages),
    )
