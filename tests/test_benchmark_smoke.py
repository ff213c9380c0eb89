"""The benchmarks still run: each at its smallest size, printing its table (no timing checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"
BENCHMARK = BENCHMARKS / "overhead_benchmark.py"


def test_overhead_benchmark_runs_both_sides_and_prints_the_ratio() -> None:
    if not (Path(sys.executable).parent / "muscle-catalog-manager").exists():
        pytest.skip(f"the package's commands are not installed beside {sys.executable}")
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--micros", "1", "--steps", "2", "--size", "10",
         "--repeat", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ratio ours / plain:" in done.stdout


def test_save_benchmark_runs_every_side_and_prints_the_table() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "save_benchmark.py"), "--smoke"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ours/lib" in done.stdout
    assert "tiny     SQLite" in done.stdout
    assert "tiny SQLite whole save <= 3x libmuscle:" in done.stdout


def test_import_benchmark_runs_both_sides_and_prints_the_tables() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "import_benchmark.py"), "--smoke"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ratio import / floor:" in done.stdout
    assert "per-instance time, largest / smallest:" in done.stdout


def test_query_benchmark_builds_its_catalog_and_prints_every_measurement(tmp_path: Path) -> None:
    command = [sys.executable, str(BENCHMARKS / "query_benchmark.py"), "--smoke",
               "--cache", str(tmp_path)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Building" in done.stdout
    for line in ("snapshots_frame() (200 rows)", "snapshots(run=...) (100 records)",
                 "latest_workflow_snapshot(run) (40 wf)", "CLI snapshots --json --run (100)",
                 "run_id plan: SEARCH runs USING COVERING INDEX ix_runs_name"):  # fmt: skip
        assert line in done.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Reusing the catalog" in again.stdout
