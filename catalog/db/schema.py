"""The catalog's tables, as SQLAlchemy 2.x typed models.

Alembic migrations (``migrations/versions``) are what create and change these
tables in a real catalog; the models here describe the head revision so that
queries are typed and so that a test can compare the two.

Design notes:

* Every metadata field of a snapshot is a column or a child table, so a
  notebook can query it in SQL; nothing is kept only as an opaque blob.
* SQLite stores a NaN float as NULL. Timestamps of implicit snapshots are
  NaN, so each float that can be NaN has a ``*_nan`` flag column beside it;
  ``catalog.db.floats`` turns the pair back into the exact Python float.
* Port message counts are one row per port (``snapshot_ports``: its position
  in the map, so the port order survives, its slot count, and its per-slot
  counts as a JSON array). One row per slot made a thousand-slot macro port
  a thousand rows per snapshot; the ``port_counts`` view (revision 0003)
  still gives SQL and notebooks one row per slot.
* Every column holding a value of a fixed vocabulary (:mod:`catalog.enums`)
  has a CHECK constraint listing it, so no program writing to the database
  can store a value the records could not read back. The lists here are
  built from the enums; the migrations spell them out, because a migration
  must not change when an enum grows (a new migration changes the CHECK).
* ``runs.resumed_from_workflow_snapshot_id`` and ``workflow_snapshots.run_id``
  make a foreign-key cycle; the former is created with ``use_alter`` so
  that ``create_all`` and ``drop_all`` can order the tables.
* The overview views for notebooks are not models; their SQL is in
  :mod:`catalog.db.views`.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from catalog.db.revision import SCHEMA_REVISION as SCHEMA_REVISION
from catalog.db.revision import VERSION_TABLE as VERSION_TABLE
from catalog.enums import RunStatus, SnapshotStatus, Source, WorkflowStatus, sql_in_list

#: Deterministic constraint names, so later migrations can refer to them on
#: every backend (SQLite batch mode needs names to drop or alter constraints).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base carrying the shared naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _one_of(column: str, vocabulary: type[StrEnum]) -> CheckConstraint:
    """A CHECK that ``column`` holds a value of ``vocabulary``, named ``ck_<table>_<column>``."""
    return CheckConstraint(f"{column} IN ({sql_in_list(vocabulary)})", name=column)


class Run(Base):
    """One MUSCLE3 run (one run directory); a catalog holds a campaign of runs."""

    __tablename__ = "runs"
    __table_args__ = (_one_of("source", Source), _one_of("status", RunStatus))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    run_dir: Mapped[str] = mapped_column(Text, unique=True)
    model_name: Mapped[str | None] = mapped_column(String(255))
    configuration: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    resumed_from_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    status: Mapped[str] = mapped_column(
        String(16), default=RunStatus.UNKNOWN, server_default=RunStatus.UNKNOWN.value
    )
    #: The workflow snapshot this run resumed from, when known; kept (as NULL)
    #: if that workflow snapshot is deleted, since the run itself still happened.
    resumed_from_workflow_snapshot_id: Mapped[int | None] = mapped_column(
        ForeignKey("workflow_snapshots.id", ondelete="SET NULL", use_alter=True), index=True
    )


class SnapshotRow(Base):
    """One ``.pack`` file: one saved state of one instance."""

    __tablename__ = "snapshots"
    __table_args__ = (
        UniqueConstraint("run_id", "submission_order"),
        Index("ix_snapshots_run_instance", "run_id", "instance", "submission_order"),
        Index("ix_snapshots_run_timestamp", "run_id", "timestamp"),
        # snapshots(instance=...) across the runs of a campaign, without a run.
        Index("ix_snapshots_instance", "instance", "run_id", "submission_order"),
        _one_of("status", SnapshotStatus),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    instance: Mapped[str] = mapped_column(String(255))
    sequence: Mapped[int | None] = mapped_column(Integer)
    submission_order: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text, unique=True)
    snapshot_filename: Mapped[str] = mapped_column(Text)
    format_version: Mapped[int] = mapped_column(Integer)
    # BigInteger: a .pack over 2 GiB overflows PostgreSQL's 32-bit INTEGER.
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    #: Indexed so that a copied or moved file is recognised by its content.
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    wallclock_time: Mapped[float | None] = mapped_column(Float)
    wallclock_time_nan: Mapped[bool] = mapped_column(Boolean, default=False)
    timestamp: Mapped[float | None] = mapped_column(Float)
    timestamp_nan: Mapped[bool] = mapped_column(Boolean, default=False)
    next_timestamp: Mapped[float | None] = mapped_column(Float)
    next_timestamp_nan: Mapped[bool] = mapped_column(Boolean, default=False)
    is_final_snapshot: Mapped[bool] = mapped_column(Boolean)
    is_implicit: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16), default=SnapshotStatus.PRESENT)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    #: When a status other than ``present`` was found; NULL while it is present.
    status_changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: For the copy of a snapshot that a resumed run made: the snapshot it copies.
    #: NULL once the original row is deleted; the copy stands on its own.
    copied_from_snapshot_id: Mapped[int | None] = mapped_column(
        ForeignKey("snapshots.id", ondelete="SET NULL"), index=True
    )


class SnapshotTrigger(Base):
    """One trigger string of a snapshot, in the order the instance gave them."""

    __tablename__ = "snapshot_triggers"

    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    trigger: Mapped[str] = mapped_column(Text, index=True)


class SnapshotSetting(Base):
    """One entry of a snapshot's settings overlay; the value is JSON text."""

    __tablename__ = "snapshot_settings"

    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    value_json: Mapped[str] = mapped_column(Text)


class SnapshotPort(Base):
    """A port of a snapshot's message counts: its place in the map and its slots' counts."""

    __tablename__ = "snapshot_ports"

    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    port: Mapped[str] = mapped_column(String(255), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    num_slots: Mapped[int] = mapped_column(Integer)
    #: The message count of each slot, as a JSON array (``[3,3,2]``; ``[]`` for no slots).
    counts: Mapped[str] = mapped_column(Text)


class WorkflowSnapshotRow(Base):
    """A resume point: one snapshot (or a fresh start) per instance, mutually consistent."""

    __tablename__ = "workflow_snapshots"
    __table_args__ = (
        UniqueConstraint("run_id", "sequence"),
        # One workflow snapshot per run and set of members, whoever finds it
        # (registry, import, reindex, watch); see catalog.db.identity.
        UniqueConstraint("run_id", "members_key"),
        # The newest resume point of a run: timestamp, then the tie-breaker.
        Index("ix_workflow_snapshots_run_timestamp", "run_id", "timestamp", "sequence"),
        # The newest resume point of a whole campaign, whatever the run.
        Index("ix_workflow_snapshots_timestamp", "timestamp", "run_id", "sequence"),
        _one_of("source", Source),
        _one_of("status", WorkflowStatus),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(Integer)
    completed_by_snapshot_id: Mapped[int | None] = mapped_column(
        ForeignKey("snapshots.id", ondelete="SET NULL")
    )
    timestamp: Mapped[float | None] = mapped_column(Float)
    description: Mapped[str] = mapped_column(Text)
    resume_file: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    status: Mapped[str] = mapped_column(
        String(16), default=WorkflowStatus.RESUMABLE, server_default=WorkflowStatus.RESUMABLE.value
    )
    #: Identity of the member set (:func:`catalog.db.identity.members_key`); NULL only
    #: for duplicates that catalogs written before revision 0002 may hold.
    members_key: Mapped[str | None] = mapped_column(String(64))


class WorkflowSnapshotMember(Base):
    """One instance of a workflow snapshot: its snapshot, or NULL to start from scratch."""

    __tablename__ = "workflow_snapshot_members"

    workflow_snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("workflow_snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    instance: Mapped[str] = mapped_column(String(255), primary_key=True)
    snapshot_id: Mapped[int | None] = mapped_column(
        ForeignKey("snapshots.id", ondelete="RESTRICT"), index=True
    )


#: Every table's model, parents before children: the order to copy rows in so
#: that foreign keys always point at rows already there.
TABLE_MODELS: tuple[type[Base], ...] = (
    Run,
    SnapshotRow,
    SnapshotTrigger,
    SnapshotPort,
    SnapshotSetting,
    WorkflowSnapshotRow,
    WorkflowSnapshotMember,
)
