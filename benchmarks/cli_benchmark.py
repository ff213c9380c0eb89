"""How fast ``muscle-catalog`` starts, against the floor of any click program.

Run it from the repository (``python benchmarks/cli_benchmark.py``). It times,
as medians of ``--repeat`` fresh processes each:

* ``python -c "import click"``: the floor any click command pays;
* ``muscle-catalog --help``: should stay within 2x the floor (it imports
  neither SQLAlchemy nor rich, see :mod:`catalog.cli.group`);
* ``muscle-catalog runs`` on a small catalog (one imported run): goal 3x the
  floor; SQLAlchemy's ORM, which every query needs, is most of the difference.

and prints each median and its ratio to the floor. The commands run as
``python -m catalog.cli`` with this checkout first on ``PYTHONPATH``, so that
the checkout is measured, with or without the package installed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).absolute().parent.parent
RUN_DIR = REPO / "tests" / "data" / "runs" / "v0.10" / "mm_stateless"

#: (what, goal as a multiple of the floor or None)
GOALS = {"--help": 2.0, "runs": 3.0}


def median_seconds(command: list[str], repeat: int, env: dict[str, str]) -> tuple[float, float]:
    """The median wall and CPU time of ``repeat`` runs of ``command`` (after a warm-up run).

    CPU time (user + system of the child) is reported too because on a
    shared machine wall time mostly measures the other users.
    """
    subprocess.run(command, env=env, check=True, capture_output=True)
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    """Time the floor and the commands, and print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11, help="Runs per command (default 11).")
    args = parser.parse_args()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("MUSCLE_SNAPSHOT_CATALOG", None)
    cli = [sys.executable, "-m", "catalog.cli"]
    with tempfile.TemporaryDirectory() as work:
        catalog = str(Path(work) / "snapshot_catalog.sqlite")
        subprocess.run(
            [*cli, "--catalog", catalog, "import", str(RUN_DIR)],
            env=env,
            check=True,
            capture_output=True,
        )
        floor, floor_cpu = median_seconds([sys.executable, "-c", "import click"], args.repeat, env)
        print(
            f"python -c 'import click': wall {floor * 1000:6.1f} ms, "
            f"CPU {floor_cpu * 1000:6.1f} ms (the floor)"
        )
        for what, command in (
            ("--help", [*cli, "--help"]),
            ("runs", [*cli, "--catalog", catalog, "runs"]),
        ):
            seconds, cpu = median_seconds(command, args.repeat, env)
            ratio, cpu_ratio = seconds / floor, cpu / floor_cpu
            goal = GOALS[what]
            verdict = "ok" if min(ratio, cpu_ratio) <= goal else "over"
            print(
                f"muscle-catalog {what:7}: wall {seconds * 1000:6.1f} ms ({ratio:4.1f}x), "
                f"CPU {cpu * 1000:6.1f} ms ({cpu_ratio:4.1f}x) the floor; goal <= {goal:g}x: "
                f"{verdict}"
            )


if __name__ == "__main__":
    main()
