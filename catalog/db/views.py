"""The SQL of the catalog's read-only overview views, for every schema revision that had them.

The views (``snapshot_overview``, ``port_count_overview`` and
``workflow_snapshot_overview``) are there for notebooks and plain SQL: they
join the normalised tables back into one readable row each. They depend on
the tables they read, so any migration that rebuilds or retypes one of those
tables must drop them first and create them again afterwards (SQLite refuses
to rename a table in batch mode while a view names it; PostgreSQL refuses to
change the type of a column a view uses).

That makes the view SQL something several migrations need, so it lives here,
once, and versioned: each view set is kept under the revision that introduced
it and is never edited afterwards, exactly like a migration. A migration asks
for :func:`views_at` its own revision, so it keeps getting the definitions of
its own time even after a later revision changes a view. To change a view,
add a new set under the new revision's id and have that migration recreate it.

Revision 0001 created its views from its own copy of the text below; the two
must stay identical (a test compares them with the views a 0001 catalog holds).

This module imports nothing beyond the standard library, so that migrations
and tests can load it without pulling the package's heavier modules in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Protocol


class Operations(Protocol):
    """The one thing the helpers need of Alembic's ``op``: executing SQL text."""

    def execute(self, sqltext: str, /) -> object:
        """Run one SQL statement."""


#: The views of revision 0001, as ``name -> SELECT``; also the views of every
#: later revision until a migration introduces a new set.
_VIEWS_0001: Mapping[str, str] = MappingProxyType(
    {
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
)

#: SQLite: the directory of the catalog file, with a trailing slash, as the
#: database itself knows it (``pragma_database_list``), so that a view gives
#: the absolute path of a relatively stored file even after the campaign
#: directory was moved, and whatever program (sqlite3 shell, pandas) reads it.
_SQLITE_ROOT = (
    "(SELECT rtrim(file, replace(file, '/', '')) FROM pragma_database_list WHERE name = 'main')"
)


def _sqlite_absolute(column: str) -> str:
    return (
        f"CASE WHEN {column} IS NULL OR substr({column}, 1, 1) = '/' THEN {column} "
        f"ELSE {_SQLITE_ROOT} || {column} END"
    )


#: Revision 0003: per-slot port counts became a JSON array per port, so
#: ``port_counts`` is now a view giving the old per-slot rows; the overview
#: views gain absolute paths, triggers, sha256, status and the resume file.
#: PostgreSQL catalogs store absolute paths (there is no catalog directory),
#: so their ``absolute_path`` is the stored one.
_VIEWS_0003: Mapping[str, str | Mapping[str, str]] = MappingProxyType(
    {
        "port_counts": MappingProxyType(
            {
                "sqlite": """
        SELECT p.snapshot_id, p.port, CAST(j.key AS INTEGER) AS slot,
               CAST(j.value AS INTEGER) AS count
        FROM snapshot_ports p, json_each(p.counts) j
    """,
                "postgresql": """
        SELECT p.snapshot_id, p.port, CAST(j.ordinality - 1 AS INTEGER) AS slot,
               CAST(j.value AS BIGINT) AS count
        FROM snapshot_ports p
        CROSS JOIN LATERAL jsonb_array_elements_text(CAST(p.counts AS jsonb))
             WITH ORDINALITY AS j(value, ordinality)
    """,
            }
        ),
        "snapshot_overview": MappingProxyType(
            {
                "sqlite": f"""
        SELECT s.id AS snapshot_id, r.name AS run, s.run_id, s.instance, s.sequence,
               s.submission_order, s.path, {_sqlite_absolute("s.path")} AS absolute_path,
               s.snapshot_filename, s.timestamp, s.timestamp_nan, s.next_timestamp,
               s.next_timestamp_nan, s.wallclock_time, s.is_final_snapshot, s.is_implicit,
               (SELECT group_concat(t.trigger, '; ') FROM (
                    SELECT trigger FROM snapshot_triggers
                    WHERE snapshot_id = s.id ORDER BY position) t) AS triggers,
               s.status, s.status_changed_at, s.format_version, s.size_bytes, s.sha256,
               s.copied_from_snapshot_id, s.recorded_at
        FROM snapshots s JOIN runs r ON r.id = s.run_id
    """,
                "postgresql": """
        SELECT s.id AS snapshot_id, r.name AS run, s.run_id, s.instance, s.sequence,
               s.submission_order, s.path, s.path AS absolute_path,
               s.snapshot_filename, s.timestamp, s.timestamp_nan, s.next_timestamp,
               s.next_timestamp_nan, s.wallclock_time, s.is_final_snapshot, s.is_implicit,
               (SELECT string_agg(t.trigger, '; ' ORDER BY t.position)
                FROM snapshot_triggers t WHERE t.snapshot_id = s.id) AS triggers,
               s.status, s.status_changed_at, s.format_version, s.size_bytes, s.sha256,
               s.copied_from_snapshot_id, s.recorded_at
        FROM snapshots s JOIN runs r ON r.id = s.run_id
    """,
            }
        ),
        # Unchanged: it reads ``port_counts``, which is now the view above.
        "port_count_overview": _VIEWS_0001["port_count_overview"],
        "workflow_snapshot_overview": MappingProxyType(
            {
                "sqlite": f"""
        SELECT w.id AS workflow_snapshot_id, r.name AS run, w.run_id, w.sequence,
               w.timestamp, w.status, w.source, w.description, w.resume_file,
               {_sqlite_absolute("w.resume_file")} AS resume_file_absolute, w.created_at,
               m.instance, m.snapshot_id, s.path, {_sqlite_absolute("s.path")} AS absolute_path
        FROM workflow_snapshots w
        JOIN runs r ON r.id = w.run_id
        JOIN workflow_snapshot_members m ON m.workflow_snapshot_id = w.id
        LEFT JOIN snapshots s ON s.id = m.snapshot_id
    """,
                "postgresql": """
        SELECT w.id AS workflow_snapshot_id, r.name AS run, w.run_id, w.sequence,
               w.timestamp, w.status, w.source, w.description, w.resume_file,
               w.resume_file AS resume_file_absolute, w.created_at,
               m.instance, m.snapshot_id, s.path, s.path AS absolute_path
        FROM workflow_snapshots w
        JOIN runs r ON r.id = w.run_id
        JOIN workflow_snapshot_members m ON m.workflow_snapshot_id = w.id
        LEFT JOIN snapshots s ON s.id = m.snapshot_id
    """,
            }
        ),
    }
)

#: A view's SELECT: one text for every backend, or one per SQLAlchemy dialect name.
ViewSQL = str | Mapping[str, str]

#: Each view set under the revision that introduced it. Revision ids are
#: zero-padded numbers ("0001", "0002", ...), so they order as integers.
VIEW_SETS: Mapping[str, Mapping[str, ViewSQL]] = MappingProxyType(
    {"0001": _VIEWS_0001, "0003": _VIEWS_0003}
)


def views_at(revision: str) -> Mapping[str, ViewSQL]:
    """The views a catalog at ``revision`` has: the newest set introduced at or before it.

    Args:
        revision: A schema revision id, normally the calling migration's own.

    Returns:
        View name -> its ``SELECT``, in the order they are created.

    Raises:
        KeyError: No view set existed yet at that revision.
    """
    introduced = [key for key in VIEW_SETS if int(key) <= int(revision)]
    if not introduced:
        raise KeyError(f"No overview views existed at schema revision {revision}")
    return VIEW_SETS[max(introduced, key=int)]


def create_view_sql(name: str, select: str) -> str:
    """The statement creating one view, spelled as revision 0001 spelled it.

    Keeping the spelling means SQLite's ``sqlite_master`` shows the same text
    for a view whether a catalog was created at its revision or upgraded to it.
    """
    return f"CREATE VIEW {name} AS {select}"


def drop_views(op: Operations, names: Iterable[str]) -> None:
    """Drop views, if they exist, so the tables under them can be rebuilt or retyped.

    ``IF EXISTS`` so that a catalog whose user dropped a view by hand still
    upgrades; the view is created again afterwards anyway.

    Args:
        op: Alembic's ``op`` (anything that executes SQL text).
        names: The views to drop.
    """
    # Newest first: a later view of a set may read an earlier one.
    for name in reversed(list(names)):
        op.execute(f"DROP VIEW IF EXISTS {name}")


def create_views(op: Operations, views: Mapping[str, ViewSQL], dialect: str | None = None) -> None:
    """Create views from a view set (see :func:`views_at`), in the set's order.

    Args:
        op: Alembic's ``op`` (anything that executes SQL text).
        views: View name -> its ``SELECT`` (or its ``SELECT`` per dialect).
        dialect: The database's dialect name (``sqlite``, ``postgresql``);
            needed by view sets that spell a view per backend.

    Raises:
        KeyError: A view has no spelling for this dialect.
    """
    for name, select in views.items():
        if not isinstance(select, str):
            if dialect is None or dialect not in select:
                raise KeyError(f"The view {name} has no SQL for the {dialect} backend")
            select = select[dialect]
        op.execute(create_view_sql(name, select))
