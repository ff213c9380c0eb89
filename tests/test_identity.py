"""One workflow snapshot per run and member set, whoever finds it, enforced by the database."""

from __future__ import annotations

import importlib.util
import json
import random
import shutil
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from catalog import (
    Catalog,
    NewWorkflowSnapshot,
    Source,
    import_run_directory,
    open_catalog,
    reindex_run,
)
from catalog.db.identity import members_key
from catalog.location import to_url

from .conftest import DATA, RUNS

MIGRATION = Path(__file__).parent.parent / "migrations" / "versions"


def _migration_0002() -> ModuleType:
    (path,) = MIGRATION.glob("0002_*.py")
    spec = importlib.util.spec_from_file_location("migration_0002", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migration_computes_the_same_key_as_the_package() -> None:
    frozen = _migration_0002()._members_key
    rng = random.Random(7)
    for _ in range(200):
        members = {
            f"m{rng.randrange(30)}[{rng.randrange(5)}]": rng.choice([None, rng.randrange(10**6)])
            for _ in range(rng.randrange(1, 12))
        }
        assert frozen(dict(members)) == members_key(members)
    assert members_key({"a": 1, "b": None}) == members_key({"b": None, "a": 1})
    assert members_key({"a": 1, "b": None}) != members_key({"a": 1, "b": 2})


def test_import_then_reindex_lists_each_workflow_snapshot_once(catalog: Catalog) -> None:
    report = import_run_directory(catalog, RUNS / "v0.10" / "mm_vector5")
    imported = catalog.workflow_snapshots(run=report.run_id)
    reindexed = reindex_run(catalog, report.run_id)
    workflows = catalog.workflow_snapshots(run=report.run_id)
    members = Counter(tuple(sorted(w.member_ids.items())) for w in workflows)
    assert max(members.values()) == 1
    assert reindexed.already_recorded > 0
    assert (
        len(workflows) == len(imported) + reindexed.workflow_snapshots - reindexed.already_recorded
    )
    # and importing again adds nothing either
    again = import_run_directory(catalog, RUNS / "v0.10" / "mm_vector5")
    assert again.workflow_snapshots_added == 0
    assert catalog.workflow_snapshots(run=report.run_id) == workflows


def test_the_database_refuses_a_second_row_with_the_same_members(
    catalog: Catalog, catalog_url: str
) -> None:
    report = import_run_directory(catalog, RUNS / "v0.10" / "mm_stateless")
    first = catalog.workflow_snapshots(run=report.run_id)[0]
    engine = create_engine(to_url(catalog_url))
    try:
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO workflow_snapshots (run_id, sequence, description, source, "
                    "created_at, status, members_key) SELECT run_id, 999, description, "
                    "'watch', created_at, status, members_key FROM workflow_snapshots "
                    "WHERE id = :id"
                ),
                {"id": first.id},
            )
    finally:
        engine.dispose()


def test_upgrading_keys_the_oldest_of_each_duplicate_and_leaves_the_rest(tmp_path: Path) -> None:
    """The 0001 asset holds mm_stateless imported and reindexed: the same resume points twice."""
    asset = DATA / "catalogs" / "0001.sqlite"
    copy = tmp_path / asset.name
    shutil.copy(asset, copy)
    Catalog.upgrade(copy)
    recorded = json.loads((DATA / "catalogs" / "0001.records.json").read_text())
    seen: set[tuple[int, str]] = set()
    expected_null = set()
    for workflow in sorted(recorded["workflow_snapshots"], key=lambda w: w["id"]):
        key = (workflow["run_id"], members_key(workflow["member_ids"]))
        if key in seen:
            expected_null.add(workflow["id"])
        seen.add(key)
    assert expected_null, "the asset should hold duplicates for this test to mean anything"
    engine = create_engine(to_url(copy))
    try:
        with engine.connect() as connection:
            query = text("SELECT id, members_key FROM workflow_snapshots")
            rows = {wid: key for wid, key in connection.execute(query)}
    finally:
        engine.dispose()
    assert {wid for wid, key in rows.items() if key is None} == expected_null
    with open_catalog(copy, create=True) as cat:
        # recording the member set of a kept one again is a no-op
        kept = next(w for w in cat.workflow_snapshots() if w.id not in expected_null)
        again = NewWorkflowSnapshot(kept.member_ids, kept.description, source=Source.WATCH)
        assert cat.record_workflow_snapshots(kept.run_id, [again]) == []
