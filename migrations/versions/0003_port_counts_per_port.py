"""Port counts as one row per port, overview views for plain SQL, resume-point indexes.

* ``snapshot_ports.counts`` holds a port's per-slot message counts as a JSON
  array (``[3,3,2]``), and the ``port_counts`` table (one row per slot) is
  gone. A registry recording a macro with a thousand-slot port wrote a
  thousand rows per submission; it now writes one. ``port_counts`` lives on
  as a view with the same columns, so SQL and notebooks that read per-slot
  rows keep working.
* The overview views are recreated: ``snapshot_overview`` gains the
  absolute path, file name, triggers, sha256, status and lineage columns;
  ``workflow_snapshot_overview`` gains status, source, description and the
  resume file (stored and absolute). SQLite views compute absolute paths
  from the catalog file's own location, so they stay right when a campaign
  directory moves.
* The workflow-snapshot timestamp indexes gain ``sequence`` (and the
  campaign-wide one ``run_id``), the tie-breakers of "the newest resume
  point", so that query is answered from the index alone.

Existing counts are carried over exactly: ports whose slot rows are complete
are converted in SQL; a port with missing slot rows (never written by this
code, but possible in a hand-edited catalog) gets zeros there, as the
records always read them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from catalog.db.views import create_views, drop_views, views_at

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    drop_views(op, views_at("0002"))

    with op.batch_alter_table("snapshot_ports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("counts", sa.Text(), nullable=True))
    _fill_counts(dialect)
    with op.batch_alter_table("snapshot_ports", schema=None) as batch_op:
        batch_op.alter_column("counts", existing_type=sa.Text(), nullable=False)
    op.drop_table("port_counts")

    with op.batch_alter_table("workflow_snapshots", schema=None) as batch_op:
        batch_op.drop_index("ix_workflow_snapshots_run_timestamp")
        batch_op.drop_index("ix_workflow_snapshots_timestamp")
        batch_op.create_index(
            "ix_workflow_snapshots_run_timestamp",
            ["run_id", "timestamp", "sequence"],
            unique=False,
        )
        batch_op.create_index(
            "ix_workflow_snapshots_timestamp", ["timestamp", "run_id", "sequence"], unique=False
        )

    create_views(op, views_at("0003"), dialect)


def _fill_counts(dialect: str) -> None:
    """Turn each port's slot rows into its JSON array."""
    connection = op.get_bind()
    aggregate = (
        "json_group_array(count)"
        if dialect == "sqlite"
        else "CAST(COALESCE(json_agg(count ORDER BY slot), '[]') AS TEXT)"
    )
    ordered = (
        "(SELECT count FROM port_counts c WHERE c.snapshot_id = snapshot_ports.snapshot_id "
        "AND c.port = snapshot_ports.port ORDER BY slot)"
        if dialect == "sqlite"
        else "port_counts c WHERE c.snapshot_id = snapshot_ports.snapshot_id "
        "AND c.port = snapshot_ports.port"
    )
    complete = (
        "(SELECT COUNT(*) FROM port_counts c WHERE c.snapshot_id = snapshot_ports.snapshot_id "
        "AND c.port = snapshot_ports.port AND c.slot >= 0 AND c.slot < num_slots) = num_slots"
    )
    connection.execute(
        sa.text(
            f"UPDATE snapshot_ports SET counts = (SELECT {aggregate} FROM {ordered}) "
            f"WHERE {complete}"
        )
    )
    # Ports whose slot rows have gaps: zeros where a slot has no row.
    incomplete = list(
        connection.execute(
            sa.text("SELECT snapshot_id, port, num_slots FROM snapshot_ports WHERE counts IS NULL")
        )
    )
    updates = []
    for snapshot_id, port, num_slots in incomplete:
        slots = [0] * max(int(num_slots), 0)
        for slot, count in connection.execute(
            sa.text("SELECT slot, count FROM port_counts WHERE snapshot_id = :s AND port = :p"),
            {"s": snapshot_id, "p": port},
        ):
            if 0 <= slot < len(slots):
                slots[slot] = int(count)
        updates.append({"counts": json.dumps(slots), "s": snapshot_id, "p": port})
    if updates:
        connection.execute(
            sa.text(
                "UPDATE snapshot_ports SET counts = :counts WHERE snapshot_id = :s AND port = :p"
            ),
            updates,
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    drop_views(op, views_at("0003"))

    with op.batch_alter_table("workflow_snapshots", schema=None) as batch_op:
        batch_op.drop_index("ix_workflow_snapshots_timestamp")
        batch_op.drop_index("ix_workflow_snapshots_run_timestamp")
        batch_op.create_index(
            "ix_workflow_snapshots_run_timestamp", ["run_id", "timestamp"], unique=False
        )
        batch_op.create_index("ix_workflow_snapshots_timestamp", ["timestamp"], unique=False)

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
    if dialect == "sqlite":
        op.execute(
            "INSERT INTO port_counts (snapshot_id, port, slot, count) "
            "SELECT p.snapshot_id, p.port, CAST(j.key AS INTEGER), CAST(j.value AS INTEGER) "
            "FROM snapshot_ports p, json_each(p.counts) j"
        )
    else:
        op.execute(
            "INSERT INTO port_counts (snapshot_id, port, slot, count) "
            "SELECT p.snapshot_id, p.port, CAST(j.ordinality - 1 AS INTEGER), "
            "CAST(j.value AS INTEGER) FROM snapshot_ports p CROSS JOIN LATERAL "
            "jsonb_array_elements_text(CAST(p.counts AS jsonb)) "
            "WITH ORDINALITY AS j(value, ordinality)"
        )
    with op.batch_alter_table("snapshot_ports", schema=None) as batch_op:
        batch_op.drop_column("counts")

    create_views(op, views_at("0002"))
