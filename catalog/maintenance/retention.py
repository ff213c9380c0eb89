"""Retention policies: which workflow snapshots of a campaign to keep.

A policy only *decides*; :mod:`catalog.maintenance.gc` is the mechanism that
deletes, and it adds the protections no policy can lift (the newest workflow
snapshot of each run, whatever a run resumed from, every snapshot of a
running run). Keeping the two apart means a policy can be tested on plain
values, without a database or files, and the safety rules live in one place.

Policies work on workflow snapshots, not on single ``.pack`` files, because
a workflow snapshot is what one resumes from: keeping one keeps all of its
members, and a file is deleted only when no kept workflow snapshot needs it.

Rules combine as a union (restic's ``forget --keep-*`` works the same way):
a workflow snapshot is kept when any rule keeps it. ``max_size`` is not a
rule but a bound on deleting: with it, gc deletes the candidates oldest
first only until the campaign fits, and without any rule every workflow
snapshot is a candidate.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from catalog.errors import CatalogError


@dataclass(frozen=True)
class WorkflowInfo:
    """What a policy may look at of one workflow snapshot.

    Attributes:
        id: The workflow snapshot's id.
        run_id: Its run.
        sequence: Its place in the order its run's workflow snapshots were found.
        timestamp: Its simulation time (largest finite member timestamp), if any.
        created_at: When the catalog recorded it (its wallclock age).
        all_final: Every member that resumes is a final snapshot (taken at the
            end of a reuse iteration).
    """

    id: int
    run_id: int
    sequence: int
    timestamp: float | None
    created_at: dt.datetime
    all_final: bool = False

    @property
    def newness(self) -> tuple[float, int]:
        """The order "newest" means: simulation time, then order found.

        The same order :meth:`catalog.catalog.Catalog.latest_workflow_snapshot`
        uses, so the workflow snapshot gc protects as a run's newest is the one
        ``muscle-catalog resume --latest`` would pick.
        """
        t = self.timestamp if self.timestamp is not None else -math.inf
        return (t, self.sequence)


def per_run(workflows: Iterable[WorkflowInfo]) -> dict[int, list[WorkflowInfo]]:
    """The workflow snapshots grouped by run, each group oldest first (see ``newness``)."""
    groups: dict[int, list[WorkflowInfo]] = defaultdict(list)
    for workflow in workflows:
        groups[workflow.run_id].append(workflow)
    for group in groups.values():
        group.sort(key=lambda w: w.newness)
    return dict(groups)


class RetentionRule(ABC):
    """One ``--keep-*`` rule: given the workflow snapshots, the ids it keeps."""

    @abstractmethod
    def keep(self, workflows: Sequence[WorkflowInfo], now: dt.datetime) -> set[int]:
        """The ids of the workflow snapshots this rule keeps.

        Args:
            workflows: Every workflow snapshot the policy decides about.
            now: The time to measure ages against (fixed once per gc).
        """

    @abstractmethod
    def describe(self) -> str:
        """The rule as its command-line option, for reports."""

    def keeps_loose(self, recorded_at: dt.datetime, is_final: bool, now: dt.datetime) -> bool:
        """Whether the rule keeps a snapshot that is a member of no workflow snapshot.

        Nothing can resume from such a snapshot, so only rules that make sense
        for a single file keep it: its age (``--keep-within``) and being final
        (``--keep-finals``: a run's last state often forms no workflow snapshot).
        """
        return False


@dataclass(frozen=True)
class KeepLast(RetentionRule):
    """The ``count`` newest workflow snapshots of each run."""

    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise CatalogError(f"--keep-last must be at least 1, not {self.count}")

    def keep(self, workflows: Sequence[WorkflowInfo], now: dt.datetime) -> set[int]:
        """The newest ``count`` of each run."""
        return {w.id for group in per_run(workflows).values() for w in group[-self.count :]}

    def describe(self) -> str:
        """``--keep-last N``."""
        return f"--keep-last {self.count}"


@dataclass(frozen=True)
class KeepEvery(RetentionRule):
    """One workflow snapshot per ``interval`` of simulation time, per run: each interval's newest.

    Intervals are ``[k * interval, (k + 1) * interval)``; workflow snapshots
    without a simulation time (only implicit members) fall in no interval.
    """

    interval: float

    def __post_init__(self) -> None:
        if not (self.interval > 0 and math.isfinite(self.interval)):
            raise CatalogError(f"--keep-every must be a positive time, not {self.interval}")

    def keep(self, workflows: Sequence[WorkflowInfo], now: dt.datetime) -> set[int]:
        """The newest workflow snapshot of each interval of each run."""
        newest: dict[tuple[int, int], WorkflowInfo] = {}
        for workflow in workflows:
            if workflow.timestamp is None or not math.isfinite(workflow.timestamp):
                continue
            bucket = (workflow.run_id, math.floor(workflow.timestamp / self.interval))
            held = newest.get(bucket)
            if held is None or workflow.newness > held.newness:
                newest[bucket] = workflow
        return {w.id for w in newest.values()}

    def describe(self) -> str:
        """``--keep-every T``."""
        return f"--keep-every {self.interval:g}"


@dataclass(frozen=True)
class KeepFinals(RetentionRule):
    """Workflow snapshots whose members are all final snapshots.

    Such a workflow snapshot is every instance at the end of a reuse
    iteration: the state a finished stage of the model ended in, which is
    what one reruns a later stage from.
    """

    def keep(self, workflows: Sequence[WorkflowInfo], now: dt.datetime) -> set[int]:
        """Those whose members are all final."""
        return {w.id for w in workflows if w.all_final}

    def keeps_loose(self, recorded_at: dt.datetime, is_final: bool, now: dt.datetime) -> bool:
        """A final snapshot is kept even when it forms no workflow snapshot."""
        return is_final

    def describe(self) -> str:
        """``--keep-finals``."""
        return "--keep-finals"


@dataclass(frozen=True)
class KeepWithin(RetentionRule):
    """Workflow snapshots recorded within ``duration`` of now (wallclock age)."""

    duration: dt.timedelta

    def keep(self, workflows: Sequence[WorkflowInfo], now: dt.datetime) -> set[int]:
        """Those recorded at or after ``now - duration``."""
        since = now - self.duration
        return {w.id for w in workflows if w.created_at >= since}

    def keeps_loose(self, recorded_at: dt.datetime, is_final: bool, now: dt.datetime) -> bool:
        """A snapshot recorded within the duration is kept."""
        return recorded_at >= now - self.duration

    def describe(self) -> str:
        """``--keep-within D``."""
        return f"--keep-within {format_duration(self.duration)}"


@dataclass(frozen=True)
class RetentionPolicy:
    """Rules combined, plus an optional size bound.

    Attributes:
        rules: The ``--keep-*`` rules; a workflow snapshot any of them keeps is kept.
        max_size: With it, deleting stops as soon as the campaign's present
            snapshots take at most this many bytes (oldest candidates go first).
    """

    rules: tuple[RetentionRule, ...] = field(default_factory=tuple)
    max_size: int | None = None

    def __post_init__(self) -> None:
        if not self.rules and self.max_size is None:
            raise CatalogError(
                "Give at least one retention policy (--keep-last, --keep-every, --keep-finals, "
                "--keep-within or --max-size); gc never deletes by default."
            )
        if self.max_size is not None and self.max_size < 0:
            raise CatalogError(f"--max-size must not be negative, not {self.max_size}")

    def kept(self, workflows: Sequence[WorkflowInfo], now: dt.datetime) -> set[int]:
        """The ids of the workflow snapshots the rules keep (none without rules)."""
        kept: set[int] = set()
        for rule in self.rules:
            kept |= rule.keep(workflows, now)
        return kept

    def keeps_loose(self, recorded_at: dt.datetime, is_final: bool, now: dt.datetime) -> bool:
        """Whether any rule keeps a snapshot that is a member of no workflow snapshot."""
        return any(rule.keeps_loose(recorded_at, is_final, now) for rule in self.rules)

    def describe(self) -> str:
        """The policy as command-line options."""
        parts = [rule.describe() for rule in self.rules]
        if self.max_size is not None:
            parts.append(f"--max-size {format_bytes(self.max_size)}")
        return " ".join(parts)


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:I?B)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from ``500M``, ``10G``, ``1.5T`` or a plain number (binary units, as ``du -h``).

    Raises:
        CatalogError: Not a size.
    """
    match = _SIZE.match(text)
    if match is None:
        raise CatalogError(f"Not a size: {text!r} (use bytes or a unit: 500M, 10G, 1.5T)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])


def parse_duration(text: str) -> dt.timedelta:
    """A duration from ``2d``, ``12h``, ``30m``, ``90s``, ``1w`` or combinations (``1d12h``).

    Raises:
        CatalogError: Not a duration.
    """
    compact = text.strip().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise CatalogError(f"Not a duration: {text!r} (use e.g. 2d, 12h, 30m, 1d12h)")
    return dt.timedelta(seconds=sum(float(n) * _DURATION_UNITS[u.lower()] for n, u in parts))


def format_duration(duration: dt.timedelta) -> str:
    """A duration in the largest whole units, as the options take it: ``2d``, ``36h``."""
    seconds = int(duration.total_seconds())
    for unit, size in sorted(_DURATION_UNITS.items(), key=lambda item: -item[1]):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def format_bytes(size: int) -> str:
    """Bytes for people: ``512 B``, ``1.5 KiB``, ``10.0 GiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
