"""Schema revisions: creating, refusing newer catalogs, asking for upgrades, backing up."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from catalog import (
    Catalog,
    CatalogNotFoundError,
    CatalogTooNewError,
    CatalogTooOldError,
    SchemaVersionError,
    VersionTableError,
    open_catalog,
)
from catalog.db import versioning
from catalog.db.schema import VERSION_TABLE, Base
from catalog.location import display_location, to_url


def _stamp(url: str, revision: str) -> None:
    engine = create_engine(to_url(url))
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = :r"), {"r": revision})
    engine.dispose()


def test_migrations_create_exactly_the_models(catalog: Catalog) -> None:
    with catalog.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, Base.metadata) == []
        assert versioning.current_revision(conn) == versioning.head_revision()


def test_catalog_from_a_newer_release_is_refused_untouched(
    catalog: Catalog, catalog_url: str, tmp_path: Path
) -> None:
    catalog.ensure_run(tmp_path / "run")
    catalog.close()
    _stamp(catalog_url, "ffffffffffff")
    with pytest.raises(CatalogTooNewError, match="newer") as info:
        open_catalog(catalog_url, create=True)
    assert "pip install -U" in str(info.value)
    with pytest.raises(CatalogTooNewError):
        Catalog.upgrade(catalog_url)
    _stamp(catalog_url, versioning.head_revision())
    with open_catalog(catalog_url, create=True) as again:
        assert [r.name for r in again.runs()] == ["run"]


def test_older_catalog_names_the_upgrade_command(
    catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_catalog(catalog_url, create=True).close()
    real_head = versioning.head_revision()
    monkeypatch.setattr(versioning, "head_revision", lambda: "9999")
    monkeypatch.setattr(versioning, "known_revisions", lambda: {real_head, "9999"})
    with pytest.raises(CatalogTooOldError, match=r"muscle-catalog --catalog .* upgrade"):
        open_catalog(catalog_url, create=True)


def test_upgrade_backs_up_sqlite_first(tmp_path: Path) -> None:
    path = tmp_path / "cat.sqlite"
    Catalog.upgrade(path)  # creates an empty catalog at head
    assert Catalog.upgrade(path) == (versioning.head_revision(), versioning.head_revision(), None)
    # A catalog stamped at no revision but with our tables is refused as damaged.
    engine = create_engine(to_url(path))
    with engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {VERSION_TABLE}"))
    engine.dispose()
    with pytest.raises(SchemaVersionError, match=r"is damaged: .* version table .* is empty"):
        open_catalog(path, create=True)
    # upgrade says the same (it said the version table was missing), and changes nothing
    before = path.read_bytes()
    with pytest.raises(SchemaVersionError, match=r"is damaged: .* version table .* is empty"):
        Catalog.upgrade(path)
    assert path.read_bytes() == before


def test_backup_is_a_consistent_copy(tmp_path: Path) -> None:
    path = tmp_path / "cat.sqlite"
    with open_catalog(path, create=True) as cat:
        cat.ensure_run(tmp_path / "run")
    backup = versioning.backup_sqlite(path, versioning.head_revision())
    assert backup.name.startswith("cat.sqlite.bak-")
    with open_catalog(backup, create=True) as copy:
        assert [r.name for r in copy.runs()] == ["run"]


def test_empty_database_without_create_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.sqlite").touch()
    with pytest.raises(SchemaVersionError, match="not a snapshot catalog yet"):
        open_catalog(tmp_path / "empty.sqlite", create=False)
    assert (tmp_path / "empty.sqlite").stat().st_size == 0
    with pytest.raises(CatalogNotFoundError, match="There is no catalog at"):
        open_catalog(tmp_path / "new.sqlite")
    assert not (tmp_path / "new.sqlite").exists()


def _open_and_record(url: str, run_dir: str, index: int) -> int:
    with open_catalog(url, create=True) as cat:
        return cat.ensure_run(Path(run_dir)).id


def test_many_processes_creating_one_catalog_create_it_once(
    catalog_url: str, tmp_path: Path
) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(6) as pool:
        ids = pool.starmap(
            _open_and_record, [(catalog_url, str(tmp_path / "run"), i) for i in range(12)]
        )
    assert len(set(ids)) == 1
    with open_catalog(catalog_url, create=True) as cat:
        assert len(cat.runs()) == 1


def test_the_models_revision_is_the_newest_migration() -> None:
    assert versioning.head_revision() == versioning.alembic_head_revision()


def test_opening_an_up_to_date_catalog_does_not_load_alembic(tmp_path: Path) -> None:
    """Every save and command opens the catalog; Alembic is only needed to create or upgrade."""
    db_file = tmp_path / "cat.sqlite"
    open_catalog(db_file, create=True).close()
    code = (
        "import sys, catalog; catalog.open_catalog(sys.argv[1], create=True).close(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(db_file)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_two_revisions_in_the_version_table_is_one_clear_error(catalog_url: str) -> None:
    open_catalog(catalog_url, create=True).close()
    engine = create_engine(to_url(catalog_url))
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ('0001')"))
    engine.dispose()
    with pytest.raises(SchemaVersionError, match="holds 2 revisions"):
        open_catalog(catalog_url, create=True)


def test_a_damaged_version_table_names_the_catalog_and_the_fix_and_writes_nothing(
    catalog_url: str,
) -> None:
    open_catalog(catalog_url, create=True).close()
    engine = create_engine(to_url(catalog_url))
    with engine.begin() as conn:  # the head revision stays the first row
        conn.execute(text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ('0001')"))
    engine.dispose()
    sqlite_before = Path(catalog_url).read_bytes() if "://" not in catalog_url else None
    for attempt in (lambda: open_catalog(catalog_url), lambda: Catalog.upgrade(catalog_url)):
        with pytest.raises(VersionTableError) as raised:
            attempt()
        message = str(raised.value)
        assert f"The catalog {display_location(to_url(catalog_url))} is damaged" in message
        assert f"holds 2 revisions (0001, {versioning.head_revision()})" in message
        assert f"DELETE FROM {VERSION_TABLE} WHERE version_num <> '<that revision>'" in message
    if sqlite_before is not None:
        assert Path(catalog_url).read_bytes() == sqlite_before
    # the fix the message gives works
    engine = create_engine(to_url(catalog_url))
    with engine.begin() as conn:
        conn.execute(
            text(f"DELETE FROM {VERSION_TABLE} WHERE version_num <> '{versioning.head_revision()}'")
        )
    engine.dispose()
    open_catalog(catalog_url).close()


def test_an_unknown_revision_says_it_may_be_damage(catalog_url: str) -> None:
    open_catalog(catalog_url, create=True).close()
    _stamp(catalog_url, "not-a-revision")
    with pytest.raises(CatalogTooNewError, match=r"its version table .* was damaged: restore"):
        open_catalog(catalog_url)
