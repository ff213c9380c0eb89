"""A real three-run campaign on MUSCLE3 0.10 and 0.11: killed, resumed, linked, same end state.

Each campaign lives in one catalog made by ``muscle-catalog init``; runs find
it from their run directories, with no environment variable. The model
(``e2e/campaign_model.py``) saves through ``catalog.muscle3.Instance`` and the
manager is ``muscle-catalog-manager``. Per MUSCLE3 release:

1. ``base`` runs to the end: the state every resumed chain must reach;
2. ``run1`` is killed (``kill -9`` of the manager's process group) midway;
3. ``run2`` resumes from ``muscle-catalog resume --latest`` of run1 and is
   killed midway too;
4. ``run3`` resumes from ``resume --before-time T`` of run2 and runs to the end.

Then run3's final state equals base's, ``lineage`` names exactly the
workflow snapshots ``resume`` chose, and the statuses say what happened.
MUSCLE3 0.11 runs in its own environment (see ``muscle3_env.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from catalog import open_catalog
from catalog.store import load_pack

from .muscle3_env import muscle3_011_python_or_skip

MODEL_PROGRAM = Path(__file__).parent / "e2e" / "campaign_model.py"

MODEL = """ymmsl_version: v0.2
models:
  campaign:
    description: a macro and two micros, slow enough to be killed halfway
    components:
      macro: {{ports: {{o_i: [o_i], s: [s]}}, description: m, implementation: macro}}
      micro:
        ports: {{f_init: [f_i], o_f: [o_f]}}
        description: u
        implementation: micro
        multiplicity: [2]
    conduits:
      macro.o_i: micro.f_i
      micro.o_f: macro.s
programs:
  macro: {{executable: {python}, args: [{program}, macro]}}
  micro: {{executable: {python}, args: [{program}, micro]}}
resources:
  campaign.macro: {{threads: 1}}
  campaign.micro: {{threads: 1}}
settings:
  macro.t_max: 1.0
  macro.dt: 0.05
  macro.step_sleep: 0.06
  muscle_remote_log_level: WARNING
checkpoints:
  at_end: true
  simulation_time:
  - every: 0.1
"""


@dataclass(frozen=True)
class Toolchain:
    """The commands of one environment (one MUSCLE3 release)."""

    python: Path

    def command(self, name: str) -> str:
        return str(self.python.parent / name)


@pytest.fixture(params=["0.10", "0.11"])
def toolchain(request: pytest.FixtureRequest) -> Toolchain:
    if request.param == "0.11":
        return Toolchain(muscle3_011_python_or_skip())
    python = Path(sys.executable)
    if not (python.parent / "muscle-catalog-manager").exists():
        pytest.skip(f"the package's commands are not installed beside {sys.executable}")
    return Toolchain(python)


class Campaign:
    """A campaign directory with its catalog, and the commands that run in it."""

    def __init__(self, root: Path, tools: Toolchain) -> None:
        self.root = root
        self.tools = tools
        self.env = {k: v for k, v in os.environ.items() if k != "MUSCLE_SNAPSHOT_CATALOG"}
        self.model = root / "model.ymmsl"
        self.model.write_text(MODEL.format(python=tools.python, program=MODEL_PROGRAM))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.tools.command("muscle-catalog"), *args],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def resume(self, run: str, *choice: str) -> int:
        """Write ``<run>.resume.ymmsl`` with ``muscle-catalog resume``; the workflow snapshot id."""
        done = self.cli("resume", "--run", run, *choice, "-o", f"{run}.resume.ymmsl")
        return int(done.stderr.split("Workflow snapshot ")[1].split()[0])

    def manager(self, run: str, *resume: str) -> subprocess.Popen[str]:
        (self.root / run).mkdir()
        files = [str(self.model), *(str(self.root / f) for f in resume)]
        return subprocess.Popen(
            [self.tools.command("muscle-catalog-manager"), "--start-all", "--run-dir", run, *files],
            cwd=self.root, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip

    def run_to_end(self, run: str, *resume: str) -> None:
        process = self.manager(run, *resume)
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output

    def kill_midway(self, run: str, resume_files: int, *resume: str) -> None:
        """Start a run and kill -9 its manager (and instances) once it wrote ``resume_files``."""
        process = self.manager(run, *resume)
        folder = self.root / run / "snapshots"
        deadline = time.monotonic() + 120
        while len(list(folder.glob("snapshot_*.ymmsl"))) < resume_files:
            assert process.poll() is None, f"{run} ended before it could be killed"
            assert time.monotonic() < deadline, f"{run} wrote no resume files"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


def _final_state(catalog_file: Path, run: str) -> tuple[float, object]:
    with open_catalog(catalog_file, create=True) as catalog:
        record = catalog.snapshots(run=run, instance="macro", final=True)[-1]
    message = load_pack(record.path).snapshot.message
    assert message is not None
    return message.timestamp, message.data


def test_killed_and_resumed_campaign_ends_where_the_full_run_ends(
    toolchain: Toolchain, tmp_path: Path
) -> None:
    root = tmp_path / "campaign"
    root.mkdir()
    campaign = Campaign(root, toolchain)
    campaign.cli("init")
    catalog_file = root / "snapshot_catalog.sqlite"

    campaign.run_to_end("base")
    campaign.kill_midway("run1", 3)
    from_run1 = campaign.resume("run1", "--latest")
    campaign.kill_midway("run2", 4, "run1.resume.ymmsl")
    workflows = json.loads(campaign.cli("workflows", "--run", "run2", "--json").stdout)
    times = sorted({w["timestamp"] for w in workflows if isinstance(w["timestamp"], float)})
    assert len(times) >= 2, workflows
    from_run2 = campaign.resume("run2", "--before-time", str(times[-2]))
    campaign.run_to_end("run3", "run2.resume.ymmsl")

    assert _final_state(catalog_file, "run3") == _final_state(catalog_file, "base")
    lineage = json.loads(campaign.cli("lineage", "run3", "--json").stdout)
    assert [(s["run"], s["resumed_from_workflow_snapshot"]) for s in lineage] == [
        ("run3", from_run2),
        ("run2", from_run1),
        ("run1", None),
    ]
    runs = {r["name"]: r for r in json.loads(campaign.cli("runs", "--json").stdout)}
    assert set(runs) == {"base", "run1", "run2", "run3"}
    # killed managers record no end; the ones that ended cleanly say so
    assert {name: r["status"] for name, r in runs.items()} == {
        "base": "finished", "run1": "running", "run2": "running", "run3": "finished",
    }  # fmt: skip
    assert runs["run3"]["resumed_from_run"] == "run2"
    # every run directory recorded into the campaign's one catalog
    assert not list(root.glob("*/snapshot_catalog.sqlite"))
    with open_catalog(catalog_file, create=True) as catalog:
        for run in ("base", "run1", "run2", "run3"):
            packs = list((root / run / "instances").glob("*/snapshots/*.pack"))
            assert len(catalog.snapshots(run=run)) == len(packs) > 0
        # run3's resumed copies record the snapshots they were copied from
        copies = [s for s in catalog.snapshots(run="run3") if s.copied_from_snapshot_id]
        assert {catalog.snapshot(s.copied_from_snapshot_id or 0).run for s in copies} == {"run2"}


def test_watch_records_a_plain_manager_run_as_muscle3_wrote_it(
    toolchain: Toolchain, tmp_path: Path
) -> None:
    """Plain muscle_manager, the instances on catalog.muscle3.Instance, watch beside them."""
    root = tmp_path / "campaign"
    root.mkdir()
    campaign = Campaign(root, toolchain)
    campaign.cli("init")
    (root / "plain").mkdir()
    watcher = subprocess.Popen(
        [toolchain.command("muscle-catalog"), "watch", "plain", "--timeout", "240"],
        cwd=root, env=campaign.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    manager = subprocess.run(
        [toolchain.command("muscle_manager"), "--start-all", "--run-dir", "plain",
         str(campaign.model)],
        cwd=root, env=campaign.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert manager.returncode == 0, manager.stdout + manager.stderr
    out, err = watcher.communicate(timeout=120)
    assert watcher.returncode == 0, out + err

    with open_catalog(root / "snapshot_catalog.sqlite", create=True) as catalog:
        (run,) = catalog.runs()
        assert run.status == "finished"
        packs = sorted((root / "plain" / "instances").glob("*/snapshots/*.pack"))
        assert sorted(s.path for s in catalog.snapshots(run=run.id)) == packs
        written = sorted((root / "plain" / "snapshots").glob("snapshot_*.ymmsl"))
        workflows = catalog.workflow_snapshots(run=run.id)
        assert len(written) > 1
        assert sorted(w.resume_file for w in workflows if w.resume_file) == written
        for workflow in workflows:  # the members are the files each resume file names
            assert workflow.resume_file is not None
            text = workflow.resume_file.read_text()
            for path in workflow.resume.values():
                assert path in text
