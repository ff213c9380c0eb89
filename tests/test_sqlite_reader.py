"""The sqlite3-only run listing answers exactly as Catalog.runs does, and only when it may."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from catalog import RunStatus, open_catalog
from catalog.db.sqlite_reader import sqlite_runs
from catalog.run_import import import_run_directory

RUNS = Path(__file__).parent / "data" / "runs"


def test_sqlite_runs_equal_catalog_runs(tmp_path: Path) -> None:
    db_file = tmp_path / "snapshot_catalog.sqlite"
    with open_catalog(db_file, create=True) as catalog:
        for run_dir in ("v0.10/mm_stateless", "v0.10/mm_stateless_resume", "v0.11/mm_scalar"):
            import_run_directory(catalog, RUNS / run_dir)
        live = catalog.ensure_run(tmp_path / "live_run", model_name="macro_micro")
        catalog.set_run_status(live.id, RunStatus.FINISHED)
        expected = catalog.runs()

    found = sqlite_runs(db_file)

    assert found == expected
    assert any(run.finished_at is not None for run in expected)
    assert any(run.resumed_from_workflow_snapshot_id is not None for run in expected)


def test_sqlite_runs_leaves_other_revisions_to_the_catalog(tmp_path: Path) -> None:
    db_file = tmp_path / "snapshot_catalog.sqlite"
    open_catalog(db_file, create=True).close()
    connection = sqlite3.connect(db_file)
    with connection:
        connection.execute("UPDATE muscle_catalog_alembic_version SET version_num = '0001'")
    connection.close()
    assert sqlite_runs(db_file) is None
