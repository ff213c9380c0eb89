"""What the catalog costs a real MUSCLE3 run: plain MUSCLE3 against ours, same model, same run.

One command::

    python benchmarks/overhead_benchmark.py                 # 4 micros, 20 steps, 5 repeats
    python benchmarks/overhead_benchmark.py --micros 1 --steps 5 --repeat 1   # smoke

Both sides run the same coupled model (``overhead_components.py``: a macro
and a vector of micros exchanging grids, checkpointing every step and at the
end) with ``--start-all``:

* ``plain``: ``muscle_manager`` and components on ``libmuscle.Instance``;
* ``catalog``: ``muscle-catalog-manager`` (our registry) and components on
  ``catalog.muscle3.Instance`` (every save written durably and recorded).

Runs alternate between the two so that the shared machine's load hits both
alike; the table gives the median wall time of each and their ratio. The
start-up cost of importing each side is measured too (``python -c``), since
every instance process pays it once. The MUSCLE3 of this environment is used
(0.10 in the test extra); run it with another environment's python to time
another release.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

MODEL = """ymmsl_version: v0.2
models:
  overhead:
    description: macro with {micros} micros exchanging grids
    components:
      macro: {{ports: {{o_i: [o_i], s: [s]}}, description: m, implementation: macro}}
      micro:
        ports: {{f_init: [f_i], o_f: [o_f]}}
        description: u
        implementation: micro
        multiplicity: [{micros}]
    conduits:
      macro.o_i: micro.f_i
      micro.o_f: macro.s
programs:
  macro:
    executable: {python}
    args: [{components}, macro]
    env: {{MUSCLE_CATALOG_BENCH_INSTANCE: {impl}}}
  micro:
    executable: {python}
    args: [{components}, micro]
    env: {{MUSCLE_CATALOG_BENCH_INSTANCE: {impl}}}
resources:
  overhead.macro: {{threads: 1}}
  overhead.micro: {{threads: 1}}
settings:
  macro.t_max: {t_max}
  macro.dt: 1.0
  macro.size: {size}
  muscle_remote_log_level: WARNING
checkpoints:
  at_end: true
  simulation_time:
  - every: 1.0
"""


#: The setups timed: (manager command, Instance the components use).
SETUPS = {
    "plain": ("muscle_manager", "libmuscle"),
    "catalog": ("muscle-catalog-manager", "catalog"),
    "our manager only": ("muscle-catalog-manager", "libmuscle"),
    "our instances only": ("muscle_manager", "catalog"),
}


def run_once(workdir: Path, impl: str, micros: int, steps: int, size: int) -> float:
    """One run of the model in the setup ``impl`` (see :data:`SETUPS`); its wall time in seconds."""
    run_dir = workdir / f"run-{time.monotonic_ns()}"
    run_dir.mkdir()
    model = run_dir / "model.ymmsl"
    manager, instance = SETUPS[impl]
    model.write_text(
        MODEL.format(
            micros=micros, python=sys.executable, components=HERE / "overhead_components.py",
            impl=instance, t_max=float(steps), size=size,
        )
    )  # fmt: skip
    (run_dir / "run").mkdir()
    env = dict(os.environ, MUSCLE_SNAPSHOT_CATALOG=str(run_dir / "snapshot_catalog.sqlite"))
    start = time.perf_counter()
    done = subprocess.run(
        [str(BIN / manager), "--start-all", "--run-dir", str(run_dir / "run"), str(model)],
        env=env, capture_output=True, text=True, cwd=run_dir,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{impl} run failed:\n{done.stdout}\n{done.stderr}")
    packs = list((run_dir / "run" / "instances").glob("*/snapshots/*.pack"))
    if not packs:
        raise SystemExit(f"{impl} run saved no snapshots; the benchmark would measure nothing")
    shutil.rmtree(run_dir)
    return elapsed


def import_time(code: str, repeat: int) -> float:
    """Median wall time of a fresh interpreter running ``code`` (start-up and imports)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Time both sides, alternating, and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--micros", type=int, default=4, help="micro instances (default 4)")
    parser.add_argument("--steps", type=int, default=20, help="macro steps, each a snapshot")
    parser.add_argument("--size", type=int, default=10_000, help="floats per grid")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each side")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time our manager with plain instances, and plain manager with ours",
    )
    args = parser.parse_args()
    for command in ("muscle_manager", "muscle-catalog-manager"):
        if not (BIN / command).exists():
            raise SystemExit(f"{command} is not installed beside {sys.executable}")

    setups = list(SETUPS) if args.breakdown else ["plain", "catalog"]
    times: dict[str, list[float]] = {setup: [] for setup in setups}
    with tempfile.TemporaryDirectory(prefix="overhead-") as scratch:
        for _ in range(args.repeat):
            for impl in setups:
                times[impl].append(
                    run_once(Path(scratch), impl, args.micros, args.steps, args.size)
                )
    plain, ours = (statistics.median(times[k]) for k in ("plain", "catalog"))
    imports = {
        "libmuscle.Instance": import_time("from libmuscle import Instance", args.repeat),
        "catalog.muscle3.Instance": import_time(
            "from catalog.muscle3 import Instance; import catalog.instance", args.repeat
        ),
    }
    print(
        f"model: macro + {args.micros} micros, {args.steps} steps, grids of {args.size} floats, "
        f"{args.repeat} runs each (medians)"
    )
    print(f"{'side':<42} {'wall s':>8}")
    print(f"{'plain muscle_manager + libmuscle.Instance':<42} {plain:8.2f}")
    print(f"{'muscle-catalog-manager + catalog.muscle3.Instance':<42} {ours:8.2f}")
    print(f"ratio ours / plain: {ours / plain:.2f}x (goal <= 1.1x)")
    for setup in setups[2:]:
        median = statistics.median(times[setup])
        print(f"{setup:<42} {median:8.2f}  ({median / plain:.2f}x plain)")
    base = imports["libmuscle.Instance"]
    for name, value in imports.items():
        print(f"start-up, python -c 'import {name}': {value:.2f} s ({value / base:.2f}x)")


if __name__ == "__main__":
    main()
