"""Snapshot and SnapshotMetadata: one saved instance state and what the manager is told of it.

The fields and their meaning are the seed's (MUSCLE3 0.7-0.10): a snapshot is
the instance's :class:`~catalog.message.Message` plus the bookkeeping needed to
resume it consistently with its peers (per-port message counts, the settings
overlay, whether it was taken at the end of a reuse iteration). MUSCLE3 0.11
keeps the counts inside a larger ``communicator_state``; one class serves both,
with ``format_version`` saying which file it came from or is to become.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ymmsl import Settings

from catalog.message import Message

#: Format version written by MUSCLE3 0.7-0.10 (version byte ``b"1"``).
FORMAT_V1 = 1
#: Format version written by MUSCLE3 0.11 (version byte ``b"2"``).
FORMAT_V2 = 2


@dataclass
class Snapshot:
    """One instance's saved state, as stored in a ``.pack`` file.

    Attributes:
        triggers: Why the snapshot was taken, e.g. ``"simulation_time >= 0.4"``.
        wallclock_time: Seconds since the manager started, when it was taken.
        port_message_counts: Messages sent or received per port, one count per
            slot, including ``muscle_settings_in``.
        is_final_snapshot: True if taken at the end of a reuse iteration.
        message: The instance's state, or None for an implicit snapshot.
        settings_overlay: The instance's settings overlay when it was taken.
        format_version: 1 (MUSCLE3 0.7-0.10) or 2 (0.11): as read from the
            file, or the format to write.
        communicator_state: Version 2 only: MUSCLE3 0.11's communicator state
            as a plain map (``CommunicatorState.asdict()``: the counts, the
            timeline state and the message cache, cached messages as undecoded
            bytes). Its ``port_message_counts`` equal ``port_message_counts``.
    """

    triggers: list[str]
    wallclock_time: float
    port_message_counts: dict[str, list[int]]
    is_final_snapshot: bool
    message: Message | None
    settings_overlay: Settings = field(default_factory=Settings)
    format_version: int = FORMAT_V1
    communicator_state: dict[str, Any] | None = None


@dataclass
class SnapshotMetadata:
    """What an instance submits to the manager about a snapshot it stored.

    Field for field MUSCLE3's ``SnapshotMetadata`` (sent as
    ``dataclasses.asdict``), so registry code written for MUSCLE3 reads it.

    Attributes:
        triggers: Why the snapshot was taken.
        wallclock_time: Seconds since the manager started, when it was taken.
        timestamp: The message's timestamp; NaN for an implicit snapshot.
        next_timestamp: The message's next timestamp, if any.
        port_message_counts: Per-port, per-slot message counts.
        is_final_snapshot: True if taken at the end of a reuse iteration.
        snapshot_filename: Where the ``.pack`` file is, as a string.
    """

    triggers: list[str]
    wallclock_time: float
    timestamp: float
    next_timestamp: float | None
    port_message_counts: dict[str, list[int]]
    is_final_snapshot: bool
    snapshot_filename: str

    @staticmethod
    def from_snapshot(snapshot: Snapshot, snapshot_filename: str) -> SnapshotMetadata:
        """Describe a snapshot the way MUSCLE3 submits it to the manager.

        Args:
            snapshot: The snapshot that was stored.
            snapshot_filename: Where it was stored.

        Returns:
            The metadata; an implicit snapshot (no message) has timestamp NaN.
        """
        message = snapshot.message
        return SnapshotMetadata(
            triggers=list(snapshot.triggers),
            wallclock_time=snapshot.wallclock_time,
            timestamp=message.timestamp if message is not None else math.nan,
            next_timestamp=message.next_timestamp if message is not None else None,
            port_message_counts={k: list(v) for k, v in snapshot.port_message_counts.items()},
            is_final_snapshot=snapshot.is_final_snapshot,
            snapshot_filename=snapshot_filename,
        )

    def to_snapshot(self, *, copy: bool = True) -> Snapshot:
        """The snapshot as far as its metadata tells (the inverse of :meth:`from_snapshot`).

        For recording a submission whose file cannot be read: the message
        keeps its timestamps but no data (none for an implicit snapshot, whose
        timestamp is NaN), and the settings overlay is empty.

        Args:
            copy: Give the snapshot its own triggers and counts. False shares
                them, for metadata nobody changes (the registry's checked
                copy of a submission, recorded thousands at a time).
        """
        message = (
            None if math.isnan(self.timestamp) else Message(self.timestamp, self.next_timestamp)
        )
        if not copy:
            return Snapshot(
                self.triggers,
                self.wallclock_time,
                self.port_message_counts,
                self.is_final_snapshot,
                message,
            )
        return Snapshot(
            triggers=list(self.triggers),
            wallclock_time=self.wallclock_time,
            port_message_counts={k: list(v) for k, v in self.port_message_counts.items()},
            is_final_snapshot=self.is_final_snapshot,
            message=message,
        )
