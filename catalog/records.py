"""Typed records: what the catalog is given to record, and what its queries give back.

Write inputs (:class:`NewSnapshot`, :class:`NewWorkflowSnapshot`) say what to
record; read results (:class:`RunRecord`, :class:`SnapshotRecord`,
:class:`WorkflowSnapshotRecord`) are what queries return, with their JSON
forms. All are plain frozen dataclasses detached from the database session, so
a notebook can keep them, compare them and turn a list of them into a pandas
DataFrame without holding a connection open.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from catalog.enums import RunStatus, SnapshotStatus, Source, WorkflowStatus

if TYPE_CHECKING:
    # Imported where used: catalog.snapshot imports numpy and ymmsl, which
    # listing runs and snapshots (every query, every command) does not need.
    from catalog.snapshot import Snapshot, SnapshotMetadata

T = TypeVar("T")


# --------------------------------------------------------------------------- write inputs


@dataclass(frozen=True)
class NewSnapshot:
    """Everything needed to record one snapshot file.

    Attributes:
        instance: The instance that saved it.
        path: Where the file is (absolute).
        snapshot_filename: The name as submitted to the manager.
        snapshot: Its decoded content (only metadata is recorded).
        size_bytes: File size.
        sha256: Hex digest of the file's bytes.
        sequence: The number in the file name, if it follows MUSCLE3's naming.
        status: ``present``, or ``missing`` when only the metadata reached us
            (a submission whose file could not be read).
        copied_from_snapshot_id: For the copy a resumed instance makes of the
            snapshot it resumed from: that snapshot's id.
    """

    instance: str
    path: Path
    snapshot_filename: str
    snapshot: Snapshot
    size_bytes: int | None
    sha256: str | None
    sequence: int | None = None
    status: SnapshotStatus = SnapshotStatus.PRESENT
    copied_from_snapshot_id: int | None = None


class MetadataSnapshot(NamedTuple):
    """A snapshot to record from its submitted metadata alone: its file was not there to read.

    What :func:`catalog.submission.new_snapshot` describes as a
    :class:`NewSnapshot` with ``status`` ``missing`` and a snapshot rebuilt
    from the metadata, stored identically (a test holds the two together),
    without building that snapshot: the registry records thousands of
    these per batch when instances do not record their own.

    Attributes:
        instance: The instance that submitted it.
        path: Where the file should be (absolute).
        snapshot_filename: The name as submitted to the manager.
        metadata: The submitted metadata (not changed afterwards).
        sequence: The number in the file name, if it follows MUSCLE3's naming.
    """

    instance: str
    path: str
    snapshot_filename: str
    metadata: SnapshotMetadata
    sequence: int | None


@dataclass(frozen=True)
class NewWorkflowSnapshot:
    """A workflow snapshot to record.

    Attributes:
        members: Instance -> snapshot id, or None where the instance restarts.
        description: The description text of its resume file.
        completed_by_snapshot_id: The snapshot whose submission completed it.
        resume_file: The resume file written for it, if any.
        source: Who found it.
    """

    members: dict[str, int | None]
    description: str
    completed_by_snapshot_id: int | None = None
    resume_file: Path | None = None
    source: Source = Source.REGISTRY


# --------------------------------------------------------------------------- read results


@dataclass(frozen=True)
class RecordedSnapshot:
    """What recording one snapshot gives back, from the values written (nothing read back).

    Attributes:
        snapshot_id: The new row's id.
        submission_order: Its submission order in its run.
        metadata: The metadata for MUSCLE3's manager, equal to
            ``to_metadata()`` of the record read back.
    """

    snapshot_id: int
    submission_order: int
    metadata: SnapshotMetadata


@dataclass(frozen=True)
class RunRecord:
    """One run of the campaign.

    Attributes:
        id: Catalog id.
        name: Short name (by default the run directory's name).
        run_dir: The run directory, absolute.
        model_name: The yMMSL model's name, if known.
        source: ``live`` (recorded while running), ``import`` or ``watch``.
        created_at: When the run was first recorded (when it started, for runs
            recorded live).
        finished_at: When it ended, if that is known.
        resumed_from_run_id: The run whose snapshots this run resumed from.
        num_snapshots: How many snapshots the catalog holds for it.
        status: ``running``, ``finished``, ``failed`` or ``unknown``.
        resumed_from_workflow_snapshot_id: The workflow snapshot (of the run
            it resumed from) this run started from, if known.
        num_workflow_snapshots: How many workflow snapshots it has.
        first_timestamp: The earliest simulation time of its snapshots (None
            if it has none with a simulation time).
        last_timestamp: The latest simulation time of its snapshots.
        size_bytes: The total size of its snapshot files when recorded.
    """

    id: int
    name: str
    run_dir: Path
    model_name: str | None
    source: Source
    created_at: dt.datetime
    finished_at: dt.datetime | None
    resumed_from_run_id: int | None
    num_snapshots: int
    status: RunStatus = RunStatus.UNKNOWN
    resumed_from_workflow_snapshot_id: int | None = None
    num_workflow_snapshots: int = 0
    first_timestamp: float | None = None
    last_timestamp: float | None = None
    size_bytes: int = 0


@dataclass(frozen=True)
class RunSummary:
    """One run at a glance (:meth:`catalog.catalog.Catalog.run_summary`).

    Attributes:
        run: The run's record: dates, status, simulation-time span, counts, bytes.
        snapshots_per_instance: Instance -> how many snapshots it saved, in
            MUSCLE3's instance order.
        snapshots_per_status: Status -> how many snapshots have it.
    """

    run: RunRecord
    snapshots_per_instance: dict[str, int]
    snapshots_per_status: dict[SnapshotStatus, int]


@dataclass(frozen=True)
class SnapshotRecord:
    """One recorded snapshot (one ``.pack`` file) with all of its metadata.

    Attributes:
        id: Catalog id.
        run: The run's name.
        run_id: The run's catalog id.
        instance: The instance that saved it, e.g. ``micro[3]``.
        sequence: The number in its file name (``micro-3_<n>.pack``), if any.
        submission_order: Its place in the order the run recorded snapshots.
        path: Where the file is, absolute.
        snapshot_filename: The file name as submitted to the manager.
        format_version: 1 (MUSCLE3 0.7-0.10) or 2 (0.11).
        size_bytes: File size when recorded.
        sha256: Hex digest of the file's bytes when recorded.
        triggers: Why it was taken.
        wallclock_time: Seconds since the manager started.
        timestamp: Simulation time; NaN for implicit snapshots.
        next_timestamp: The message's next timestamp, if any.
        port_message_counts: Per-port, per-slot message counts.
        is_final_snapshot: Taken at the end of a reuse iteration.
        is_implicit: Has no message (a stateless instance's snapshot).
        settings_overlay: The settings overlay when it was taken.
        status: ``present``, ``missing``, ``corrupt`` or ``deleted``.
        recorded_at: When the catalog recorded it.
        copied_from_snapshot_id: The snapshot this one is the resumed copy of.
        status_changed_at: When a status other than ``present`` was recorded.
    """

    id: int
    run: str
    run_id: int
    instance: str
    sequence: int | None
    submission_order: int
    path: Path
    snapshot_filename: str
    format_version: int
    size_bytes: int | None
    sha256: str | None
    triggers: tuple[str, ...]
    wallclock_time: float
    timestamp: float
    next_timestamp: float | None
    port_message_counts: dict[str, list[int]]
    is_final_snapshot: bool
    is_implicit: bool
    settings_overlay: dict[str, Any]
    status: SnapshotStatus
    recorded_at: dt.datetime
    copied_from_snapshot_id: int | None = None
    status_changed_at: dt.datetime | None = None

    def to_metadata(self) -> SnapshotMetadata:
        """The metadata MUSCLE3's manager gets for this snapshot, built from the record."""
        from catalog.snapshot import SnapshotMetadata

        return SnapshotMetadata(
            triggers=list(self.triggers),
            wallclock_time=self.wallclock_time,
            timestamp=self.timestamp,
            next_timestamp=self.next_timestamp,
            port_message_counts={k: list(v) for k, v in self.port_message_counts.items()},
            is_final_snapshot=self.is_final_snapshot,
            snapshot_filename=self.snapshot_filename,
        )

    def load(self, *, check_sha256: bool = True) -> Snapshot:
        """The snapshot, read from its file: message (data as grids/numpy arrays) and settings.

        Args:
            check_sha256: Refuse the file if its bytes are no longer those
                recorded (checked while reading, at no extra cost).

        Raises:
            SnapshotFileError: The file is gone (the message says how to find
                or relocate it), unreadable or corrupt.
            SnapshotChangedError: The file's sha256 differs from the recorded one.
            SnapshotTooLargeError: There is not enough memory to decode it.
        """
        from catalog.snapshot_data import load_record

        return load_record(self, check_sha256=check_sha256)

    def load_data(self, *, check_sha256: bool = True) -> Any:
        """Just the message data (``load().message.data``); None for an implicit snapshot.

        Raises:
            SnapshotFileError: As :meth:`load`.
        """
        message = self.load(check_sha256=check_sha256).message
        return None if message is None else message.data

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``muscle-catalog snapshots --json`` prints for this snapshot."""
        return {
            "id": self.id,
            "run": self.run,
            "run_id": self.run_id,
            "instance": self.instance,
            "path": str(self.path),
            "triggers": list(self.triggers),
            "wallclock_time": json_float(self.wallclock_time),
            "timestamp": json_float(self.timestamp),
            "next_timestamp": json_float(self.next_timestamp),
            "port_message_counts": {k: list(v) for k, v in self.port_message_counts.items()},
            "is_final_snapshot": self.is_final_snapshot,
        }


@dataclass(frozen=True)
class AlternativeWorkflowSnapshot:
    """A workflow snapshot that contains a given snapshot (:func:`catalog.workflows_containing`).

    One of possibly many consistent combinations, found among all of a run's
    snapshots, not only those the registry recorded.

    Attributes:
        rank: 1 for the newest, then in the order found.
        run: The run's name.
        run_id: The run's catalog id.
        timestamp: The largest finite member timestamp (None if there is none).
        members: Instance -> snapshot record, None where the instance restarts.
        member_ids: Instance -> snapshot id, None where the instance restarts.
        workflow_snapshot_id: The recorded workflow snapshot with exactly these
            members, if the catalog has one (``resume --id`` takes it).
    """

    rank: int
    run: str
    run_id: int
    timestamp: float | None
    members: dict[str, SnapshotRecord | None]
    member_ids: dict[str, int | None]
    workflow_snapshot_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``muscle-catalog workflows --containing ID --json`` prints."""
        return {
            "rank": self.rank,
            "run": self.run,
            "run_id": self.run_id,
            "timestamp": json_float(self.timestamp),
            "workflow_snapshot_id": self.workflow_snapshot_id,
            "member_ids": dict(self.member_ids),
            "members": {i: str(s.path) if s else None for i, s in self.members.items()},
        }


def json_float(value: float | None) -> float | str | None:
    """A float as JSON allows it: NaN and infinities become ``"NaN"``, ``"Infinity"``, ...

    These are the spellings MUSCLE3's own tooling and the fixtures use, and
    strict JSON parsers (jq, JavaScript) reject bare ``NaN``.
    """
    if value is None:
        return None
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


class RecordList(list[T], Generic[T]):
    """A list of records that can become a pandas DataFrame."""

    def to_dataframe(self) -> Any:
        """One row per record, one column per field (needs the ``pandas`` extra).

        Raises:
            ImportError: pandas is not installed; the message says how to get it.
        """
        pd = import_pandas()
        rows = [_row(record) for record in self]
        return pd.DataFrame(rows)


def import_pandas() -> Any:
    """pandas, imported where a DataFrame is asked for, or an ImportError naming the extra."""
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "DataFrames need pandas: pip install 'muscle-snapshot-catalog[pandas]'"
        ) from exc
    return pd


def _row(record: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    raise TypeError(f"Not a record: {record!r}")


@dataclass(frozen=True)
class WorkflowSnapshotRecord:
    """A recorded resume point: one snapshot per instance, or a fresh start.

    Attributes:
        id: Catalog id.
        run: The run's name.
        run_id: The run's catalog id.
        sequence: Its place in the order the run's workflow snapshots were found.
        members: Instance -> snapshot file (as submitted), None where the
            instance restarts from scratch; in MUSCLE3's instance order.
        member_ids: Instance -> snapshot id, None for a fresh start.
        completed_by: The snapshot file whose submission completed it, if known.
        timestamp: Its simulation time: the largest finite member timestamp,
            so "at or before T" means every member is at or before T.
        description: The description MUSCLE3 writes into the resume file.
        resume_file: The ``snapshot_*.ymmsl`` written or imported for it.
        source: ``registry``, ``import``, ``reindex`` or ``watch``.
        created_at: When it was recorded.
        status: ``resumable``, or ``unresumable`` once a member was found
            missing, corrupt or deleted.
    """

    id: int
    run: str
    run_id: int
    sequence: int
    members: dict[str, str | None]
    member_ids: dict[str, int | None]
    completed_by: str | None
    timestamp: float | None
    description: str
    resume_file: Path | None
    source: Source
    created_at: dt.datetime
    status: WorkflowStatus = WorkflowStatus.RESUMABLE

    @property
    def resume(self) -> dict[str, str]:
        """Instance -> snapshot file for the instances that resume (non-null members)."""
        return {k: v for k, v in self.members.items() if v is not None}

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``muscle-catalog workflows --json`` prints."""
        return {
            "id": self.id,
            "run": self.run,
            "sequence": self.sequence,
            "timestamp": json_float(self.timestamp),
            "members": dict(self.members),
            "resume": self.resume,
            "completed_by": self.completed_by,
            "resume_file": str(self.resume_file) if self.resume_file else None,
            "source": self.source,
            "description": self.description,
        }
