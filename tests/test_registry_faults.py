"""The registry under faults: bad submissions, a locked or lost catalog, duplicates, shutdown.

Each test sends a real run's submission stream (MUSCLE3 0.10, mm_vector5: 41
submissions, 11 workflow snapshots) through a SnapshotRegistry with a fault
added, and compares what ends up in the catalog and in the resume files with
a fault-free run of the same stream.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from catalog.catalog import Catalog, open_catalog
from catalog.cli import cli
from catalog.enums import SnapshotStatus
from catalog.location import sqlite_file
from catalog.payload import encode_snapshot
from catalog.records import NewSnapshot
from catalog.registry import SnapshotRegistry
from catalog.resilience import MAX_DELAY_S, Backoff, record_isolating
from catalog.spill import REPLAYED_SUFFIX, RUN_DIR_SPILL, SPILL_SUFFIX, replay_spill_file
from tests.registry_streams import FIXED_DATE, all_streams

STREAM = next(s for s in all_streams() if s.name == "v0.10/mm_vector5")
#: A placeholder name for a bad submission slipped into the stream.
BAD_FILE = "instances/macro/snapshots/macro_999.pack"


@dataclass(frozen=True)
class Outcome:
    """What a run leaves behind, independent of backend and directory."""

    snapshots: list[tuple[str, str]]
    workflows: list[tuple[str | None, dict[str, str | None], str]]
    resume_files: list[str]


def outcome(catalog: Catalog, run_id: int, run_dir: Path) -> Outcome:
    return Outcome(
        snapshots=[(r.instance, r.snapshot_filename) for r in catalog.snapshots(run=run_id)],
        workflows=[
            (w.completed_by, dict(w.resume), w.description)
            for w in catalog.workflow_snapshots(run=run_id)
        ],
        resume_files=[
            p.read_text() for p in sorted((run_dir / "snapshots").glob("snapshot_*.ymmsl"))
        ],
    )


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The fault-free run of the stream."""
    run_dir = tmp_path_factory.mktemp("clean")
    with open_catalog(run_dir / "cat.sqlite", create=True) as catalog:
        registry = registry_for(catalog, run_dir)
        feed(registry, STREAM.submissions)
        registry.shutdown()
        assert registry.stats.errors == []
        found = outcome(catalog, registry.run.id, run_dir)
    assert len(found.snapshots) == 41 and len(found.workflows) == 11
    return found


def registry_for(catalog: Catalog, run_dir: Path, **options: Any) -> SnapshotRegistry:
    return SnapshotRegistry(
        STREAM.configuration(), run_dir / "snapshots", catalog, clock=lambda: FIXED_DATE, **options
    )


def feed(registry: SnapshotRegistry, submissions: list[tuple[str, dict[str, Any]]]) -> None:
    for instance, metadata in submissions:
        registry.register_snapshot(instance, metadata)


def with_bad(bad: dict[str, Any], at: int = 20) -> list[tuple[str, dict[str, Any]]]:
    """The stream with one bad submission of ``macro`` slipped in."""
    submissions = list(STREAM.submissions)
    template = next(m for i, m in submissions if i == "macro")
    submissions.insert(at, ("macro", template | {"snapshot_filename": BAD_FILE} | bad))
    return submissions


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Wait until the registry's worker got somewhere (no assertion on how long it took)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.02)


# --------------------------------------------------------------------------- bad submissions


@pytest.mark.parametrize(
    "bad",
    [
        {"port_message_counts": {"o_i": [2**70], "s": [0]}},
        {"snapshot_filename": "instances/macro/snapshots/macro\x00_1.pack"},
    ],
    ids=["count-2**70", "NUL-in-file-name"],
)
def test_one_bad_submission_is_rejected_alone(
    catalog: Catalog, tmp_path: Path, clean: Outcome, bad: dict[str, Any]
) -> None:
    registry = registry_for(catalog, tmp_path)
    feed(registry, with_bad(bad))
    registry.shutdown()
    assert registry.stats.rejected == 1
    assert registry.stats.submissions == 41
    (error,) = registry.stats.errors
    assert "'macro'" in error and "Rejected" in error
    assert outcome(catalog, registry.run.id, tmp_path) == clean
    assert "1 rejected" in registry.stats.summary()


def test_every_kind_of_malformed_metadata_is_rejected_alone(
    catalog: Catalog, tmp_path: Path, clean: Outcome, caplog: pytest.LogCaptureFixture
) -> None:
    malformed: list[dict[str, Any]] = [
        {"port_message_counts": {"o_i": [-5]}},
        {"port_message_counts": {"o_i": [2**63]}},
        {"port_message_counts": {"o_i": ["many"]}},
        {"port_message_counts": None},
        {"timestamp": "later"},
        {"next_timestamp": [1]},
        {"wallclock_time": None},
        {"triggers": [None]},
        {"is_final_snapshot": "no"},
        {"snapshot_filename": None},
    ]
    submissions = list(STREAM.submissions)
    for n, bad in enumerate(malformed):
        submissions.insert(3 * n + 1, with_bad(bad)[20])
    submissions.insert(5, ("nosuchcomponent", STREAM.submissions[0][1]))
    submissions.insert(9, ("micro[99]", STREAM.submissions[0][1]))
    registry = registry_for(catalog, tmp_path)
    feed(registry, submissions)  # never raises into MUSCLE3's manager
    registry.shutdown()
    assert registry.stats.rejected == len(malformed) + 2
    assert len(registry.stats.errors) == len(malformed) + 2
    assert all("Rejected the snapshot submitted by" in e for e in registry.stats.errors)
    assert not any("KeyError" in e or "TypeError" in e for e in registry.stats.errors)
    assert sum("Rejected the snapshot" in r.getMessage() for r in caplog.records) == len(
        registry.stats.errors
    )
    assert outcome(catalog, registry.run.id, tmp_path) == clean


def test_a_snapshot_the_database_refuses_is_isolated_from_its_batch(
    catalog: Catalog, tmp_path: Path, clean: Outcome
) -> None:
    """Metadata that passes the checks, of a .pack file whose number no catalog can store.

    Port counts are stored as JSON text (any size), so the refused value is
    the file name's sequence number, beyond a 64-bit integer column.
    """
    refused_name = "instances/macro/snapshots/macro_99999999999999999999.pack"
    bad_file = tmp_path / refused_name
    bad_file.parent.mkdir(parents=True)
    template = next(m for i, m in STREAM.submissions if i == "macro")
    bad_file.write_bytes(encode_snapshot(_snapshot_of(template)))
    # synchronous: recorded as they come, so the bad one shares a batch with good ones
    registry = registry_for(catalog, tmp_path)
    feed(registry, with_bad({"snapshot_filename": refused_name}))
    registry.shutdown()
    assert registry.stats.rejected == 1
    assert "the catalog refused the snapshot" in registry.stats.errors[0]
    assert refused_name in registry.stats.errors[0]
    assert outcome(catalog, registry.run.id, tmp_path) == clean


def _snapshot_of(metadata: dict[str, Any]) -> Any:
    from catalog.snapshot import SnapshotMetadata

    return SnapshotMetadata(**metadata).to_snapshot()


def test_bisecting_a_refused_batch_records_every_other_item(catalog: Catalog) -> None:
    run = catalog.ensure_run(Path("/runs/bisect"))
    bad_names = {7: "number"}  # beyond a 64-bit integer column (counts are JSON: any size)
    if catalog.url.get_backend_name() == "postgresql":
        bad_names[13] = "nul"  # PostgreSQL text cannot hold NUL; SQLite's can
    items = []
    for n in range(20):
        snapshot = _snapshot_of(STREAM.submissions[0][1])
        path = f"/runs/bisect/instances/macro/snapshots/macro_{n}.pack"
        sequence = 2**70 if bad_names.get(n) == "number" else n
        if bad_names.get(n) == "nul":
            path = f"/runs/bisect/instances/macro/snapshots/mac\x00ro_{n}.pack"
        items.append(
            NewSnapshot("macro", Path(path), os.path.basename(path), snapshot, None, None,
                        sequence, status=SnapshotStatus.MISSING)
        )  # fmt: skip
    refused: list[int] = []
    record_isolating(
        items,
        lambda batch: catalog.record_snapshot_batch(run.id, batch),
        lambda item, _exc: refused.append(items.index(item)),
    )
    assert refused == sorted(bad_names)
    recorded = [r.sequence for r in catalog.snapshots(run=run.id)]
    assert recorded == [n for n in range(20) if n not in bad_names]


# --------------------------------------------------------------------------- duplicates


def test_the_same_submission_twice_changes_nothing(
    catalog: Catalog, tmp_path: Path, clean: Outcome
) -> None:
    doubled = [s for s in STREAM.submissions for _ in (1, 2)]
    doubled += STREAM.submissions[:5]  # and again much later
    registry = registry_for(catalog, tmp_path)
    feed(registry, doubled)
    registry.shutdown()
    assert registry.stats.duplicates == len(STREAM.submissions) + 5
    assert registry.stats.submissions == len(STREAM.submissions)
    assert registry.stats.workflow_snapshots == len(clean.workflows)
    assert outcome(catalog, registry.run.id, tmp_path) == clean


# --------------------------------------------------------------------------- an unavailable catalog


@contextmanager
def holding_lock(catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Yield ``(open_registry_catalog, hold)``; ``hold(run_id)`` makes another writer lock the run.

    The registry's catalog gets a short lock timeout (SQLite's busy timeout,
    PostgreSQL's lock_timeout) so that each attempt fails quickly; ``hold``
    returns the function that releases the lock.
    """
    if "://" not in catalog_url:

        def hold_sqlite(_run_id: int) -> Callable[[], None]:
            connection = sqlite3.connect(catalog_url, isolation_level=None)
            connection.execute("BEGIN IMMEDIATE")

            def release() -> None:
                connection.rollback()
                connection.close()

            return release

        yield (lambda: open_catalog(catalog_url, create=True, lock_timeout_s=0.1)), hold_sqlite
        return
    url = make_url(catalog_url).update_query_dict({"application_name": APP_NAME})
    engine = create_engine(url)

    def open_with_lock_timeout() -> Catalog:
        # Set after opening: the schema check waits for a server-wide advisory lock
        # other tests may hold, which a short lock_timeout would turn into a failure.
        opened = open_catalog(url.render_as_string(hide_password=False), create=True)

        @event.listens_for(opened.engine, "connect")
        def _short_lock_timeout(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("SET SESSION lock_timeout = 100")
            dbapi_connection.commit()

        opened.engine.dispose()
        return opened

    def hold_pg(run_id: int) -> Callable[[], None]:
        connection = engine.connect()
        connection.begin()
        connection.execute(text("SELECT id FROM runs WHERE id = :id FOR UPDATE"), {"id": run_id})

        def release() -> None:
            try:
                connection.rollback()
                connection.close()
            except Exception:  # killed with the others: the lock went with it
                connection.invalidate()

        return release

    try:
        yield open_with_lock_timeout, hold_pg
    finally:
        engine.dispose()


#: The application name of this module's PostgreSQL connections, so that only they are killed.
APP_NAME = f"registry-faults-{uuid.uuid4().hex[:8]}"


def test_a_locked_catalog_loses_nothing_and_the_search_goes_on(
    catalog_url: str, tmp_path: Path, clean: Outcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    with holding_lock(catalog_url, monkeypatch) as (opener, hold), opener() as catalog:
        registry = registry_for(catalog, tmp_path)
        release = hold(registry.run.id)
        try:
            feed(registry, STREAM.submissions)
            wait_for(lambda: registry.stats.submissions == 41, "all submissions searched")
            wait_for(lambda: registry.stats.retries >= 3, "the registry retrying")
            # resume files do not wait for the catalog
            resume_files = list((tmp_path / "snapshots").glob("snapshot_*.ymmsl"))
            assert len(resume_files) == len(clean.resume_files)
            assert catalog.snapshots(run=registry.run.id) == []
        finally:
            release()
        registry.shutdown()
        assert registry.stats.spilled == 0
        assert registry.stats.errors == []
        assert outcome(catalog, registry.run.id, tmp_path) == clean


def _terminate_connections(pg_url: str) -> int:
    admin = create_engine(make_url(pg_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            killed = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = :name "
                    "AND pid <> pg_backend_pid()"
                ),
                {"name": APP_NAME},
            ).scalar_one()
    finally:
        admin.dispose()
    return int(killed)


def test_killed_postgresql_connections_lose_nothing(
    pg_url: str, tmp_path: Path, clean: Outcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    with holding_lock(pg_url, monkeypatch) as (opener, hold), opener() as catalog:
        registry = registry_for(catalog, tmp_path)
        release = hold(registry.run.id)
        feed(registry, STREAM.submissions[:20])
        wait_for(lambda: registry.stats.retries >= 2, "the registry retrying")
        assert _terminate_connections(pg_url) >= 2  # the holder and the registry's
        release()
        feed(registry, STREAM.submissions[20:])
        registry.shutdown()
        assert registry.stats.spilled == 0
        assert registry.stats.errors == []
        assert outcome(catalog, registry.run.id, tmp_path) == clean


@pytest.mark.skipif(
    os.environ.get("MUSCLE_CATALOG_TEST_PG_RESTART") != "1"
    or shutil.which("pg_ctlcluster") is None,
    reason="restarts the shared PostgreSQL server: set MUSCLE_CATALOG_TEST_PG_RESTART=1 "
    "(needs pg_ctlcluster and the right to run it)",
)
def test_a_postgresql_restart_mid_stream_loses_nothing(
    pg_server: str, tmp_path: Path, clean: Outcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A schema of our own with a pinging admin engine: conftest's would hold a dead connection.
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(pg_server).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        location = url.render_as_string(hide_password=False)
        with holding_lock(location, monkeypatch) as (opener, hold), opener() as catalog:
            registry = registry_for(catalog, tmp_path, shutdown_retry_s=120.0)
            release = hold(registry.run.id)
            feed(registry, STREAM.submissions[:20])
            wait_for(lambda: registry.stats.retries >= 2, "the registry retrying")
            subprocess.run(["pg_ctlcluster", "15", "main", "restart"], check=True)
            release()
            feed(registry, STREAM.submissions[20:])
            registry.shutdown()
            assert registry.stats.spilled == 0
            assert registry.stats.errors == []
            assert outcome(catalog, registry.run.id, tmp_path) == clean
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# --------------------------------------------------------------------------- shutdown and replay


def _spill_location(catalog_url: str, catalog: Catalog, run_dir: Path) -> Path:
    db_file = sqlite_file(catalog.url)
    if db_file is not None:
        return db_file.with_name(db_file.name + SPILL_SUFFIX)
    return run_dir / RUN_DIR_SPILL


def _spilled_run(
    catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path, SnapshotRegistry]:
    """A run whose registry shut down while the catalog was locked: (run dir, spill, registry)."""
    run_dir = tmp_path / "run"
    (run_dir / "instances").mkdir(parents=True)
    (run_dir / "configuration.ymmsl").write_text(STREAM.ymmsl_text)
    with holding_lock(catalog_url, monkeypatch) as (opener, hold), opener() as catalog:
        registry = registry_for(catalog, run_dir, shutdown_retry_s=0.3)
        release = hold(registry.run.id)
        try:
            feed(registry, STREAM.submissions[:30])
            wait_for(lambda: registry.stats.retries >= 1, "the registry retrying")
            feed(registry, STREAM.submissions[30:])
            registry.shutdown()
        finally:
            release()
        spill = _spill_location(catalog_url, catalog, run_dir)
    assert registry.stats.spill_file == spill
    assert spill.is_file()
    lines = spill.read_text().splitlines()
    assert registry.stats.spilled == len(lines) == 41 + 11
    assert "left unrecorded in" in registry.stats.summary()
    return run_dir, spill, registry


def test_shutdown_with_the_catalog_locked_spills_and_import_replays(
    catalog_url: str, tmp_path: Path, clean: Outcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, spill, registry = _spilled_run(catalog_url, tmp_path, monkeypatch)
    runner = CliRunner()
    result = runner.invoke(cli, ["--catalog", catalog_url, "import", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert f"Replayed {spill}: 41 unrecorded submissions recorded" in result.output
    assert not spill.exists()
    assert spill.with_name(spill.name + REPLAYED_SUFFIX).is_file()
    with open_catalog(catalog_url) as catalog:
        assert outcome(catalog, registry.run.id, run_dir) == clean
    again = runner.invoke(cli, ["--catalog", catalog_url, "import", str(run_dir)])
    assert again.exit_code == 0, again.output
    assert "Replayed" not in again.output
    with open_catalog(catalog_url) as catalog:
        assert outcome(catalog, registry.run.id, run_dir) == clean


def test_verify_reports_a_spill_file_and_fix_replays_it(
    catalog_url: str, tmp_path: Path, clean: Outcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, spill, registry = _spilled_run(catalog_url, tmp_path, monkeypatch)
    runner = CliRunner()
    found = runner.invoke(cli, ["--catalog", catalog_url, "verify"])
    assert found.exit_code == 1
    assert f"unrecorded [] {spill}: 52 submissions or workflow snapshots" in found.output
    fixed = runner.invoke(cli, ["--catalog", catalog_url, "verify", "--fix"])
    assert f"fixed: Replayed {spill}: 41 unrecorded submissions recorded" in fixed.output
    assert "11 workflow snapshots recorded" in fixed.output
    with open_catalog(catalog_url) as catalog:
        assert outcome(catalog, registry.run.id, run_dir) == clean


def test_replaying_keeps_what_cannot_be_recorded(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spill = tmp_path / "lost.unrecorded.jsonl"
    from catalog.spill import snapshot_entry, workflow_entry, write_spill
    from catalog.submission import Submission

    run_dir = tmp_path / "run"
    good = Submission.from_metadata(*STREAM.submissions[0])
    write_spill(
        spill,
        [
            snapshot_entry(run_dir, "mm", good, str(run_dir / good.metadata.snapshot_filename)),
            "{not json\n",
            '{"version": 1, "kind": "snapshot"}\n',
            workflow_entry(run_dir, {"macro": str(run_dir / "nowhere.pack")}, None, "d", None),
        ],
    )
    report = replay_spill_file(catalog, spill)
    assert report.snapshots_added == 1
    assert len(report.not_replayed) == 3
    assert "unreadable" in report.not_replayed[0]
    assert "without its run directory" in report.not_replayed[1]
    assert "nowhere.pack" in report.not_replayed[2]
    kept = spill.read_text().splitlines()
    assert len(kept) == 3 and kept[0] == "{not json"
    assert report.renamed_to is None
    again = replay_spill_file(catalog, spill)
    assert again.snapshots_added == 0 and again.snapshots_already_known == 0
    assert len(again.not_replayed) == 3


def test_a_synchronous_registry_catches_up_after_the_lock(
    catalog_url: str, tmp_path: Path, clean: Outcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    with holding_lock(catalog_url, monkeypatch) as (opener, hold), opener() as catalog:
        registry = registry_for(catalog, tmp_path, threaded=False)
        release = hold(registry.run.id)
        try:
            feed(registry, STREAM.submissions[:25])
            assert registry.stats.retries >= 1
            assert catalog.snapshots(run=registry.run.id) == []
        finally:
            release()
        feed(registry, STREAM.submissions[25:])
        registry.shutdown()
        assert registry.stats.spilled == 0
        assert outcome(catalog, registry.run.id, tmp_path) == clean


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_success() -> None:
    backoff = Backoff()
    delays = [backoff.next_delay() for _ in range(10)]
    assert delays[:4] == [0.05, 0.1, 0.2, 0.4]
    assert delays[-1] == MAX_DELAY_S == 5.0
    assert delays == sorted(delays)
    backoff.reset()
    assert backoff.next_delay() == 0.05
