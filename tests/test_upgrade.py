"""Upgrading real catalogs of every released schema revision, on SQLite and PostgreSQL.

Each ``tests/data/catalogs/<revision>.sqlite`` was written by the release that
introduced that revision, with its records dumped beside it; every record
must read back equal after the upgrade (and after a downgrade and upgrade
again). New assets are picked up by the glob, so adding one covers it here.
PostgreSQL gets the same data by creating a schema at the asset's revision
and copying the rows of the SQLite file into it.

Also here: what migration 0002 adds (64-bit sizes, CHECKed vocabularies, the
new columns and their values for existing rows), views that survive the
upgrade unchanged, the ``upgrade`` command, and migrations found from a plain
source checkout that was never installed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import Engine, MetaData, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError

from catalog import (
    Catalog,
    CatalogTooOldError,
    Message,
    NewSnapshot,
    Snapshot,
    open_catalog,
)
from catalog.cli import cli
from catalog.db.engine import create_catalog_engine
from catalog.db.schema import VERSION_TABLE
from catalog.db.versioning import (
    alembic_config,
    current_revision,
    head_revision,
    migration_transaction,
)
from catalog.db.views import ViewSQL, create_view_sql, views_at

from .conftest import DATA

REPO = Path(__file__).parents[1]
ASSETS = sorted((DATA / "catalogs").glob("*.sqlite"))
RECORD_KINDS = ("runs", "snapshots", "workflow_snapshots")

#: Tables with a serial ``id``, whose PostgreSQL sequence must follow copied rows.
SERIAL_TABLES = ("runs", "snapshots", "workflow_snapshots")


@dataclass(frozen=True)
class OldCatalog:
    """A catalog at an asset's revision holding the asset's data, on one backend.

    Attributes:
        url: What ``open_catalog`` takes: the SQLite file or the PostgreSQL URL.
        revision: The asset's schema revision.
        expected: The asset's records as the release that wrote it dumped them.
        root: The directory stored paths are relative to; None on PostgreSQL,
            where they come back as the relative paths they are stored as.
        db_file: The SQLite file, None on PostgreSQL.
    """

    url: str
    revision: str
    expected: dict[str, Any]
    root: Path | None
    db_file: Path | None


def plain(value: Any, root: Path | None) -> Any:
    """A record field as the asset's JSON has it (see ``make_catalog_asset.py``).

    Paths become relative to the catalog's directory, NaN and infinities
    strings, datetimes ISO text. Datetimes are put in UTC first, so that an
    instant compares equal whatever time zone a PostgreSQL session uses.
    """
    if isinstance(value, Path):
        if value.is_absolute():
            assert root is not None, f"absolute path {value} from a catalog without a root"
            return value.relative_to(root).as_posix()
        return value.as_posix()
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v, root) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, root) for v in value]
    return value


def assert_records_equal(url: str, expected: dict[str, Any], root: Path | None) -> None:
    """Every run, snapshot and workflow snapshot equals its JSON, in every field the JSON has.

    Records may have fields the JSON lacks (added after the asset was
    written); those are not compared. Records are matched by id, so the
    order a query returns them in does not matter here.
    """
    with open_catalog(url, create=True) as cat:
        found: dict[str, list[Any]] = {
            "runs": list(cat.runs()),
            "snapshots": list(cat.snapshots()),
            "workflow_snapshots": list(cat.workflow_snapshots()),
        }
    for kind in RECORD_KINDS:
        records = {record.id: record for record in found[kind]}
        wanted = {item["id"]: item for item in expected[kind]}
        assert sorted(records) == sorted(wanted), kind
        for record_id, item in wanted.items():
            record = records[record_id]
            missing = [name for name in item if not hasattr(record, name)]
            assert not missing, f"{kind} records no longer have {missing}"
            got = {name: plain(getattr(record, name), root) for name in item}
            assert got == item, f"{kind} id {record_id}"


def _engine(url: str) -> Engine:
    """An engine set up as the catalog sets its own up (``BEGIN IMMEDIATE`` on SQLite)."""
    return create_catalog_engine(
        make_url(url) if "://" in url else URL.create("sqlite", database=url)
    )


def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    """Take the catalog at ``url`` to ``revision`` the way ``upgrade`` does, up or down."""
    engine = _engine(url)
    try:
        with migration_transaction(engine) as connection:
            config = alembic_config(connection)
            if down:
                command.downgrade(config, revision)
            else:
                command.upgrade(config, revision)
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            return current_revision(connection)
    finally:
        engine.dispose()


def _aware(value: Any) -> Any:
    # SQLite gives stored UTC times back naive; PostgreSQL would read them in
    # its session time zone.
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def copy_into_postgres(db_file: Path, revision: str, pg_url: str) -> None:
    """Create a PostgreSQL catalog at ``revision`` holding every row of a SQLite one.

    Tables are filled parents first (the SQLite file's foreign keys give the
    order, rows in id order for self-references such as a resumed run), then
    the id sequences are moved past the copied ids so that later inserts work.
    """
    _migrate(pg_url, revision)
    source, target = _engine(str(db_file)), _engine(pg_url)
    try:
        source_tables, target_tables = MetaData(), MetaData()
        source_tables.reflect(source)
        target_tables.reflect(target)
        with source.connect() as reader, target.begin() as writer:
            assert current_revision(writer) == revision
            for table in source_tables.sorted_tables:
                if table.name == VERSION_TABLE:
                    continue
                query = select(table).order_by(*table.primary_key.columns)
                rows = [
                    {key: _aware(value) for key, value in row._mapping.items()}
                    for row in reader.execute(query)
                ]
                if rows:
                    writer.execute(target_tables.tables[table.name].insert(), rows)
            for name in SERIAL_TABLES:
                writer.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"(SELECT max(id) FROM {name}))"
                    )
                )
    finally:
        source.dispose()
        target.dispose()


@pytest.fixture(params=ASSETS, ids=[asset.stem for asset in ASSETS])
def asset(request: pytest.FixtureRequest) -> Path:
    """One released catalog asset (``<revision>.sqlite``)."""
    path: Path = request.param
    return path


@pytest.fixture
def asset_copy(asset: Path, tmp_path: Path) -> Path:
    """A copy of the asset in its own campaign directory, safe to change."""
    campaign = tmp_path / "campaign"
    campaign.mkdir()
    copy = campaign / "snapshot_catalog.sqlite"
    shutil.copyfile(asset, copy)
    return copy


def _expected(asset: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(asset.with_suffix(".records.json").read_text())
    assert data["revision"] == asset.stem
    return data


@pytest.fixture(params=["sqlite", "postgresql"])
def old_catalog(request: pytest.FixtureRequest, asset: Path, asset_copy: Path) -> OldCatalog:
    """The asset's catalog on each backend, still at its own revision."""
    expected = _expected(asset)
    revision = expected["revision"]
    if request.param == "sqlite":
        return OldCatalog(str(asset_copy), revision, expected, asset_copy.parent, asset_copy)
    pg_url: str = request.getfixturevalue("pg_url")
    copy_into_postgres(asset_copy, revision, pg_url)
    return OldCatalog(pg_url, revision, expected, None, None)


def _as_sqlite_keeps(views: Mapping[str, ViewSQL]) -> dict[str, str]:
    """The text ``sqlite_master`` holds for views created from ``views`` (no trailing blanks)."""
    return {
        name: create_view_sql(
            name, select if isinstance(select, str) else select["sqlite"]
        ).rstrip()
        for name, select in views.items()
    }


def _view_rows(url: str, views: Iterable[str]) -> dict[str, tuple[list[str], int]]:
    """Each view's column names and row count: what a notebook sees of it."""
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            seen: dict[str, tuple[list[str], int]] = {}
            for name in views:
                result = connection.execute(text(f"SELECT * FROM {name}"))
                seen[name] = (list(result.keys()), len(result.fetchall()))
            return seen
    finally:
        engine.dispose()


# ------------------------------------------------------------------- refusing, upgrading


def test_old_catalog_is_refused_untouched(old_catalog: OldCatalog) -> None:
    before = old_catalog.db_file.read_bytes() if old_catalog.db_file else None
    with pytest.raises(CatalogTooOldError, match=r"muscle-catalog --catalog .* upgrade"):
        open_catalog(old_catalog.url, create=True)
    if old_catalog.db_file is not None:
        assert old_catalog.db_file.read_bytes() == before
        assert sorted(p.name for p in old_catalog.db_file.parent.iterdir()) == [
            old_catalog.db_file.name
        ]
    assert _revision(old_catalog.url) == old_catalog.revision


def test_upgrade_keeps_every_record(old_catalog: OldCatalog, tmp_path: Path) -> None:
    old, new, backup = Catalog.upgrade(old_catalog.url)
    assert (old, new) == (old_catalog.revision, head_revision())
    if old_catalog.db_file is None:
        assert backup is None
    else:
        assert backup is not None and backup.is_file()
        assert backup.parent == old_catalog.db_file.parent
        with sqlite3.connect(backup) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert _revision(str(backup)) == old_catalog.revision
    assert _revision(old_catalog.url) == head_revision()
    assert_records_equal(old_catalog.url, old_catalog.expected, old_catalog.root)

    # New rows get ids past the copied ones: the sequences (PostgreSQL) follow.
    with open_catalog(old_catalog.url, create=True) as cat:
        run = cat.ensure_run(tmp_path / "after_upgrade")
        snapshot = cat.record_snapshot(run.id, new_snapshot(tmp_path / "after.pack"))
    assert run.id > max(r["id"] for r in old_catalog.expected["runs"])
    assert snapshot.id > max(s["id"] for s in old_catalog.expected["snapshots"])


def test_backup_is_the_old_catalog(asset_copy: Path, asset: Path) -> None:
    _old, _new, backup = Catalog.upgrade(asset_copy)
    assert backup is not None
    with pytest.raises(CatalogTooOldError):
        open_catalog(backup, create=True)
    campaign = asset_copy.parent
    moved = campaign / "restored.sqlite"
    shutil.copyfile(backup, moved)
    Catalog.upgrade(moved)
    assert_records_equal(str(moved), _expected(asset), campaign)


def test_new_columns_of_existing_rows(old_catalog: OldCatalog) -> None:
    url = old_catalog.url
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            query = text("SELECT id, size_bytes FROM snapshots")
            sizes_before = {row.id: row.size_bytes for row in connection.execute(query)}
        Catalog.upgrade(url)
        with engine.connect() as connection:
            runs = connection.execute(
                text("SELECT finished_at, status, resumed_from_workflow_snapshot_id FROM runs")
            ).all()
            snapshots = connection.execute(
                text(
                    "SELECT id, size_bytes, copied_from_snapshot_id, status_changed_at "
                    "FROM snapshots"
                )
            ).all()
            workflow_statuses = connection.execute(
                text("SELECT DISTINCT status FROM workflow_snapshots")
            ).all()
    finally:
        engine.dispose()
    assert runs
    for finished_at, status, resumed_from_workflow in runs:
        assert status == ("finished" if finished_at is not None else "unknown")
        assert resumed_from_workflow is None
    assert {row.id: row.size_bytes for row in snapshots} == sizes_before
    assert sizes_before == {s["id"]: s["size_bytes"] for s in old_catalog.expected["snapshots"]}
    assert all(row.copied_from_snapshot_id is None for row in snapshots)
    assert all(row.status_changed_at is None for row in snapshots)
    assert [tuple(row) for row in workflow_statuses] == [("resumable",)]


def test_finished_runs_become_finished(old_catalog: OldCatalog) -> None:
    when = "2026-11-25 12:00:00.000000"  # as SQLAlchemy stores it on SQLite
    url = old_catalog.url
    engine = _engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE runs SET finished_at = :when WHERE id = 1"), {"when": when}
            )
        Catalog.upgrade(url)
        with engine.connect() as connection:
            query = text("SELECT id, status FROM runs")
            statuses = {row.id: row.status for row in connection.execute(query)}
    finally:
        engine.dispose()
    assert statuses.pop(1) == "finished"
    assert set(statuses.values()) == {"unknown"}


def test_views_keep_their_columns_and_rows_through_the_upgrade(old_catalog: OldCatalog) -> None:
    views = views_at(old_catalog.revision)
    before = _view_rows(old_catalog.url, views)
    Catalog.upgrade(old_catalog.url)
    after = _view_rows(old_catalog.url, views_at(head_revision()))
    for name, (columns, rows) in before.items():
        # A notebook's query of an old view still works: same rows, no column lost.
        assert set(columns) <= set(after[name][0]), name
        assert after[name][1] == rows, name
    if old_catalog.db_file is not None:
        # The very text SQLite keeps: the views are the head revision's.
        with sqlite3.connect(old_catalog.db_file) as raw:
            stored = dict(raw.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'"))
        assert stored == _as_sqlite_keeps(views_at(head_revision()))


def test_asset_views_are_the_ones_views_py_keeps(asset: Path) -> None:
    with sqlite3.connect(f"{asset.absolute().as_uri()}?mode=ro", uri=True) as raw:
        stored = dict(raw.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'"))
    views = views_at(asset.stem)
    assert stored == _as_sqlite_keeps(views)


def test_downgrade_and_upgrade_again_keep_every_record(old_catalog: OldCatalog) -> None:
    head = head_revision()
    _migrate(old_catalog.url, head)
    _migrate(old_catalog.url, old_catalog.revision, down=True)
    assert _revision(old_catalog.url) == old_catalog.revision
    _migrate(old_catalog.url, head)
    assert _revision(old_catalog.url) == head
    assert_records_equal(old_catalog.url, old_catalog.expected, old_catalog.root)


def test_upgrade_command_names_revisions_and_backup(asset_copy: Path, asset: Path) -> None:
    result = CliRunner().invoke(cli, ["--catalog", str(asset_copy), "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"from schema revision {asset.stem} to {head_revision()}" in result.output
    backups = list(asset_copy.parent.glob(f"{asset_copy.name}.bak-{asset.stem}-*"))
    assert len(backups) == 1
    assert f"Backup of the old catalog: {backups[0]}" in result.output


# ------------------------------------------------------------------- what 0002 adds


def new_snapshot(path: Path, size_bytes: int = 123) -> NewSnapshot:
    snapshot = Snapshot(
        triggers=["simulation_time >= 0.4"],
        wallclock_time=1.25,
        port_message_counts={"o_i": [3], "s": [2]},
        is_final_snapshot=False,
        message=Message(0.5, None, {"u": 1}),
    )
    return NewSnapshot(
        instance="macro",
        path=path,
        snapshot_filename=str(path),
        snapshot=snapshot,
        size_bytes=size_bytes,
        sha256="ab" * 32,
        sequence=1,
    )


def test_a_pack_over_2_gib_records(catalog: Catalog, tmp_path: Path) -> None:
    size = 3 * 2**31
    run = catalog.ensure_run(tmp_path / "run")
    recorded = catalog.record_snapshot(run.id, new_snapshot(tmp_path / "big.pack", size))
    assert recorded.size_bytes == size
    assert catalog.snapshot(recorded.id).size_bytes == size


_SNAPSHOT_ROW = (
    "INSERT INTO snapshots (run_id, instance, submission_order, path, snapshot_filename, "
    "format_version, wallclock_time_nan, timestamp_nan, next_timestamp_nan, "
    "is_final_snapshot, is_implicit, status, recorded_at) VALUES (:run_id, 'macro', :order, "
    ":path, 'x.pack', 1, :false, :false, :false, :false, :false, :value, :now)"
)
_RUN_ROW = (
    "INSERT INTO runs (name, run_dir, source, created_at, status) "
    "VALUES ('r', :path, :source, :now, :status)"
)


@pytest.mark.parametrize(
    ("constraint", "valid"),
    [
        ("ck_snapshots_status", "missing"),
        ("ck_runs_source", "import"),
        ("ck_runs_status", "running"),
    ],
)
def test_vocabularies_are_checked_in_sql(
    catalog: Catalog, tmp_path: Path, constraint: str, valid: str
) -> None:
    """Whatever program writes, a value outside a vocabulary is refused by the database."""
    run_id = catalog.ensure_run(tmp_path / "run").id
    now = "2026-11-25 00:00:00.000000"  # a literal every backend casts

    def insert(value: str, n: int) -> None:
        with catalog.engine.begin() as connection:
            if constraint == "ck_snapshots_status":
                statement, params = _SNAPSHOT_ROW, {"run_id": run_id, "order": n, "value": value}
            else:
                source = value if constraint == "ck_runs_source" else "live"
                status = value if constraint == "ck_runs_status" else "unknown"
                statement, params = _RUN_ROW, {"source": source, "status": status}
            params.update({"path": str(tmp_path / str(n)), "false": False, "now": now})
            connection.execute(text(statement), params)

    insert(valid, 1)
    with pytest.raises(IntegrityError, match=constraint):
        insert("bogus", 2)


# ------------------------------------------------------------------- from a plain checkout


def _run_from_checkout(checkout: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that knows only the checkout and the libraries.

    ``-S`` skips ``site``, so the ``.pth`` files that put this package's editable
    install on the path are not read; the site-packages directories are added
    by hand for SQLAlchemy, Alembic and the rest.
    """
    paths = [str(checkout), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    prelude = f"import sys\nsys.path[:0] = {paths!r}\n"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-S", "-c", prelude + code],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _checkout(tmp_path: Path, *parts: str) -> Path:
    checkout = tmp_path / "checkout"
    for part in parts:
        shutil.copytree(REPO / part, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
    return checkout


def test_a_plain_checkout_finds_its_migrations(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path, "catalog", "migrations")
    db_file = tmp_path / "new.sqlite"
    code = f"""
from pathlib import Path
import catalog
from catalog.db.versioning import migrations_directory
assert Path(catalog.__file__).is_relative_to({str(checkout)!r}), catalog.__file__
assert migrations_directory() == Path({str(checkout / "migrations")!r}), migrations_directory()
catalog.open_catalog({str(db_file)!r}, create=True).close()
"""
    result = _run_from_checkout(checkout, code)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db_file) as raw:
        revision = raw.execute("SELECT version_num FROM muscle_catalog_alembic_version").fetchone()
    assert revision == (head_revision(),)


def test_missing_migrations_are_named_in_both_places(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path, "catalog")
    code = f"import catalog\ncatalog.open_catalog({str(tmp_path / 'new.sqlite')!r}, create=True)\n"
    result = _run_from_checkout(checkout, code)
    assert result.returncode != 0
    assert "Cannot find the catalog's schema migrations" in result.stderr
    assert str(checkout / "catalog" / "migrations") in result.stderr
    assert str(checkout / "migrations") in result.stderr
