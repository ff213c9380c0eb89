"""A real MUSCLE3 0.10 run under our registry, resumed from a resume point chosen in the catalog.

The whole product path: real libmuscle instances save snapshots, MUSCLE3's own
manager (``muscle-catalog-manager``) hands them to our SnapshotRegistry,
which records them and the workflow snapshots in the campaign catalog and
writes resume files; ``muscle-catalog resume`` picks one, and a second run
resumes from it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from catalog import open_catalog
from catalog.store import load_pack

pytest.importorskip("libmuscle", reason="end-to-end tests need the 'test' extra (muscle3)")
pytestmark = pytest.mark.interop

COMPONENTS = Path(__file__).parent / "e2e" / "components.py"
BIN = Path(sys.executable).parent


def model_configuration(micros: int, t_max: float = 1.0, every: float = 0.3) -> str:
    """The yMMSL of a macro and ``micros`` micros, checkpointed every ``every`` and at the end."""
    program = f"    executable: {sys.executable}\n"
    return f"""ymmsl_version: v0.2
models:
  counting:
    description: macro with {micros} micros, checkpointed
    components:
      macro:
        ports: {{o_i: [o_i], s: [s]}}
        description: macro
        implementation: macro
      micro:
        ports: {{f_init: [f_i], o_f: [o_f]}}
        description: micro
        implementation: micro
        multiplicity: [{micros}]
    conduits:
      macro.o_i: micro.f_i
      micro.o_f: macro.s
programs:
  macro:
{program}    args: [{COMPONENTS}, macro]
  micro:
{program}    args: [{COMPONENTS}, micro]
settings:
  macro.dt: 0.1
  macro.t_max: {t_max}
checkpoints:
  at_end: true
  simulation_time:
  - every: {every}
"""


def _manager(run_dir: Path, *ymmsl_files: Path, env: dict[str, str]) -> None:
    run_dir.mkdir()
    done = subprocess.run(
        [str(BIN / "muscle-catalog-manager"), "--start-all", "--run-dir", str(run_dir),
         *map(str, ymmsl_files)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "muscle-catalog"), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_run_record_pick_and_resume(tmp_path: Path) -> None:
    if not (BIN / "muscle-catalog-manager").exists():
        pytest.skip(f"the package's commands are not installed beside {sys.executable}")
    model = tmp_path / "model.ymmsl"
    model.write_text(model_configuration(3))
    catalog_file = tmp_path / "campaign.sqlite"
    env = dict(os.environ, MUSCLE_SNAPSHOT_CATALOG=str(catalog_file))

    _manager(tmp_path / "run1", model, env=env)
    with open_catalog(catalog_file, create=True) as catalog:
        (run1,) = catalog.runs()
        snapshots = catalog.snapshots(run=run1.id)
        packs = sorted((tmp_path / "run1" / "instances").glob("*/snapshots/*.pack"))
        assert len(snapshots) == len(packs) > 0
        assert all(s.status == "present" and s.sha256 for s in snapshots)
        workflows = catalog.workflow_snapshots(run=run1.id)
        resume_files = sorted((tmp_path / "run1" / "snapshots").glob("snapshot_*.ymmsl"))
        assert len(workflows) == len(resume_files) > 1
        assert {w.resume_file for w in workflows} == set(resume_files)
        intermediate = [
            w for w in workflows if w.timestamp is not None and 0.0 < w.timestamp < 0.95
        ]
        assert intermediate, [w.timestamp for w in workflows]

    chosen = _cli("resume", "--run", "run1", "--before-time", "0.65", "-o",
                  str(tmp_path / "resume.ymmsl"), env=env)  # fmt: skip
    assert chosen.returncode == 0, chosen.stderr

    _manager(tmp_path / "run2", model, tmp_path / "resume.ymmsl", env=env)
    listed = json.loads(_cli("runs", "--json", env=env).stdout)
    assert [r["name"] for r in listed] == ["run1", "run2"]
    with open_catalog(catalog_file, create=True) as catalog:
        run2 = catalog.run("run2")
        assert run2.num_snapshots > 0
        # recorded live: how each run ended, and exactly where run2 started from
        assert catalog.run("run1").status == "finished" and run2.status == "finished"
        assert run2.finished_at is not None
        chosen_id = int(chosen.stderr.split("Workflow snapshot ")[1].split()[0])
        assert run2.resumed_from_run_id == run1.id
        assert run2.resumed_from_workflow_snapshot_id == chosen_id
        # the resumed snapshots were stored again as run2's first snapshots (MUSCLE3 does this)
        first = {s.instance: s for s in reversed(catalog.snapshots(run=run2.id))}
        assert all(s.sequence == 1 for s in first.values())
        assert catalog.workflow_snapshots(run=run2.id), "the resumed run found resume points too"
        # resuming from a consistent workflow snapshot ends where the full run ended
        ends = [
            load_pack(catalog.snapshots(run=run, instance="macro", final=True)[-1].path).snapshot
            for run in (run1.id, run2.id)
        ]
        assert ends[0].message is not None and ends[1].message is not None
        assert ends[1].message.timestamp == pytest.approx(ends[0].message.timestamp)
        assert ends[1].message.data == ends[0].message.data > 0
    lineage = json.loads(_cli("lineage", "run2", "--json", env=env).stdout)
    assert [(step["run"], step["resumed_from_workflow_snapshot"]) for step in lineage] == [
        ("run2", chosen_id),
        ("run1", None),
    ]
