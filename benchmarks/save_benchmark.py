"""What one save costs: libmuscle 0.10's own save against ours, and the floors under both.

One command::

    python benchmarks/save_benchmark.py                      # tiny, 1 MiB, 64 MiB
    python benchmarks/save_benchmark.py --prefill 100000     # also: flat as the catalog grows
    python benchmarks/save_benchmark.py --smoke              # tiny payload, 3 repeats

For each payload (a tiny message, a 1 MiB and a 64 MiB float64 array) and
each catalog backend (SQLite with its default, durable settings; PostgreSQL
from ``--pg-url``, skipped when unreachable) one save is timed, interleaved
over ``--repeat`` rounds so that the shared machine's load hits every side
alike, and the medians are printed. Before each save everything is flushed
to disk (``os.sync``, not timed), so that no side's fsync pays for another
side's writes.

* ``libmuscle``: MUSCLE3 0.10's ``libmuscle.snapshot_manager.SnapshotManager``
  saving the same message (encode, write, no fsync, no catalog);
* ``floor``: the OS calls of our durable write alone, on bytes already
  encoded (write a temporary file, fsync, link, unlink, fsync the directory);
* ``raw SQL``: SQLite: the very statements one of our saves executes
  (captured from a real save through a recording ``sqlite3`` connection),
  replayed with the stdlib ``sqlite3`` in one transaction with the same
  pragmas; PostgreSQL: a bare psycopg INSERT of one row and COMMIT;
* SQLite's own floors, to show what any catalog write costs here: ``commit``,
  the cheapest write transaction SQLite has (``BEGIN IMMEDIATE``, one short
  row into a table without indexes, ``COMMIT``, same pragmas), and ``row``,
  the snapshot row's INSERT alone out of the captured statements (the real
  table with its indexes, no child rows);
* ``ours``: the whole save through ``catalog.instance.SnapshotManager``
  (encode, durable write, hash, record, metadata), and ``bookkeeping``: the
  part of it spent recording in the catalog (its ``_record`` step, timed
  inside the save).

``--prefill N`` also times the tiny save against a catalog that already
holds N snapshot rows (filled through the public bulk API,
``Catalog.record_snapshots``), beside an empty one, to show that a save's
cost does not grow with the catalog.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from catalog.catalog import open_catalog  # noqa: E402
from catalog.db.sqlite_settings import apply_connection_pragmas  # noqa: E402
from catalog.enums import SnapshotStatus  # noqa: E402
from catalog.instance import SnapshotManager  # noqa: E402
from catalog.message import Message  # noqa: E402
from catalog.payload import encode_snapshot  # noqa: E402
from catalog.records import NewSnapshot  # noqa: E402
from catalog.snapshot import Snapshot  # noqa: E402

DEFAULT_PG_URL = "postgresql+psycopg:///catalog_test?host=/var/run/postgresql"
MIB = 1 << 20
INSTANCE = "micro[7]"
COUNTS = {"f_init": [12], "o_f": [12], "muscle_settings_in": [0]}


# --------------------------------------------------------------------------- payloads


def payloads(args: argparse.Namespace) -> list[tuple[str, Any, int]]:
    """(name, message data, repeats) of each payload timed."""
    chosen: list[tuple[str, Any, int]] = [("tiny", {"t": 1.5, "step": 12}, args.repeat)]
    if args.smoke:
        return chosen
    chosen.append(("1 MiB", np.arange(MIB // 8, dtype=np.float64), max(3, args.repeat // 2)))
    if not args.no_large:
        chosen.append(("64 MiB", np.arange(64 * MIB // 8, dtype=np.float64), args.repeat_large))
    return chosen


class _Ports:
    """The part of MUSCLE3 0.10's port manager a save asks for (both sides use it)."""

    def get_message_counts(self) -> dict[str, list[int]]:
        return {port: list(counts) for port, counts in COUNTS.items()}

    def list_ports(self) -> dict[Any, list[str]]:
        return {}

    def settings_in_connected(self) -> bool:
        return False


class _Manager:
    """Stands in for the manager client: a submission costs nothing here."""

    def submit_snapshot_metadata(self, metadata: Any) -> None:
        del metadata


# --------------------------------------------------------------------------- the sides


class LibmuscleSide:
    """MUSCLE3 0.10's SnapshotManager, instantiated directly (no Instance, no manager)."""

    def __init__(self, directory: Path, data: Any) -> None:
        from libmuscle.communicator import Message as LibmuscleMessage
        from libmuscle.snapshot_manager import SnapshotManager as LibmuscleManager
        from ymmsl.v0_2 import Reference, Settings

        self.directory = directory
        self.manager = LibmuscleManager(Reference(INSTANCE), _Manager(), _Ports())  # type: ignore[arg-type]
        self.manager.prepare_resume(None, directory)
        self.message = LibmuscleMessage(12.0, 13.0, data)
        self.settings = Settings()

    def save(self) -> float:
        """One save; its seconds."""
        return _timed_save(self.manager, self.message, self.settings, self.directory)


class FloorSide:
    """The OS calls of our durable write, on bytes encoded beforehand."""

    def __init__(self, directory: Path, data: bytes) -> None:
        self.directory = directory
        self.data = data
        self.number = 0

    def save(self) -> float:
        """One durable write; its seconds."""
        self.number += 1
        directory, data = self.directory, self.data
        start = time.perf_counter()
        temporary = directory / f".floor.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(temporary, directory / f"floor_{self.number}.pack")
        os.unlink(temporary)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        elapsed = time.perf_counter() - start
        _remove_packs(directory)
        return elapsed


class TimedSnapshotManager(SnapshotManager):
    """Our SnapshotManager, timing the catalog step of each save from inside it."""

    last_record_s: float | None = None

    def _record(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return super()._record(*args, **kwargs)
        finally:
            self.last_record_s = time.perf_counter() - start


class OursSide:
    """A whole save through catalog.instance.SnapshotManager, in MUSCLE3's run layout."""

    def __init__(self, run_dir: Path, catalog: str, data: Any, warmup: int = 2) -> None:
        self.snapshots = run_dir / "instances" / INSTANCE / "snapshots"
        self.manager = TimedSnapshotManager(INSTANCE, _Manager(), _Ports(), catalog)
        self.manager.prepare_resume(None, self.snapshots)
        self.message = Message(12.0, 13.0, data)
        from ymmsl import Settings

        self.settings = Settings()
        for _ in range(warmup):  # the first save opens the catalog and records the run
            self.save()

    def save(self) -> float:
        """One whole save; its seconds (the catalog step is kept in the manager)."""
        self.manager.last_record_s = None
        return _timed_save(self.manager, self.message, self.settings, self.snapshots)

    def close(self) -> None:
        """Release the catalog."""
        self.manager.close()


def _timed_save(manager: Any, message: Any, settings: Any, directory: Path) -> float:
    """One ``save_snapshot`` with the arguments every side saves with; its seconds.

    libmuscle's manager and ours take the same call, so both sides save the
    same snapshot (trigger, wallclock time, not final); the files written to
    ``directory`` are removed afterwards, untimed.
    """
    start = time.perf_counter()
    manager.save_snapshot(message, False, ["simulation_time >= 12"], 3.5, None, settings)
    elapsed = time.perf_counter() - start
    _remove_packs(directory)
    return elapsed


def _remove_packs(directory: Path) -> None:
    """Delete the files a save wrote (not timed): 64 MiB saves would fill the disk."""
    for path in directory.glob("*.pack"):
        path.unlink()


# --------------------------------------------------------------------------- raw SQLite


@dataclass
class _Statement:
    sql: str
    params: Any
    many: bool


class _RecordingConnection(sqlite3.Connection):
    """A sqlite3 connection that logs what is executed on it while ``log`` is set."""

    log: ClassVar[list[_Statement] | None] = None
    snapshot_ids: ClassVar[list[int]] = []

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        cursor = super().execute(sql, parameters)
        if _RecordingConnection.log is not None:
            _RecordingConnection.log.append(_Statement(sql, parameters, False))
            if _table_of(sql) == "snapshots":
                _RecordingConnection.snapshot_ids.append(int(cursor.lastrowid or 0))
        return cursor

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        rows = list(parameters)
        if _RecordingConnection.log is not None:
            _RecordingConnection.log.append(_Statement(sql, rows, True))
        return super().executemany(sql, rows)


_INSERT = re.compile(r'\s*INSERT\s+INTO\s+"?(\w+)"?\s*\(([^)]*)\)', re.IGNORECASE)


def _table_of(sql: str) -> str | None:
    match = _INSERT.match(sql)
    return match.group(1) if match else None


def _columns_of(sql: str) -> list[str]:
    match = _INSERT.match(sql)
    return [c.strip().strip('"') for c in match.group(2).split(",")] if match else []


@contextmanager
def _recording_sqlite3() -> Iterator[None]:
    """Every sqlite3 connection opened meanwhile is a recording one."""
    original = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs["factory"] = _RecordingConnection
        connection: sqlite3.Connection = original(*args, **kwargs)
        return connection

    setattr(sqlite3, "connect", connect)  # noqa: B010 - patched for the capture only
    setattr(sqlite3.dbapi2, "connect", connect)  # noqa: B010
    try:
        yield
    finally:
        setattr(sqlite3, "connect", original)  # noqa: B010
        setattr(sqlite3.dbapi2, "connect", original)  # noqa: B010


class RawSqliteSide:
    """The statements of one of our saves, captured from a real save, replayed with sqlite3.

    The capture runs a save in a catalog of its own through a recording
    connection: the statements before its first ``BEGIN`` are the connection's
    set-up (pragmas), those of the last save the record. Each replay gives
    the snapshot a path and a submission order of its own (both unique) and
    its child rows the new snapshot's id, and fetches every query's rows as
    the recorder does (a submission order the INSERT computes itself is
    left to it).
    """

    def __init__(self, work: Path, data: Any, tables: tuple[str, ...] | None = None) -> None:
        run_dir = work / "raw-capture"
        db_file = run_dir / "snapshot_catalog.sqlite"
        run_dir.mkdir(parents=True)
        open_catalog(db_file, create=True).close()
        _RecordingConnection.log, _RecordingConnection.snapshot_ids = [], []
        try:
            with _recording_sqlite3():
                capture = OursSide(run_dir, str(db_file), data, warmup=1)
                log = _RecordingConnection.log
                setup_end = next(
                    i for i, s in enumerate(log) if s.sql.strip().upper().startswith("BEGIN")
                )
                self.setup = log[:setup_end]
                _RecordingConnection.log = []
                capture.save()
                self.statements = _RecordingConnection.log
                self.snapshot_id = _RecordingConnection.snapshot_ids[-1]
                capture.close()
        finally:
            _RecordingConnection.log = None
        if not self.statements or self.snapshot_id == 0:
            raise SystemExit("could not capture the statements of a save (no snapshot INSERT seen)")
        if tables is not None:  # only these tables' INSERTs (and the transaction around them)
            self.statements = [s for s in self.statements if _table_of(s.sql) in (None, *tables)]
        insert = next(s for s in self.statements if _table_of(s.sql) == "snapshots")
        columns = _columns_of(insert.sql)
        self.path = insert.params[columns.index("path")]
        # An INSERT that computes the submission order itself needs no new one per replay.
        self.order_given = "MAX(" not in insert.sql.upper()
        self.order = (
            int(insert.params[columns.index("submission_order")]) if self.order_given else 0
        )
        self.replays = 0
        self.connection = sqlite3.connect(db_file, isolation_level=None)
        for statement in self.setup:
            self.connection.execute(statement.sql, statement.params).fetchall()
        self.save()  # warm up: the first transaction of a connection reads the schema

    def describe(self) -> str:
        """The captured statements, one line each."""
        lines = [
            f"  {s.sql.split(chr(10))[0][:100]}" + (" (executemany)" if s.many else "")
            for s in self.statements
        ]
        return "\n".join(lines)

    def save(self) -> float:
        """One replay of the statements; its seconds."""
        self.replays += 1
        path = f"{self.path}.replay{self.replays}"
        order = self.order + self.replays
        connection = self.connection
        new_id: int | None = None
        start = time.perf_counter()
        for statement in self.statements:
            table = _table_of(statement.sql)
            params = statement.params
            if table == "snapshots":
                columns = _columns_of(statement.sql)
                params = list(params)
                params[columns.index("path")] = path
                if self.order_given:
                    params[columns.index("submission_order")] = order
            elif table is not None and new_id is not None:
                columns = _columns_of(statement.sql)
                if "snapshot_id" in columns:
                    index = columns.index("snapshot_id")
                    if statement.many:
                        params = [(*row[:index], new_id, *row[index + 1 :]) for row in params]
                    else:  # one row, or several in one multi-row INSERT
                        width = len(columns)
                        params = [
                            new_id if i % width == index else value
                            for i, value in enumerate(params)
                        ]
            elif not statement.many and isinstance(params, tuple) and self.path in params:
                params = tuple(path if p == self.path else p for p in params)
            if statement.many:
                connection.executemany(statement.sql, params)
            else:
                cursor = connection.execute(statement.sql, params)
                cursor.fetchall()
                if table == "snapshots":
                    new_id = cursor.lastrowid
        return time.perf_counter() - start

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


class SqliteCommitSide:
    """The cheapest SQLite write transaction: one short row, a table without indexes.

    Same file system, journal and pragmas as a catalog
    (:func:`catalog.db.sqlite_settings.apply_connection_pragmas`): what any
    recorded save costs at least, whatever the schema.
    """

    def __init__(self, db_file: Path) -> None:
        self.connection = sqlite3.connect(db_file, isolation_level=None)
        apply_connection_pragmas(self.connection, wal=True)
        self.connection.execute("CREATE TABLE floor (id INTEGER PRIMARY KEY, value TEXT)")
        self.save()

    def save(self) -> float:
        """One write transaction; its seconds."""
        connection = self.connection
        start = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO floor (value) VALUES (?)", ("0" * 64,))
        connection.execute("COMMIT")
        return time.perf_counter() - start

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


# --------------------------------------------------------------------------- PostgreSQL


def pg_reachable(url: str) -> str | None:
    """None if a connection to ``url`` works, else why not."""
    try:
        import psycopg

        with psycopg.connect(_libpq(url), connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: skip PostgreSQL
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _libpq(url: str, schema: str | None = None) -> str:
    """The psycopg connection string of a SQLAlchemy URL (optionally with a search_path)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    if schema is not None:
        parsed = parsed.update_query_dict({"options": f"-csearch_path={schema}"})
    return parsed.render_as_string(hide_password=False)


@contextmanager
def pg_schema(url: str) -> Iterator[str]:
    """A SQLAlchemy URL whose search_path is a fresh schema, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            make_url(url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(_libpq(url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


class BarePsycopgSide:
    """One INSERT of a snapshot-sized row and COMMIT with psycopg, nothing else."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.connection = psycopg.connect(_libpq(url))
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS floor_rows (id bigserial PRIMARY KEY, run_id integer, "
            "instance text, path text UNIQUE, size_bytes bigint, sha256 text, "
            "timestamp double precision)"
        )
        self.connection.commit()
        self.number = 0
        self.prefix = secrets.token_hex(4)

    def save(self) -> float:
        """One INSERT and COMMIT; its seconds."""
        self.number += 1
        start = time.perf_counter()
        self.connection.execute(
            "INSERT INTO floor_rows (run_id, instance, path, size_bytes, sha256, timestamp) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (
                1,
                INSTANCE,
                f"instances/{INSTANCE}/snapshots/{self.prefix}_{self.number}.pack",
                123,
                "0" * 64,
                12.0,
            ),
        )
        self.connection.commit()
        return time.perf_counter() - start

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


# --------------------------------------------------------------------------- prefill


def prefill(catalog_location: str, rows: int) -> None:
    """Record ``rows`` plausible snapshots of another run through the public bulk API."""
    snapshot = Snapshot(["simulation_time >= 1"], 1.0, dict(COUNTS), False, Message(1.0, 2.0))
    with open_catalog(catalog_location, create=True) as catalog:
        run = catalog.ensure_run(Path("/prefill/run"))
        items = (
            NewSnapshot(
                f"micro[{i % 100}]",
                Path(f"/prefill/run/instances/micro[{i % 100}]/snapshots")
                / f"micro-{i % 100}_{i // 100 + 1}.pack",
                f"micro-{i % 100}_{i // 100 + 1}.pack",
                snapshot,
                100,
                "0" * 64,
                i // 100 + 1,
                status=SnapshotStatus.PRESENT,
            )
            for i in range(rows)
        )
        catalog.record_snapshots(run.id, items)


# --------------------------------------------------------------------------- timing


@dataclass
class Timings:
    """Seconds of each repeat, per side."""

    total: dict[str, list[float]] = field(default_factory=dict)
    bookkeeping: dict[str, list[float]] = field(default_factory=dict)

    def median_ms(self, side: str) -> float:
        """Median milliseconds of a side."""
        return statistics.median(self.total[side]) * 1000

    def bookkeeping_ms(self, side: str) -> float | None:
        """Median milliseconds of a side's catalog step, if timed."""
        values = self.bookkeeping.get(side)
        return statistics.median(values) * 1000 if values else None


def interleaved(
    sides: dict[str, Callable[[], float]], ours: dict[str, OursSide], repeats: int
) -> Timings:
    """Run every side once per round, ``repeats`` rounds; collect their times."""
    timings = Timings({name: [] for name in sides})
    gc_was = gc.isenabled()
    for _ in range(repeats):
        for name, save in sides.items():
            # Every side starts with nothing dirty in the page cache: an fsync flushes
            # the file system's journal, and would otherwise pay for the previous
            # side's writes (another side's WAL, libmuscle's unsynced file).
            os.sync()
            gc.collect()
            gc.disable()
            try:
                timings.total[name].append(save())
            finally:
                if gc_was:
                    gc.enable()
            record_s = ours[name].manager.last_record_s if name in ours else None
            if record_s is not None:
                timings.bookkeeping.setdefault(name, []).append(record_s)
    return timings


def _fmt(value: float | None, spec: str = "8.2f") -> str:
    return format(value, spec) if value is not None else format("n/a", spec.split(".")[0] + "s")


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    """Time every side per payload and backend, interleaved; print medians, ratios and targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--repeat", type=int, default=41, help="saves per side for the tiny payload"
    )
    parser.add_argument("--repeat-large", type=int, default=3, help="saves per side at 64 MiB")
    parser.add_argument("--no-large", action="store_true", help="leave out the 64 MiB payload")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL (SQLAlchemy URL)")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--prefill", type=int, default=0, metavar="N", help="also time at N rows")
    parser.add_argument("--smoke", action="store_true", help="tiny payload, 3 repeats")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write (default: tmp)")
    args = parser.parse_args()
    if args.smoke:
        args.repeat = 3

    pg_problem = None if not args.no_pg else "--no-pg"
    if pg_problem is None:
        pg_problem = pg_reachable(args.pg_url)
    backends = ["SQLite"] + (["PostgreSQL"] if pg_problem is None else [])

    rows: list[dict[str, Any]] = []
    growth: list[tuple[str, float, float, float, float]] = []
    with ExitStack() as stack:
        work = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="save-bench-", dir=args.workdir))
        )
        pg_urls: dict[str, str] = {}
        if "PostgreSQL" in backends:
            pg_urls["empty"] = stack.enter_context(pg_schema(args.pg_url))
            pg_urls["floor"] = stack.enter_context(pg_schema(args.pg_url))
            if args.prefill:
                pg_urls["prefilled"] = stack.enter_context(pg_schema(args.pg_url))
        for payload_name, data, repeats in payloads(args):
            tag = re.sub(r"\W", "", payload_name)
            lib_dir = work / f"libmuscle-{tag}"
            floor_dir = work / f"floor-{tag}"
            lib_dir.mkdir()
            floor_dir.mkdir()
            encoded = encode_snapshot(
                Snapshot(
                    ["simulation_time >= 12"], 3.5, dict(COUNTS), False, Message(12.0, 13.0, data)
                )
            )
            sides: dict[str, Callable[[], float]] = {
                "libmuscle": LibmuscleSide(lib_dir, data).save,
                "floor": FloorSide(floor_dir, encoded).save,
            }
            ours: dict[str, OursSide] = {}
            closers: list[Callable[[], None]] = []
            raw = RawSqliteSide(work / f"raw-{tag}", data)
            closers.append(raw.close)
            sides["raw SQLite"] = raw.save
            row_only = RawSqliteSide(work / f"row-{tag}", data, tables=("snapshots",))
            closers.append(row_only.close)
            sides["SQLite row"] = row_only.save
            commit = SqliteCommitSide(work / f"commit-{tag}.sqlite")
            closers.append(commit.close)
            sides["SQLite commit"] = commit.save
            catalogs = {"SQLite": "empty"}
            if args.prefill and payload_name == "tiny":
                catalogs["SQLite prefilled"] = "prefilled"
            for label, kind in catalogs.items():
                run_dir = work / f"ours-{tag}-{kind}"
                run_dir.mkdir()
                db = run_dir / "snapshot_catalog.sqlite"
                open_catalog(db, create=True).close()
                if kind == "prefilled":
                    prefill(str(db), args.prefill)
                ours[label] = OursSide(run_dir, str(db), data)
            if "PostgreSQL" in backends:
                bare = BarePsycopgSide(pg_urls["floor"])
                closers.append(bare.close)
                sides["bare psycopg"] = bare.save
                pg_catalogs = {"PostgreSQL": "empty"}
                if args.prefill and payload_name == "tiny":
                    pg_catalogs["PostgreSQL prefilled"] = "prefilled"
                for label, kind in pg_catalogs.items():
                    url = pg_urls[kind]
                    if kind == "prefilled":
                        prefill(url, args.prefill)
                    # each payload's saves go to their own run directory of the schema
                    run_dir = work / f"ours-{tag}-pg-{kind}"
                    run_dir.mkdir()
                    ours[label] = OursSide(run_dir, url, data)
            for label, side in ours.items():
                sides[label] = side.save
                closers.append(side.close)
            if payload_name == "tiny":
                print("statements of one save on SQLite (captured, replayed as 'raw SQLite'):")
                print(raw.describe(), flush=True)
            timings = interleaved(sides, ours, repeats)
            for close in closers:
                close()
            lib = timings.median_ms("libmuscle")
            floor = timings.median_ms("floor")
            for backend in backends:
                whole = timings.median_ms(backend)
                book = timings.bookkeeping_ms(backend)
                raw_ms = timings.median_ms("raw SQLite" if backend == "SQLite" else "bare psycopg")
                sqlite_floors = (
                    (timings.median_ms("SQLite commit"), timings.median_ms("SQLite row"))
                    if backend == "SQLite"
                    else (None, None)
                )
                rows.append(
                    {
                        "payload": payload_name, "backend": backend, "repeats": repeats,
                        "libmuscle": lib, "floor": floor, "raw": raw_ms, "ours": whole,
                        "book": book, "commit": sqlite_floors[0], "row": sqlite_floors[1],
                    }
                )  # fmt: skip
                prefilled = f"{backend} prefilled"
                if prefilled in timings.total:
                    growth.append(
                        (
                            backend,
                            whole,
                            timings.median_ms(prefilled),
                            book or 0.0,
                            timings.bookkeeping_ms(prefilled) or 0.0,
                        )
                    )

    print()
    print(
        "median ms per save; raw SQL: the captured statements via sqlite3 (SQLite), "
        "a bare INSERT+COMMIT (PostgreSQL)"
    )
    header = (
        f"{'payload':<8} {'backend':<10} {'n':>3} {'libmuscle':>9} {'floor':>8} {'raw SQL':>8} "
        f"{'ours':>8} {'ours/lib':>8} {'ours/floor':>10} {'bookkeep':>8} {'bk/lib':>7} "
        f"{'bk share':>8} {'bk/raw':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        book = r["book"]
        print(
            f"{r['payload']:<8} {r['backend']:<10} {r['repeats']:>3} {r['libmuscle']:>9.2f} "
            f"{r['floor']:>8.2f} {r['raw']:>8.3f} {r['ours']:>8.2f} "
            f"{r['ours'] / r['libmuscle']:>7.2f}x {r['ours'] / r['floor']:>9.2f}x "
            f"{_fmt(book, '8.3f')} "
            f"{_fmt(book / r['libmuscle'] if book else None, '6.2f')}x "
            f"{_fmt(100 * book / r['ours'] if book else None, '7.1f')}% "
            f"{_fmt(book / r['raw'] if book else None, '6.2f')}x"
        )
    print()
    print("SQLite floors (median ms; x libmuscle's save): what any recorded save costs here")
    for r in rows:
        if r["commit"] is None:
            continue
        lib = r["libmuscle"]
        parts = [
            ("commit (1 row, no index)", r["commit"]),
            ("snapshot row alone", r["row"]),
            ("our statements", r["raw"]),
            ("our bookkeeping", r["book"]),
        ]
        print(
            f"  {r['payload']:<6} "
            + "; ".join(f"{name} {_fmt(ms, '.3f')} ({_fmt(ms / lib if ms else None, '.2f')}x)"
                        for name, ms in parts)
        )  # fmt: skip
    print()
    print("targets:")
    for r in rows:
        book = r["book"]
        if book is None:
            continue
        if r["payload"] == "tiny" and r["backend"] == "SQLite":
            ratio = r["ours"] / r["libmuscle"]
            print(f"  tiny SQLite whole save <= 3x libmuscle: {ratio:.2f}x {_verdict(ratio <= 3)}")
            ratio = book / r["libmuscle"]
            print(
                f"  tiny SQLite bookkeeping <= 0.5x libmuscle's save: {ratio:.2f}x "
                f"{_verdict(ratio <= 0.5)} (SQLite's cheapest commit alone: "
                f"{r['commit'] / r['libmuscle']:.2f}x)"
            )
        if r["payload"] == "1 MiB":
            share = book / r["ours"]
            print(
                f"  1 MiB {r['backend']} bookkeeping <= 5% of our save: {100 * share:.1f}% "
                f"{_verdict(share <= 0.05)}"
            )
        if r["backend"] == "PostgreSQL" and r["payload"] == "tiny":
            ratio = book / r["raw"]
            print(
                f"  tiny PostgreSQL bookkeeping <= 2x bare psycopg INSERT+COMMIT: {ratio:.2f}x "
                f"{_verdict(ratio <= 2)}"
            )
    if pg_problem is not None:
        print(f"PostgreSQL skipped: {pg_problem}")
    if growth:
        print()
        print(f"flat as the catalog grows (tiny payload, median ms): 0 rows vs {args.prefill} rows")
        for backend, empty, full, book_empty, book_full in growth:
            print(
                f"  {backend:<10} save {empty:.2f} -> {full:.2f} ({full / empty:.2f}x); "
                f"bookkeeping {book_empty:.3f} -> {book_full:.3f} "
                f"({book_full / book_empty if book_empty else float('nan'):.2f}x)"
            )


if __name__ == "__main__":
    main()
