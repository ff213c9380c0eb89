"""Initial schema of the snapshot catalog.

Runs, snapshots with their triggers, settings and port counts, workflow snapshots
and their members, and read-only overview views for notebooks.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_VIEWS = {
    "snapshot_overview": """
        SELECT s.id AS snapshot_id, r.name AS run, s.run_id, s.instance, s.sequence,
               s.submission_order, s.path, s.timestamp, s.timestamp_nan, s.next_timestamp,
               s.wallclock_time, s.is_final_snapshot, s.is_implicit, s.status,
               s.format_version, s.size_bytes, s.recorded_at
        FROM snapshots s JOIN runs r ON r.id = s.run_id
    """,
    "port_count_overview": """
        SELECT r.name AS run, s.run_id, s.instance, s.id AS snapshot_id, p.port,
               p.position AS port_position, c.slot, c.count
        FROM port_counts c
        JOIN snapshot_ports p ON p.snapshot_id = c.snapshot_id AND p.port = c.port
        JOIN snapshots s ON s.id = c.snapshot_id
        JOIN runs r ON r.id = s.run_id
    """,
    "workflow_snapshot_overview": """
        SELECT w.id AS workflow_snapshot_id, r.name AS run, w.run_id, w.sequence,
               w.timestamp, m.instance, m.snapshot_id, s.path
        FROM workflow_snapshots w
        JOIN runs r ON r.id = w.run_id
        JOIN workflow_snapshot_members m ON m.workflow_snapshot_id = w.id
        LEFT JOIN snapshots s ON s.id = m.snapshot_id
    """,
}


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("run_dir", sa.Text(), nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=True),
        sa.Column("configuration", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resumed_from_run_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["resumed_from_run_id"], ["runs.id"], name=op.f("fk_runs_resumed_from_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("run_dir", name=op.f("uq_runs_run_dir")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_name"), ["name"], unique=False)

    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("instance", sa.String(length=255), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=True),
        sa.Column("submission_order", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("snapshot_filename", sa.Text(), nullable=False),
        sa.Column("format_version", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("wallclock_time", sa.Float(), nullable=True),
        sa.Column("wallclock_time_nan", sa.Boolean(), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=True),
        sa.Column("timestamp_nan", sa.Boolean(), nullable=False),
        sa.Column("next_timestamp", sa.Float(), nullable=True),
        sa.Column("next_timestamp_nan", sa.Boolean(), nullable=False),
        sa.Column("is_final_snapshot", sa.Boolean(), nullable=False),
        sa.Column("is_implicit", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_snapshots_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshots")),
        sa.UniqueConstraint("path", name=op.f("uq_snapshots_path")),
        sa.UniqueConstraint(
            "run_id", "submission_order", name=op.f("uq_snapshots_run_id_submission_order")
        ),
    )
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_snapshots_run_instance", ["run_id", "instance", "submission_order"], unique=False
        )
        batch_op.create_index("ix_snapshots_run_timestamp", ["run_id", "timestamp"], unique=False)

    op.create_table(
        "snapshot_ports",
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("port", sa.String(length=255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("num_slots", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_snapshot_ports_snapshot_id_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "port", name=op.f("pk_snapshot_ports")),
    )
    op.create_table(
        "snapshot_settings",
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_snapshot_settings_snapshot_id_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "position", name=op.f("pk_snapshot_settings")),
    )
    op.create_table(
        "snapshot_triggers",
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_snapshot_triggers_snapshot_id_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "position", name=op.f("pk_snapshot_triggers")),
    )
    with op.batch_alter_table("snapshot_triggers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_snapshot_triggers_trigger"), ["trigger"], unique=False)

    op.create_table(
        "workflow_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("completed_by_snapshot_id", sa.Integer(), nullable=True),
        sa.Column("timestamp", sa.Float(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("resume_file", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["completed_by_snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_workflow_snapshots_completed_by_snapshot_id_snapshots"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_workflow_snapshots_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_snapshots")),
        sa.UniqueConstraint(
            "run_id", "sequence", name=op.f("uq_workflow_snapshots_run_id_sequence")
        ),
    )
    with op.batch_alter_table("workflow_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_workflow_snapshots_run_timestamp", ["run_id", "timestamp"], unique=False
        )

    op.create_table(
        "port_counts",
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("port", sa.String(length=255), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id", "port"],
            ["snapshot_ports.snapshot_id", "snapshot_ports.port"],
            name=op.f("fk_port_counts_snapshot_id_port_snapshot_ports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "port", "slot", name=op.f("pk_port_counts")),
    )
    op.create_table(
        "workflow_snapshot_members",
        sa.Column("workflow_snapshot_id", sa.Integer(), nullable=False),
        sa.Column("instance", sa.String(length=255), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_workflow_snapshot_members_snapshot_id_snapshots"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["workflow_snapshot_id"],
            ["workflow_snapshots.id"],
            name=op.f("fk_workflow_snapshot_members_workflow_snapshot_id_workflow_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "workflow_snapshot_id", "instance", name=op.f("pk_workflow_snapshot_members")
        ),
    )
    with op.batch_alter_table("workflow_snapshot_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workflow_snapshot_members_snapshot_id"), ["snapshot_id"], unique=False
        )

    for name, body in _VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    for name in _VIEWS:
        op.execute(f"DROP VIEW {name}")
    with op.batch_alter_table("workflow_snapshot_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workflow_snapshot_members_snapshot_id"))

    op.drop_table("workflow_snapshot_members")
    op.drop_table("port_counts")
    with op.batch_alter_table("workflow_snapshots", schema=None) as batch_op:
        batch_op.drop_index("ix_workflow_snapshots_run_timestamp")

    op.drop_table("workflow_snapshots")
    with op.batch_alter_table("snapshot_triggers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snapshot_triggers_trigger"))

    op.drop_table("snapshot_triggers")
    op.drop_table("snapshot_settings")
    op.drop_table("snapshot_ports")
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_index("ix_snapshots_run_timestamp")
        batch_op.drop_index("ix_snapshots_run_instance")

    op.drop_table("snapshots")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_name"))

    op.drop_table("runs")
