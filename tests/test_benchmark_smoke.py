"""The overhead benchmark still runs: each side once at the smallest size (no timing checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).parent.parent / "benchmarks" / "overhead_benchmark.py"


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
