"""Statuses, lineage links, CHECKed vocabularies, 64-bit sizes and campaign-wide indexes.

* ``snapshots.size_bytes`` becomes BIGINT: a ``.pack`` over 2 GiB overflows
  PostgreSQL's INTEGER.
* Every vocabulary column gets a CHECK constraint, so nothing outside the
  vocabulary can be stored by any program. The lists are written out here,
  not taken from ``catalog.enums``: a migration is frozen history and must
  create the same constraint forever; when a vocabulary grows, a new
  migration replaces the CHECK.
* ``runs.status`` (existing runs: ``finished`` where ``finished_at`` is set,
  else ``unknown``) and ``workflow_snapshots.status`` (existing ones:
  ``resumable``, which is what every workflow snapshot was taken to be).
* Lineage: ``runs.resumed_from_workflow_snapshot_id`` and
  ``snapshots.copied_from_snapshot_id`` (plus ``status_changed_at``), both
  indexed for "what came from this?" lookups, both set NULL when the origin
  is deleted.
* ``ix_snapshots_instance`` and ``ix_workflow_snapshots_timestamp`` serve
  queries across all runs of a campaign; ``ix_snapshots_sha256`` finds a
  copied or moved file by its content.
* ``workflow_snapshots.members_key``: the identity of a workflow snapshot's
  member set, unique per run, so that the registry, import, reindex and
  watch can never record the same resume point twice. Existing rows get their
  key here; where a catalog already holds duplicates, the oldest gets the key
  and the others keep NULL (a migration deletes nothing; ``verify --fix``
  removes them).

The overview views read these tables. SQLite's batch mode rebuilds a table
(create, copy, drop, rename), and SQLite refuses the rename while a view
names the table; PostgreSQL refuses to retype a column a view uses. So the
views are dropped first and created again, unchanged, at the end.

Downgrading fails on PostgreSQL if a snapshot over 2 GiB was recorded, since
its size no longer fits; that is the database refusing to lose data.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from catalog.db.views import create_views, drop_views, views_at

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The vocabularies as of this revision, spelled out (see the module docstring).
_SOURCES = "'live', 'import', 'registry', 'reindex', 'watch'"
_SNAPSHOT_STATUSES = "'present', 'missing', 'corrupt', 'deleted'"
_RUN_STATUSES = "'running', 'finished', 'failed', 'unknown'"
_WORKFLOW_STATUSES = "'resumable', 'unresumable'"


def upgrade() -> None:
    drop_views(op, views_at("0001"))

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), server_default="unknown", nullable=False)
        )
        batch_op.add_column(
            sa.Column("resumed_from_workflow_snapshot_id", sa.Integer(), nullable=True)
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_runs_resumed_from_workflow_snapshot_id_workflow_snapshots"),
            "workflow_snapshots",
            ["resumed_from_workflow_snapshot_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(
            batch_op.f("ix_runs_resumed_from_workflow_snapshot_id"),
            ["resumed_from_workflow_snapshot_id"],
            unique=False,
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_runs_source"), sa.text(f"source IN ({_SOURCES})")
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_runs_status"), sa.text(f"status IN ({_RUN_STATUSES})")
        )
    op.execute("UPDATE runs SET status = 'finished' WHERE finished_at IS NOT NULL")

    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.alter_column(
            "size_bytes",
            existing_type=sa.Integer(),
            type_=sa.BigInteger(),
            existing_nullable=True,
        )
        batch_op.add_column(
            sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("copied_from_snapshot_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_snapshots_copied_from_snapshot_id_snapshots"),
            "snapshots",
            ["copied_from_snapshot_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(
            batch_op.f("ix_snapshots_copied_from_snapshot_id"),
            ["copied_from_snapshot_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_snapshots_instance", ["instance", "run_id", "submission_order"], unique=False
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_snapshots_status"), sa.text(f"status IN ({_SNAPSHOT_STATUSES})")
        )
        batch_op.create_index(batch_op.f("ix_snapshots_sha256"), ["sha256"], unique=False)

    with op.batch_alter_table("workflow_snapshots", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), server_default="resumable", nullable=False)
        )
        batch_op.create_index("ix_workflow_snapshots_timestamp", ["timestamp"], unique=False)
        batch_op.create_check_constraint(
            batch_op.f("ck_workflow_snapshots_source"), sa.text(f"source IN ({_SOURCES})")
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_workflow_snapshots_status"),
            sa.text(f"status IN ({_WORKFLOW_STATUSES})"),
        )
        batch_op.add_column(sa.Column("members_key", sa.String(length=64), nullable=True))
    _fill_members_keys()
    with op.batch_alter_table("workflow_snapshots", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f("uq_workflow_snapshots_run_id_members_key"), ["run_id", "members_key"]
        )

    create_views(op, views_at("0002"))


def _members_key(members: dict[str, int | None]) -> str:
    """The key of a member set, as of this revision (the package's own copy may not change it)."""
    lines = "\n".join(
        f"{instance}={'-' if sid is None else sid}" for instance, sid in sorted(members.items())
    )
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _fill_members_keys() -> None:
    """Key every existing workflow snapshot; of duplicates within a run, only the oldest."""
    connection = op.get_bind()
    members: dict[int, dict[str, int | None]] = defaultdict(dict)
    for workflow_id, instance, snapshot_id in connection.execute(
        sa.text("SELECT workflow_snapshot_id, instance, snapshot_id FROM workflow_snapshot_members")
    ):
        members[workflow_id][instance] = snapshot_id
    taken: set[tuple[int, str]] = set()
    updates = []
    for workflow_id, run_id in connection.execute(
        sa.text("SELECT id, run_id FROM workflow_snapshots ORDER BY id")
    ):
        key = _members_key(members[workflow_id])
        if (run_id, key) not in taken:
            taken.add((run_id, key))
            updates.append({"key": key, "id": workflow_id})
    if updates:
        connection.execute(
            sa.text("UPDATE workflow_snapshots SET members_key = :key WHERE id = :id"), updates
        )


def downgrade() -> None:
    drop_views(op, views_at("0002"))

    with op.batch_alter_table("workflow_snapshots", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_workflow_snapshots_run_id_members_key"), type_="unique"
        )
        batch_op.drop_column("members_key")
        batch_op.drop_constraint(batch_op.f("ck_workflow_snapshots_status"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_workflow_snapshots_source"), type_="check")
        batch_op.drop_index("ix_workflow_snapshots_timestamp")
        batch_op.drop_column("status")

    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snapshots_sha256"))
        batch_op.drop_constraint(batch_op.f("ck_snapshots_status"), type_="check")
        batch_op.drop_index("ix_snapshots_instance")
        batch_op.drop_index(batch_op.f("ix_snapshots_copied_from_snapshot_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_snapshots_copied_from_snapshot_id_snapshots"), type_="foreignkey"
        )
        batch_op.drop_column("copied_from_snapshot_id")
        batch_op.drop_column("status_changed_at")
        batch_op.alter_column(
            "size_bytes",
            existing_type=sa.BigInteger(),
            type_=sa.Integer(),
            existing_nullable=True,
        )

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_runs_status"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_runs_source"), type_="check")
        batch_op.drop_index(batch_op.f("ix_runs_resumed_from_workflow_snapshot_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_runs_resumed_from_workflow_snapshot_id_workflow_snapshots"),
            type_="foreignkey",
        )
        batch_op.drop_column("resumed_from_workflow_snapshot_id")
        batch_op.drop_column("status")

    create_views(op, views_at("0001"))
