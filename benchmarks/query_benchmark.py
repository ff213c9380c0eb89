"""What querying a catalog of a million snapshots costs, against reading the same rows by hand.

One command::

    python benchmarks/query_benchmark.py                 # 10 runs x 100 instances x 1000 steps
    python benchmarks/query_benchmark.py --smoke         # 2 x 5 x 20, seconds

The catalog is built once into ``--cache`` (reused while its size and schema
revision are the same): the schema through :func:`catalog.catalog.open_catalog`, then the rows
inserted with the stdlib ``sqlite3`` ``executemany`` straight into the real
tables, with the column values :mod:`catalog.db.rows` and
:mod:`catalog.db.identity` write. Every snapshot has a trigger, two ports and
a setting; every step of every run has a workflow snapshot whose members are
that step's snapshot of each instance.

Each measurement runs in its own Python process, so its peak memory is its
own (``os.wait4`` gives the child's ``ru_maxrss``); time is taken inside the
process around the call only (not imports, not opening the catalog), and the
table shows the median over ``--repeat`` processes (a light call is also
repeated inside its process). Measurements:

* ``frame``: ``cat.snapshots_frame()`` of every row, against ``pandas.read_sql``
  of the same SELECT straight from ``sqlite3`` (target: <= 1.5x, < 2 GB);
* ``run records``: ``cat.snapshots(run=...)`` of one run (100k records with
  their triggers, ports and settings), against ``sqlite3`` fetching the same
  rows and children (target: <= 1 s);
* ``run_id``, ``run``: a run looked up by name (its plan must search the
  runs' name index, so it costs O(runs)); ``run`` also counts the run's
  snapshots, time span and bytes;
* ``latest workflow``: ``cat.latest_workflow_snapshot(run)`` (target: <= 20 ms,
  through the ``(run_id, timestamp, sequence)`` index);
* ``stream``: ``cat.iter_snapshots()`` of every row, one ``json.dumps`` per
  record to stdout, against the list ``cat.snapshots(run=...)`` of one run and
  against ``muscle-catalog snapshots --json --run`` (the CLI): peak memory of
  streaming a whole catalog must stay that of streaming one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from catalog.catalog import open_catalog  # noqa: E402
from catalog.db.identity import members_key  # noqa: E402
from catalog.db.revision import SCHEMA_REVISION  # noqa: E402
from catalog.db.rows import PORTS, SETTINGS, TRIGGERS, counts_json, settings_json  # noqa: E402
from catalog.db.sqlite_recorder import driver_time, orm_time  # noqa: E402

#: The SELECT ``snapshots_frame`` makes, as pandas is handed it by hand (the baseline).
FRAME_SQL = (
    "SELECT snapshots.id, runs.name AS run, snapshots.run_id, snapshots.instance, "
    "snapshots.sequence, snapshots.submission_order, snapshots.path, "
    "snapshots.snapshot_filename, snapshots.timestamp, snapshots.next_timestamp, "
    "snapshots.wallclock_time, snapshots.is_final_snapshot, snapshots.is_implicit, "
    "snapshots.status, snapshots.format_version, snapshots.size_bytes, snapshots.sha256, "
    "snapshots.recorded_at, snapshots.copied_from_snapshot_id "
    "FROM snapshots JOIN runs ON runs.id = snapshots.run_id "
    "ORDER BY snapshots.run_id, snapshots.submission_order"
)

GB = 1024**3
MB = 1024**2


# -- building the catalog -----------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    """How big the catalog is: runs x instances x steps snapshots."""

    runs: int
    instances: int
    steps: int

    @property
    def snapshots(self) -> int:
        """How many snapshots the catalog holds."""
        return self.runs * self.instances * self.steps

    @property
    def tag(self) -> str:
        """The size as a file-name part."""
        return f"{self.runs}x{self.instances}x{self.steps}"


def run_name(run: int) -> str:
    """The name of the benchmark's run number ``run`` (0-based)."""
    return f"run{run:03d}"


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


_SNAPSHOT_COLUMNS = (
    "id", "run_id", "instance", "sequence", "submission_order", "path", "snapshot_filename",
    "format_version", "size_bytes", "sha256", "wallclock_time", "wallclock_time_nan",
    "timestamp", "timestamp_nan", "next_timestamp", "next_timestamp_nan",
    "is_final_snapshot", "is_implicit", "status", "recorded_at", "copied_from_snapshot_id",
)  # fmt: skip
_RUN_COLUMNS = ("id", "name", "run_dir", "model_name", "source", "status", "created_at")
_WORKFLOW_COLUMNS = (
    "id", "run_id", "sequence", "completed_by_snapshot_id", "timestamp", "description",
    "resume_file", "source", "created_at", "status", "members_key",
)  # fmt: skip
_MEMBER_COLUMNS = ("workflow_snapshot_id", "instance", "snapshot_id")


def build_catalog(db_file: Path, size: Size) -> None:
    """Create the benchmark's catalog in ``db_file`` (a new file), run by run.

    Snapshot ``id`` = run * instances * steps + step * instances + instance + 1,
    so the children can be written without reading ids back.
    """
    open_catalog(db_file, create=True).close()
    connection = sqlite3.connect(db_file, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = OFF")
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    recorded = driver_time(now)
    created = orm_time(now)
    instances = [f"micro[{i}]" for i in range(size.instances)]
    connection.execute("BEGIN")
    connection.executemany(
        _insert("runs", _RUN_COLUMNS),
        [
            (r + 1, run_name(r), f"runs/{run_name(r)}", "bench", "import", "finished", created)
            for r in range(size.runs)
        ],
    )
    setting = settings_json(0.25)
    for r in range(size.runs):
        run_id = r + 1
        base = r * size.instances * size.steps
        snapshots: list[tuple[Any, ...]] = []
        triggers: list[tuple[Any, ...]] = []
        ports: list[tuple[Any, ...]] = []
        settings: list[tuple[Any, ...]] = []
        workflows: list[tuple[Any, ...]] = []
        members: list[tuple[Any, ...]] = []
        for step in range(size.steps):
            t = step * 0.1
            final = step == size.steps - 1
            step_ids: dict[str, int] = {}
            for i, instance in enumerate(instances):
                order = step * size.instances + i + 1
                sid = base + order
                step_ids[instance] = sid
                filename = f"micro-{i}_{step + 1}.pack"
                snapshots.append((
                    sid, run_id, instance, step + 1, order,
                    f"runs/{run_name(r)}/instances/{instance}/snapshots/{filename}", filename,
                    1, 4096 + i, f"{sid:064x}", 0.5 * order, False,
                    t, False, t + 0.1, False, final, False, "present", recorded, None,
                ))  # fmt: skip
                triggers.append((sid, 0, f"Simulation time >= {t:.1f}"))
                ports.append((sid, "f_init", 0, 1, counts_json([step + 1])))
                ports.append((sid, "o_f", 1, 1, counts_json([step])))
                settings.append((sid, 0, "micro.dt", setting))
            wid = r * size.steps + step + 1
            workflows.append((
                wid, run_id, step + 1, step_ids[instances[-1]], t,
                f"step {step + 1} of every instance", None, "import", created, "resumable",
                members_key(step_ids),
            ))  # fmt: skip
            members.extend((wid, instance, sid) for instance, sid in step_ids.items())
        connection.executemany(_insert("snapshots", _SNAPSHOT_COLUMNS), snapshots)
        for (table, columns), rows in ((TRIGGERS, triggers), (PORTS, ports), (SETTINGS, settings)):
            connection.executemany(_insert(table, columns), rows)
        connection.executemany(_insert("workflow_snapshots", _WORKFLOW_COLUMNS), workflows)
        connection.executemany(_insert("workflow_snapshot_members", _MEMBER_COLUMNS), members)
        print(f"  built {run_name(r)}: {len(snapshots)} snapshots", flush=True)
    connection.execute("COMMIT")
    connection.execute("ANALYZE")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def cached_catalog(cache: Path, size: Size) -> Path:
    """The catalog of this size in ``cache``, built if absent, half-built or of an older schema."""
    directory = cache / f"catalog-{size.tag}"
    db_file = directory / "catalog.sqlite"
    done = directory / "complete"
    stamp = f"{size.tag} {SCHEMA_REVISION}\n"
    if done.exists() and done.read_text() == stamp:
        print(f"Reusing the catalog {db_file} ({size.snapshots:,} snapshots)")
        return db_file
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    print(f"Building {db_file} ({size.snapshots:,} snapshots)...", flush=True)
    start = time.perf_counter()
    build_catalog(db_file, size)
    done.write_text(stamp)
    print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    return db_file


# -- the measurements (each in a child process) --------------------------------------------


def _timed(call: Callable[[], Any], inner: int) -> list[float]:
    """Seconds per call: one untimed warm-up call, then ``inner`` timed ones (or one if 1)."""
    if inner > 1:
        call()
    times = []
    for _ in range(inner):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def _frame_ours(db: Path, size: Size) -> Callable[[], Any]:
    import pandas  # imported before timing, as for the baseline

    del pandas
    cat = open_catalog(db, create=False)
    return lambda: len(cat.snapshots_frame())


def _frame_pandas(db: Path, size: Size) -> Callable[[], Any]:
    import pandas as pd

    connection = sqlite3.connect(db)
    return lambda: len(pd.read_sql(FRAME_SQL, connection))


def _records_ours(db: Path, size: Size) -> Callable[[], Any]:
    cat = open_catalog(db, create=False)
    return lambda: len(cat.snapshots(run=run_name(0)))


def _records_sqlite(db: Path, size: Size) -> Callable[[], Any]:
    """The floor: the same rows and children fetched with ``sqlite3``, no records built."""
    connection = sqlite3.connect(db)

    def call() -> int:
        rows = connection.execute(
            "SELECT snapshots.*, runs.name FROM snapshots JOIN runs ON runs.id = snapshots.run_id "
            "WHERE snapshots.run_id = 1 ORDER BY snapshots.submission_order"
        ).fetchall()
        for table in ("snapshot_triggers", "snapshot_ports", "snapshot_settings"):
            connection.execute(
                f"SELECT c.* FROM {table} c JOIN snapshots s ON s.id = c.snapshot_id "
                "WHERE s.run_id = 1"
            ).fetchall()
        return len(rows)

    return call


def _run_id_ours(db: Path, size: Size) -> Callable[[], Any]:
    cat = open_catalog(db, create=False)
    return lambda: cat.run_id(run_name(size.runs - 1))


def _run_id_sqlite(db: Path, size: Size) -> Callable[[], Any]:
    connection = sqlite3.connect(db)
    name = run_name(size.runs - 1)
    return lambda: connection.execute("SELECT id FROM runs WHERE name = ?", (name,)).fetchall()


def _run_ours(db: Path, size: Size) -> Callable[[], Any]:
    cat = open_catalog(db, create=False)
    return lambda: cat.run(run_name(size.runs - 1))


def _latest_ours(db: Path, size: Size) -> Callable[[], Any]:
    cat = open_catalog(db, create=False)
    return lambda: cat.latest_workflow_snapshot(run_name(size.runs - 1))


def _latest_sqlite(db: Path, size: Size) -> Callable[[], Any]:
    connection = sqlite3.connect(db)

    def call() -> Any:
        (wid,) = connection.execute(
            "SELECT id FROM workflow_snapshots WHERE run_id = ? AND status != 'unresumable' "
            "ORDER BY timestamp DESC, sequence DESC LIMIT 1",
            (size.runs,),
        ).fetchone()
        return connection.execute(
            "SELECT m.instance, m.snapshot_id, s.snapshot_filename "
            "FROM workflow_snapshot_members m LEFT JOIN snapshots s ON s.id = m.snapshot_id "
            "WHERE m.workflow_snapshot_id = ?",
            (wid,),
        ).fetchall()

    return call


def _stream_all(db: Path, size: Size) -> Callable[[], Any]:
    cat = open_catalog(db, create=False)

    def call() -> int:
        n = 0
        write, dumps = sys.stdout.write, json.dumps
        for record in cat.iter_snapshots():
            write(dumps(record.to_json()) + "\n")
            n += 1
        return n

    return call


def _stream_run(db: Path, size: Size) -> Callable[[], Any]:
    cat = open_catalog(db, create=False)

    def call() -> int:
        write, dumps = sys.stdout.write, json.dumps
        for record in cat.iter_snapshots(run=run_name(0)):
            write(dumps(record.to_json()) + "\n")
        return 0

    return call


def _list_run(db: Path, size: Size) -> Callable[[], Any]:
    cat = open_catalog(db, create=False)

    def call() -> int:
        write, dumps = sys.stdout.write, json.dumps
        for record in cat.snapshots(run=run_name(0)):
            write(dumps(record.to_json()) + "\n")
        return 0

    return call


def _cli_run(db: Path, size: Size) -> Callable[[], Any]:
    from catalog.cli import cli

    def call() -> int:
        # The command as the console script runs it, in this process, its
        # output going to this process's stdout (/dev/null).
        try:
            cli.main(
                ["--catalog", str(db), "snapshots", "--json", "--run", run_name(0)],
                standalone_mode=False,
            )
        except SystemExit as exit_:
            if exit_.code:
                raise
        return 0

    return call


MEASURES: dict[str, Callable[[Path, Size], Callable[[], Any]]] = {
    "frame_ours": _frame_ours,
    "frame_pandas": _frame_pandas,
    "records_ours": _records_ours,
    "records_sqlite": _records_sqlite,
    "run_id_ours": _run_id_ours,
    "run_id_sqlite": _run_id_sqlite,
    "run_ours": _run_ours,
    "latest_ours": _latest_ours,
    "latest_sqlite": _latest_sqlite,
    "stream_all": _stream_all,
    "stream_run": _stream_run,
    "list_run": _list_run,
    "cli_run": _cli_run,
}

#: Calls timed inside one process for the light measurements (the median is kept).
LIGHT = {"run_id_ours": 50, "run_id_sqlite": 50, "run_ours": 10, "latest_ours": 50,
         "latest_sqlite": 50}  # fmt: skip


def child_main(name: str, db: Path, size: Size, result_file: Path) -> None:
    """Run one measurement in this (child) process and write its times as JSON."""
    call = MEASURES[name](db, size)
    times = _timed(call, LIGHT.get(name, 1))
    result_file.write_text(json.dumps({"times": times}))
    sys.stdout.flush()


@dataclass
class Measured:
    """The medians and peak memory of one measurement over its processes."""

    seconds: float
    peak_bytes: int


def measure(name: str, db: Path, size: Size, repeat: int) -> Measured:
    """Run a measurement in ``repeat`` child processes; median time, largest peak RSS."""
    medians: list[float] = []
    peak = 0
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        for _ in range(repeat):
            command = [sys.executable, __file__, "--child", name, "--db", str(db),
                       "--runs", str(size.runs), "--instances", str(size.instances),
                       "--steps", str(size.steps), "--result", str(result_file)]  # fmt: skip
            with open(os.devnull, "wb") as devnull:
                process = subprocess.Popen(command, stdout=devnull)
                _pid, status, usage = os.wait4(process.pid, 0)
            if status != 0:
                raise SystemExit(f"measurement {name} failed (wait status {status})")
            medians.append(statistics.median(json.loads(result_file.read_text())["times"]))
            peak = max(peak, usage.ru_maxrss * 1024)  # kilobytes on Linux
    return Measured(statistics.median(medians), peak)


def query_plan(db: Path, sql: str, params: tuple[Any, ...]) -> str:
    """SQLite's plan of a query, one step per ``;``."""
    connection = sqlite3.connect(db)
    try:
        rows = connection.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    finally:
        connection.close()
    return "; ".join(str(row[-1]) for row in rows)


# -- the table -----------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _mem(peak: int) -> str:
    return f"{peak / MB:.0f} MB"


def report(db: Path, size: Size, repeat: int, skip_cli: bool) -> list[str]:
    """Run every measurement and print the table; give back the verdict lines."""
    rows: list[tuple[str, str, str, str, str, str, str]] = []
    verdicts: list[str] = []

    def row(
        label: str, ours: Measured, base: Measured | None, target: str, met: bool | None
    ) -> None:
        ratio = "" if base is None else f"{ours.seconds / base.seconds:.2f}x"
        rows.append((
            label, _ms(ours.seconds), "" if base is None else _ms(base.seconds), ratio, target,
            _mem(ours.peak_bytes), "" if met is None else ("met" if met else "NOT MET"),
        ))  # fmt: skip

    def run(name: str, heavy: bool = True) -> Measured:
        print(f"  measuring {name}...", flush=True)
        return measure(name, db, size, repeat if heavy else 1)

    frame, frame_base = run("frame_ours"), run("frame_pandas")
    ratio = frame.seconds / frame_base.seconds
    frame_met = ratio <= 1.5 and frame.peak_bytes < 2 * GB
    row(f"snapshots_frame() ({size.snapshots:,} rows)", frame, frame_base, "<= 1.5x, < 2 GB",
        frame_met)  # fmt: skip
    rows.append(("  pandas.read_sql, same SELECT", _ms(frame_base.seconds), "", "", "",
                 _mem(frame_base.peak_bytes), ""))  # fmt: skip
    verdicts.append(f"frame / read_sql: {ratio:.2f}x (target <= 1.5x): "
                    f"{'met' if frame_met else 'NOT MET'}")  # fmt: skip

    per_run = size.instances * size.steps
    records, records_base = run("records_ours"), run("records_sqlite")
    records_met = records.seconds <= 1.0
    row(f"snapshots(run=...) ({per_run:,} records)", records, records_base, "<= 1 s", records_met)
    verdicts.append(f"snapshots(run) of {per_run:,}: {_ms(records.seconds)} (target <= 1 s): "
                    f"{'met' if records_met else 'NOT MET'}")  # fmt: skip

    run_id, run_id_base = run("run_id_ours", False), run("run_id_sqlite", False)
    plan = query_plan(db, "SELECT id FROM runs WHERE name = ?", (run_name(0),))
    by_index = "USING INDEX ix_runs_name" in plan or "USING COVERING INDEX ix_runs_name" in plan
    row("run_id(name)", run_id, run_id_base, "O(runs): name index", by_index)
    run_record = run("run_ours", False)
    row("run(name), with its counts", run_record, None, "cheap (per-run indexes)", None)
    verdicts.append(f"run_id plan: {plan}")

    latest, latest_base = run("latest_ours", False), run("latest_sqlite", False)
    latest_met = latest.seconds <= 0.020
    workflows = size.runs * size.steps
    row(f"latest_workflow_snapshot(run) ({workflows:,} wf)", latest, latest_base, "<= 20 ms",
        latest_met)  # fmt: skip
    plan = query_plan(
        db,
        "SELECT id FROM workflow_snapshots WHERE status != 'unresumable' AND run_id = ? "
        "ORDER BY timestamp DESC NULLS LAST, run_id DESC, sequence DESC LIMIT 1",
        (size.runs,),
    )
    verdicts.append(f"latest_workflow_snapshot plan: {plan}")
    verdicts.append(f"latest_workflow_snapshot(run): {_ms(latest.seconds)} (target <= 20 ms): "
                    f"{'met' if latest_met else 'NOT MET'}")  # fmt: skip

    stream_all, stream_run = run("stream_all"), run("stream_run")
    list_run = run("list_run")
    constant = stream_all.peak_bytes <= 1.2 * stream_run.peak_bytes
    row(f"iter_snapshots() -> JSON ({size.snapshots:,})", stream_all, None,
        "peak ~ one run's stream", constant)  # fmt: skip
    row(f"iter_snapshots(run) -> JSON ({per_run:,})", stream_run, None, "", None)
    row(f"snapshots(run) list -> JSON ({per_run:,})", list_run, None, "", None)
    verdicts.append(f"streaming peak, all / one run: "
                    f"{stream_all.peak_bytes / stream_run.peak_bytes:.2f}x: "
                    f"{'constant' if constant else 'NOT constant'}")  # fmt: skip
    if not skip_cli:
        cli_run = run("cli_run", False)
        streams = cli_run.peak_bytes <= 1.2 * stream_run.peak_bytes
        row(f"CLI snapshots --json --run ({per_run:,})", cli_run, None, "streams?", streams)
        verdicts.append(f"CLI snapshots --json peak / iter_snapshots peak, one run: "
                        f"{cli_run.peak_bytes / stream_run.peak_bytes:.2f}x: "
                        f"{'streams' if streams else 'does NOT stream'}")  # fmt: skip

    header = ("measurement", "ours", "baseline", "ratio", "target", "peak RSS", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    print(f"Catalog: {size.runs} runs x {size.instances} instances x {size.steps} steps = "
          f"{size.snapshots:,} snapshots; medians of {repeat} processes "
          "(light calls: median of many calls in one process)")  # fmt: skip
    for line in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    print()
    for verdict in verdicts:
        print(verdict)
    return verdicts


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments; build or reuse the catalog; measure (or run one child)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="processes per measurement")
    parser.add_argument("--smoke", action="store_true", help="2 x 5 x 20, one repeat")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) /
                        "muscle-catalog-query-benchmark",
                        help="where the catalog is built and kept")  # fmt: skip
    parser.add_argument("--skip-cli", action="store_true", help="do not measure the CLI")
    parser.add_argument("--child", choices=sorted(MEASURES), help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.instances, args.steps, args.repeat = 2, 5, 20, 1
    size = Size(args.runs, args.instances, args.steps)
    if args.child:
        child_main(args.child, args.db, size, args.result)
        return
    db = cached_catalog(args.cache, size)
    report(db, size, args.repeat, args.skip_cli)


if __name__ == "__main__":
    main()
