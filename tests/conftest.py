"""Shared fixtures: the catalog backend matrix (SQLite and PostgreSQL) and test data paths.

Every test that takes ``catalog_url`` or ``catalog`` runs once on a SQLite file
and once on PostgreSQL. PostgreSQL comes from ``MUSCLE_CATALOG_TEST_PG_URL``
(default: the local server over its Unix socket, database ``catalog_test``);
each test gets a schema of its own, dropped afterwards. Without a reachable
server those tests are skipped with the reason, unless
``MUSCLE_CATALOG_REQUIRE_PG=1`` (set by ``.ci/run``) turns that into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from catalog import Catalog, open_catalog

DATA = Path(__file__).parent / "data"
FORMATS = DATA / "formats"
RUNS = DATA / "runs"
REGISTRY_CASES = DATA / "registry_cases"

DEFAULT_PG_URL = "postgresql+psycopg:///catalog_test?host=/var/run/postgresql"


def _pg_base_url() -> str:
    return os.environ.get("MUSCLE_CATALOG_TEST_PG_URL", DEFAULT_PG_URL)


def _pg_required() -> bool:
    return os.environ.get("MUSCLE_CATALOG_REQUIRE_PG", "") == "1"


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The PostgreSQL base URL, after checking that the server answers."""
    url = _pg_base_url()
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {url} ({type(exc).__name__}: {exc})"
        if _pg_required():
            pytest.fail(f"MUSCLE_CATALOG_REQUIRE_PG=1 but {reason}")
        pytest.skip(reason + "; set MUSCLE_CATALOG_TEST_PG_URL to run these tests")
    return url


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(pg_server).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty catalog location on each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "snapshot_catalog.sqlite")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    """A fresh catalog, opened on each backend."""
    opened = open_catalog(catalog_url, create=True)
    try:
        yield opened
    finally:
        opened.close()
