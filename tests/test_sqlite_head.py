"""A new SQLite catalog created from the stored head schema is the one the migrations create.

The migrations are the source of truth; :mod:`catalog.db.sqlite_head` replays
their result. These tests create one catalog each way, through the same
``open_catalog``, and compare everything that makes a schema: every
``sqlite_master`` row, every table's columns, foreign keys and indexes
(automatic ones by their columns), the version row, the file's pragmas and
that no table holds rows.

One thing is not compared byte for byte, because the migrations themselves
do not repeat it: Alembic's batch mode (revision 0002 rebuilds tables to add
CHECK constraints) writes a rebuilt table's constraint clauses in an order
that changes from one migration run to the next (it follows set iteration),
and with it the numbering of the automatic indexes and the order of a few
``sqlite_master`` rows. So a ``CREATE TABLE`` is compared as its head and
column lines in order plus its constraint clauses as a set, automatic
indexes by what they index, and rows by name; everything else exactly.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from catalog import open_catalog
from catalog.db import sqlite_head, versioning
from catalog.db.schema import SCHEMA_REVISION, VERSION_TABLE

REGENERATE = "regenerate it: python -m catalog.db.sqlite_head (see its docstring)"


def _migrated(path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A catalog created by running the migrations (the stored schema switched off)."""
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_head, "available", lambda revision=SCHEMA_REVISION: False)
        open_catalog(path, create=True).close()
    return path


def _table_sql(sql: str) -> tuple[str, tuple[str, ...], frozenset[str]]:
    """A CREATE TABLE as (head, column lines in order, constraint clauses as a set)."""
    head, *body = sql.split("\n")
    clauses = [line.strip().rstrip(",").strip() for line in body if line.strip() != ")"]
    columns = tuple(c for c in clauses if not c.startswith("CONSTRAINT "))
    constraints = frozenset(c for c in clauses if c.startswith("CONSTRAINT "))
    assert columns + tuple(c for c in clauses if c in constraints) == tuple(clauses), sql
    return head, columns, constraints


def _schema(path: Path) -> dict[str, Any]:
    connection = sqlite3.connect(path)
    try:
        rows = sqlite_head.schema_rows(connection)
        named = sorted(
            (kind, name, table, _table_sql(sql) if kind == "table" else sql)
            for kind, name, table, sql in rows
            if sql is not None
        )
        automatic = sorted(table for kind, name, table, sql in rows if sql is None)
        tables = sorted(name for kind, name, _t, _s in rows if kind == "table")
        details = {}
        for table in tables:
            indexes = []
            for _seq, index, unique, origin, partial in connection.execute(
                f"PRAGMA index_list('{table}')"
            ):
                columns = [row[2] for row in connection.execute(f"PRAGMA index_info('{index}')")]
                shown = index if origin == "c" else ""  # automatic ones: by what they index
                indexes.append((shown, unique, origin, partial, tuple(columns)))
            keys: dict[int, list[tuple[Any, ...]]] = {}
            for (
                fk_id,
                seq,
                parent,
                source,
                target,
                on_update,
                on_delete,
                match,
            ) in connection.execute(f"PRAGMA foreign_key_list('{table}')"):
                keys.setdefault(fk_id, []).append(
                    (seq, parent, source, target, on_update, on_delete, match)
                )
            details[table] = {
                "columns": connection.execute(f"PRAGMA table_xinfo('{table}')").fetchall(),
                "indexes": sorted(indexes),
                "foreign_keys": sorted(tuple(sorted(k)) for k in keys.values()),
                "rows": connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0],
            }
        pragmas = {
            name: connection.execute(f"PRAGMA {name}").fetchone()[0]
            for name in (
                "user_version",
                "application_id",
                "page_size",
                "auto_vacuum",
                "encoding",
                "journal_mode",
            )
        }
        version = connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
        return {
            "named": named,
            "automatic": automatic,
            "tables": details,
            "pragmas": pragmas,
            "version": version,
            "integrity": connection.execute("PRAGMA integrity_check").fetchall(),
        }
    finally:
        connection.close()


def test_the_stored_schema_is_the_head_revisions() -> None:
    assert sqlite_head.REVISION == SCHEMA_REVISION == versioning.alembic_head_revision(), (
        f"the stored SQLite schema is revision {sqlite_head.REVISION}, the head is "
        f"{versioning.alembic_head_revision()}: {REGENERATE}"
    )
    assert sqlite_head.available()


def test_a_new_catalog_is_exactly_what_the_migrations_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = tmp_path / "fast.sqlite"
    open_catalog(fast, create=True).close()
    migrated = _migrated(tmp_path / "migrated.sqlite", monkeypatch)
    expected = _schema(migrated)
    assert expected["version"] == [(SCHEMA_REVISION,)]
    assert _schema(fast) == expected, f"the stored schema is not the migrations': {REGENERATE}"


def test_the_stored_statements_are_the_migrated_files_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statements replayed are text a migrated file holds, line for line."""
    migrated = _migrated(tmp_path / "migrated.sqlite", monkeypatch)
    connection = sqlite3.connect(migrated)
    try:
        stored = [sql for _k, _n, _t, sql in sqlite_head.schema_rows(connection) if sql]
    finally:
        connection.close()
    assert len(sqlite_head.STATEMENTS) == len(stored)
    for statement in sqlite_head.STATEMENTS:
        matching = [s for s in stored if s.split("\n")[0] == statement.split("\n")[0]]
        assert len(matching) == 1, statement
        if statement.startswith("CREATE TABLE"):
            assert _table_sql(statement) == _table_sql(matching[0])
        else:
            assert statement == matching[0]


def test_creating_a_catalog_does_not_load_alembic(tmp_path: Path) -> None:
    """The stored schema needs no migration machinery: a fresh run's start stays light."""
    code = (
        "import sys, catalog; catalog.open_catalog(sys.argv[1], create=True).close(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "new.sqlite")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"


def test_regenerating_gives_statements_that_create_the_same_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m catalog.db.sqlite_head`` output, replayed, is the migrated schema too."""
    done = subprocess.run(
        [sys.executable, "-m", "catalog.db.sqlite_head"], capture_output=True, text=True, check=True
    )
    namespace: dict[str, Any] = {}
    exec(done.stdout, namespace)
    assert namespace["REVISION"] == SCHEMA_REVISION
    replayed = tmp_path / "replayed.sqlite"
    connection = sqlite3.connect(replayed, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("BEGIN IMMEDIATE")
        with monkeypatch.context() as patch:
            patch.setattr(sqlite_head, "STATEMENTS", namespace["STATEMENTS"])
            sqlite_head.create_head_schema(connection)
        connection.execute("COMMIT")
    finally:
        connection.close()
    migrated = _migrated(tmp_path / "migrated.sqlite", monkeypatch)
    assert _schema(replayed) == _schema(migrated)
