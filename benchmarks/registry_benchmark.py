"""Registry throughput: our SnapshotRegistry against MUSCLE3 0.10.0's, on the same streams.

One command::

    python benchmarks/registry_benchmark.py            # N = 10, 100, 1000; K = 10, 100
    python benchmarks/registry_benchmark.py --sizes 10,100 --steps 10 --repeat 5

MUSCLE3 0.10.0 is installed from PyPI into its own virtual environment
(``benchmarks/.venv-muscle3``, created on first use) and replays each stream
through its real ``SnapshotRegistry`` in a subprocess
(``muscle3_registry_driver.py``). Ours replays the same stream in this
process, counting everything it does: topology, catalog lookups, recording
workflow snapshots in the SQLite catalog and writing the resume files. Two
ways of ours are timed:

* ``live``: the snapshot rows are already in the catalog, as in a real run,
  where every instance records its own snapshot before submitting it;
* ``self-recording``: the registry also records every submission's row
  (what it does for metadata that arrives without a row).

Both registries write their resume files; the benchmark checks that they
found the same workflow snapshots (same resume mappings, in the same order)
and prints medians over ``--repeat`` runs and the ratios. MUSCLE3 at
N = 1000 takes minutes (about 70 s at K = 10, 12 minutes at K = 100 on a
2-core machine), so its largest cases run once unless ``--repeat-muscle3``
says otherwise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import ymmsl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from resume_files import read_resume_mappings  # noqa: E402
from streams import macro_micro_stream, macro_micro_ymmsl  # noqa: E402

from catalog.catalog import open_catalog  # noqa: E402
from catalog.enums import SnapshotStatus  # noqa: E402
from catalog.records import NewSnapshot  # noqa: E402
from catalog.registry import SnapshotRegistry  # noqa: E402
from catalog.snapshot import SnapshotMetadata  # noqa: E402

MUSCLE3_VENV = HERE / ".venv-muscle3"
MUSCLE3_REQUIREMENT = "muscle3==0.10.0"
Stream = list[tuple[str, dict[str, Any]]]


def muscle3_python(venv_dir: Path) -> Path:
    """The Python of the MUSCLE3 virtual environment, creating it on first use."""
    python = venv_dir / "bin" / "python"
    if not python.exists():
        print(f"Creating {venv_dir} with {MUSCLE3_REQUIREMENT} from PyPI ...", file=sys.stderr)
        venv.create(venv_dir, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", MUSCLE3_REQUIREMENT], check=True)
    return python


def run_muscle3(python: Path, n: int, stream: Stream) -> tuple[float, list[Any]]:
    """Replay a stream through MUSCLE3's registry; returns seconds and resume mappings."""
    with tempfile.TemporaryDirectory() as work:
        stream_file = Path(work) / "stream.json"
        stream_file.write_text(json.dumps({"ymmsl": macro_micro_ymmsl(n), "stream": stream}))
        done = subprocess.run(
            [str(python), str(HERE / "muscle3_registry_driver.py"), str(stream_file), work],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        return float(result["seconds"]), [[tuple(e) for e in m] for m in result["resumes"]]


def _row(instance: str, metadata: dict[str, Any], run_dir: Path) -> NewSnapshot:
    """The row an instance would have recorded for this submission."""
    snapshot = SnapshotMetadata(**metadata).to_snapshot()
    return NewSnapshot(
        instance, run_dir / metadata["snapshot_filename"], metadata["snapshot_filename"],
        snapshot, None, None, None, status=SnapshotStatus.MISSING,
    )  # fmt: skip


def run_ours(n: int, stream: Stream, *, prerecord: bool) -> tuple[float, list[Any]]:
    """Replay a stream through our registry; returns seconds and resume mappings."""
    configuration = ymmsl.load(macro_micro_ymmsl(n))
    with tempfile.TemporaryDirectory() as work:
        run_dir = Path(work)
        catalog_file = run_dir / "snapshot_catalog.sqlite"
        if prerecord:
            with open_catalog(catalog_file, create=True) as catalog:
                run = catalog.ensure_run(run_dir)
                catalog.record_snapshots(run.id, (_row(i, m, run_dir) for i, m in stream))
        start = time.perf_counter()
        registry = SnapshotRegistry(configuration, run_dir / "snapshots", catalog_file)
        for instance, metadata in stream:
            registry.register_snapshot(instance, metadata)
        registry.shutdown()
        elapsed = time.perf_counter() - start
        if registry.stats.errors:
            raise RuntimeError(f"our registry reported errors: {registry.stats.errors[:3]}")
        return elapsed, read_resume_mappings(run_dir / "snapshots")


def _median(runs: int, measure: Callable[[], tuple[float, list[Any]]]) -> tuple[float, list[Any]]:
    times: list[float] = []
    result: list[Any] = []
    for _ in range(runs):
        seconds, result = measure()
        times.append(seconds)
    return statistics.median(times), result


def main() -> None:
    """Run the benchmark grid and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000", help="numbers of micros N")
    parser.add_argument("--steps", default="10,100", help="snapshots per instance K")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median)")
    parser.add_argument(
        "--repeat-muscle3",
        type=int,
        default=None,
        help="runs per case for MUSCLE3 (default: --repeat, but 1 when N >= 1000)",
    )
    parser.add_argument("--muscle3-venv", type=Path, default=MUSCLE3_VENV)
    args = parser.parse_args()
    python = muscle3_python(args.muscle3_venv)

    header = (
        f"{'N':>5} {'K':>4} {'subm.':>7} {'MUSCLE3 s':>10} {'ours live s':>12} {'ratio':>7}"
        f" {'ours self-rec. s':>17} {'ratio':>7}  same results"
    )
    print(header)
    print("-" * len(header))
    for k in (int(x) for x in args.steps.split(",")):
        for n in (int(x) for x in args.sizes.split(",")):
            stream = macro_micro_stream(n, k)
            m3_runs = args.repeat_muscle3 or (1 if n >= 1000 else args.repeat)
            m3_time, m3_result = _median(m3_runs, partial(run_muscle3, python, n, stream))
            live, live_result = _median(args.repeat, partial(run_ours, n, stream, prerecord=True))
            self_rec, self_result = _median(
                args.repeat, partial(run_ours, n, stream, prerecord=False)
            )
            same = live_result == m3_result and self_result == m3_result
            print(
                f"{n:>5} {k:>4} {len(stream):>7} {m3_time:>10.3f} {live:>12.3f}"
                f" {m3_time / live:>6.1f}x {self_rec:>17.3f} {m3_time / self_rec:>6.1f}x"
                f"  {'yes' if same else 'NO'} ({len(m3_result)} workflow snapshots)",
                flush=True,
            )


if __name__ == "__main__":
    main()
