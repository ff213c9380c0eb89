"""What importing a run directory costs, against the floor of reading and inserting it by hand.

One command::

    python benchmarks/import_benchmark.py                # 40,000 .pack files, 100 instances
    python benchmarks/import_benchmark.py --smoke        # 400 files; resume files of 10, 30

A synthetic run directory in MUSCLE3's layout (``configuration.ymmsl``,
``instances/<instance>/snapshots/<safe_id>_<n>.pack``, ``snapshots/snapshot_*.ymmsl``)
is generated first: ``--files`` snapshots spread over ``--instances`` instances,
each a small message (a 64-float array, per-port counts, a settings overlay),
encoded with :func:`catalog.payload.encode_snapshot` as MUSCLE3 0.10 writes
them, plus ``--resume-files`` resume files as MUSCLE3's manager writes them.

Then, interleaved over ``--repeat`` rounds, each into a fresh SQLite catalog:

* ``import``: :func:`catalog.run_import.import_run_directory` (what
  ``muscle-catalog import`` runs), timed from the open catalog to its report;
* ``floor``: the work no import can skip, by hand: list the files, read each
  once, sha256 and decode it (:func:`catalog.payload.decode_snapshot`), and
  insert the same rows (:mod:`catalog.db.rows`) with the stdlib ``sqlite3``
  ``executemany`` in one transaction, with the catalog's pragmas.

The ratio import / floor is the import's own overhead (target <= 1.3x).

A second table times reading resume files (``parse_resume_file``, what
import and watch do per ``snapshot_*.ymmsl``) of 100, 300 and 1000
instances; the time per instance should not grow with the size (linear).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from catalog.catalog import open_catalog  # noqa: E402
from catalog.db.rows import CHILD_TABLES, SNAPSHOTS, child_rows, snapshot_row  # noqa: E402
from catalog.db.sqlite_settings import apply_connection_pragmas  # noqa: E402
from catalog.message import Message  # noqa: E402
from catalog.naming import pack_file_name  # noqa: E402
from catalog.payload import decode_snapshot, encode_snapshot  # noqa: E402
from catalog.records import NewSnapshot  # noqa: E402
from catalog.resume_file import MemberSummary, describe, resume_document  # noqa: E402
from catalog.run_dir import parse_ymmsl  # noqa: E402
from catalog.run_import import import_run_directory, parse_resume_file  # noqa: E402
from catalog.snapshot import Snapshot  # noqa: E402

MODEL = "bench"

CONFIGURATION = """ymmsl_version: v0.2
models:
  {model}:
    description: synthetic model of the import benchmark
    components:
      micro:
        description: one of many micro models
        ports:
          f_init: f_i
          o_f: o_f
        implementation: micro
        multiplicity: {instances}
    conduits: {{}}
programs:
  micro:
    description: does nothing
    executable: /usr/bin/true
checkpoints:
  at_end: true
  simulation_time:
  - every: 1.0
"""


def instance_names(count: int) -> list[str]:
    """``micro[0]`` .. ``micro[count-1]``: a vector component, as MUSCLE3 names its instances."""
    return [f"micro[{i}]" for i in range(count)]


def make_run_directory(root: Path, files: int, instances: int, resume_files: int) -> Path:
    """A run directory in MUSCLE3's layout with ``files`` snapshots over ``instances`` instances."""
    run_dir = root / "run"
    names = instance_names(instances)
    (run_dir / "snapshots").mkdir(parents=True)
    (run_dir / "configuration.ymmsl").write_text(
        CONFIGURATION.format(model=MODEL, instances=instances)
    )
    folders = {}
    for name in names:
        folders[name] = run_dir / "instances" / name / "snapshots"
        folders[name].mkdir(parents=True)
    from ymmsl.v0_2 import Settings

    overlay = Settings({"micro.dt": 0.01, "micro.t_max": 1.0})
    data = np.linspace(0.0, 1.0, 64)
    steps = -(-files // instances)
    written = 0
    base_ns = time.time_ns() - steps * 1_000_000_000
    for step in range(1, steps + 1):
        for index, name in enumerate(names):
            if written == files:
                break
            counts = {"f_init": [step], "o_f": [step], "muscle_settings_in": [0]}
            snapshot = Snapshot(
                [f"simulation_time >= {step}"], step + index / 1000, counts, False,
                Message(float(step), float(step + 1), data * step), overlay,
            )  # fmt: skip
            path = folders[name] / pack_file_name(name, step)
            path.write_bytes(encode_snapshot(snapshot))
            stamp = base_ns + step * 1_000_000_000 + index * 1000
            os.utime(path, ns=(stamp, stamp))
            written += 1
    for number in range(min(resume_files, steps)):
        step = (number + 1) * steps // max(resume_files, 1)
        resume = {
            name: folders[name] / pack_file_name(name, step)
            for name in names
            if (folders[name] / pack_file_name(name, step)).exists()
        }
        (run_dir / "snapshots" / f"snapshot_20261125_1200{number:02d}.ymmsl").write_text(
            resume_text(resume, step)
        )
    return run_dir


def resume_text(resume: dict[str, Path], step: int) -> str:
    """A resume file's text as MUSCLE3's manager writes it (every member resumes)."""
    members = [
        MemberSummary(name, [f"simulation_time >= {step}"], float(step), float(step), False)
        for name in resume
    ]
    taken = dt.datetime(2026, 11, 25, 12, 0, 0)
    return resume_document(resume, describe(MODEL, members, taken))


# --------------------------------------------------------------------------- the two sides


def time_import(run_dir: Path, work: Path, round_: int) -> float:
    """Seconds :func:`import_run_directory` takes into a fresh catalog."""
    with open_catalog(work / f"import-{round_}.sqlite", create=True) as catalog:
        start = time.perf_counter()
        report = import_run_directory(catalog, run_dir)
        elapsed = time.perf_counter() - start
    if report.warnings:
        raise SystemExit(f"the import warned: {report.warnings[:3]}")
    if not report.snapshots_added:
        raise SystemExit("the import recorded nothing; the benchmark would measure nothing")
    return elapsed


def time_floor(run_dir: Path, work: Path, round_: int) -> float:
    """Seconds the floor takes: list, read once, hash, decode, executemany in one transaction."""
    db_file = work / f"floor-{round_}.sqlite"
    with open_catalog(db_file, create=True) as catalog:
        run_id = catalog.ensure_run(run_dir).id
    connection = sqlite3.connect(db_file, isolation_level=None)
    apply_connection_pragmas(connection, wal=True)
    start = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    snapshot_rows: list[tuple[object, ...]] = []
    children: dict[str, list[tuple[object, ...]]] = {table: [] for table, _ in CHILD_TABLES}
    columns: list[str] = []
    snapshot_id = 0
    for folder in sorted((run_dir / "instances").iterdir()):
        instance = folder.name
        for entry in os.scandir(folder / "snapshots"):
            path = Path(entry.path)
            data = path.read_bytes()
            sha256 = hashlib.sha256(data).hexdigest()
            snapshot = decode_snapshot(data, path)
            snapshot_id += 1
            number = int(entry.name.rsplit("_", 1)[1].split(".")[0])
            new = NewSnapshot(instance, path, str(path), snapshot, len(data), sha256, number)
            row = snapshot_row(run_id, os.path.relpath(path, work), snapshot_id, new, now)
            row["id"] = snapshot_id
            row["recorded_at"] = str(row["recorded_at"])
            columns = list(row)
            snapshot_rows.append(tuple(row.values()))
            for table, values in child_rows(snapshot_id, snapshot).items():
                children[table].extend(values)
    connection.execute("BEGIN IMMEDIATE")
    quoted = ", ".join(f'"{c}"' for c in columns)
    connection.executemany(
        f'INSERT INTO "{SNAPSHOTS}" ({quoted}) VALUES ({", ".join("?" * len(columns))})',
        snapshot_rows,
    )
    for table, table_columns in CHILD_TABLES:
        if children[table]:
            names = ", ".join(f'"{c}"' for c in table_columns)
            marks = ", ".join("?" * len(table_columns))
            connection.executemany(
                f'INSERT INTO "{table}" ({names}) VALUES ({marks})', children[table]
            )
    connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def timed(measure: Callable[[], float]) -> float:
    """One measurement with the garbage collector settled first."""
    gc.collect()
    return measure()


# --------------------------------------------------------------------------- resume files


def time_resume_parsing(
    work: Path, sizes: list[int], repeat: int
) -> list[tuple[int, float, float, float]]:
    """Seconds to read one resume file of each size: ours (median, best) and ymmsl's (median).

    ``parse_ymmsl`` (ymmsl's YAML loader) is what reading a resume file cost
    before the plain reader; it is timed beside it for comparison. The
    garbage collector is held off while timing: its passes over the
    interpreter's live objects, not the reading, otherwise make the time per
    instance wander with the heap. The slope is taken from the best of the
    repeats, as :mod:`timeit` advises: on a shared machine the median of a
    few-millisecond call still carries other processes' load.
    """
    results = []
    for number, size in enumerate(sizes):
        names = instance_names(size)
        resume = {
            name: Path(f"/scratch/run/instances/{name}/snapshots/{pack_file_name(name, 3)}")
            for name in names
        }
        path = work / f"snapshot_20261125_1200{number:02d}.ymmsl"
        text = resume_text(resume, 3)
        path.write_text(text)
        ours: list[float] = []
        theirs: list[float] = []
        gc.collect()
        gc.disable()  # Python's collector, not the reading, would set the slope
        try:
            # One after the other, not interleaved: ymmsl's loader leaves the CPU's
            # caches cold for whatever runs next, which would be charged to ours.
            for _ in range(repeat):
                start = time.perf_counter()
                document = parse_resume_file(path)
                ours.append(time.perf_counter() - start)
            for _ in range(max(1, repeat // 4)):
                start = time.perf_counter()
                reference = parse_ymmsl(text)
                theirs.append(time.perf_counter() - start)
        finally:
            gc.enable()
        if document != reference or len(document.resume) != size:
            raise SystemExit(f"reading the resume file of {size} instances differs from ymmsl's")
        results.append((size, statistics.median(ours), min(ours), statistics.median(theirs)))
    return results


def main() -> None:
    """Generate the run directory, time both sides interleaved, print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=40_000, help=".pack files (default 40000)")
    parser.add_argument("--instances", type=int, default=100, help="instances (default 100)")
    parser.add_argument("--resume-files", type=int, default=4, help="resume files in the run")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (median)")
    parser.add_argument(
        "--resume-sizes", default="100,300,1000", help="instances per timed resume file"
    )
    parser.add_argument("--resume-repeat", type=int, default=21, help="reads per resume file")
    parser.add_argument("--smoke", action="store_true", help="400 files, resume files of 10-30")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write (default: tmp)")
    args = parser.parse_args()
    if args.smoke:
        args.files, args.instances, args.repeat, args.resume_sizes = 400, 10, 1, "10,30"
        args.resume_repeat = 3

    with tempfile.TemporaryDirectory(prefix="import-bench-", dir=args.workdir) as scratch:
        work = Path(scratch)
        start = time.perf_counter()
        run_dir = make_run_directory(work, args.files, args.instances, args.resume_files)
        made = time.perf_counter() - start
        print(
            f"run directory: {args.files} .pack files over {args.instances} instances, "
            f"{args.resume_files} resume files (generated in {made:.1f} s)",
            flush=True,
        )
        time_floor(run_dir, work, -1)  # warm the page cache and imports alike for both
        imports: list[float] = []
        floors: list[float] = []
        for round_ in range(args.repeat):
            imports.append(timed(partial(time_import, run_dir, work, round_)))
            floors.append(timed(partial(time_floor, run_dir, work, round_)))
        ours, floor = statistics.median(imports), statistics.median(floors)
        print(f"{'side':<52} {'median s':>9} {'per file ms':>12}")
        print(f"{'floor: read, sha256, decode, sqlite3 executemany':<52} {floor:>9.2f} "
              f"{1000 * floor / args.files:>12.3f}")  # fmt: skip
        print(f"{'import_run_directory (muscle-catalog import)':<52} {ours:>9.2f} "
              f"{1000 * ours / args.files:>12.3f}")  # fmt: skip
        ratio = ours / floor
        verdict = "met" if ratio <= 1.3 else "MISSED"
        print(f"ratio import / floor: {ratio:.2f}x (target <= 1.3x: {verdict})", flush=True)

        sizes = [int(s) for s in args.resume_sizes.split(",")]
        parsed = time_resume_parsing(work, sizes, args.resume_repeat)
        print()
        print(
            f"{'resume file, instances':<24} {'median ms':>10} {'best ms':>8} "
            f"{'best per instance us':>21} {'vs first':>9} {'ymmsl ms':>9}"
        )
        first = parsed[0][2] / parsed[0][0]
        for size, median, best, ymmsl_seconds in parsed:
            per = best / size
            print(
                f"{size:<24} {1000 * median:>10.2f} {1000 * best:>8.2f} {1e6 * per:>21.2f} "
                f"{per / first:>8.2f}x {1000 * ymmsl_seconds:>9.1f}"
            )
        last = parsed[-1][2] / parsed[-1][0] / first
        print(f"per-instance time, largest / smallest: {last:.2f}x (linear: about 1x)")


if __name__ == "__main__":
    main()
