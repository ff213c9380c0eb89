"""``catalog.muscle3.Instance`` inside real MUSCLE3: 0.10 (this environment) and 0.11 (its own).

For each release: every save writes the bytes libmuscle's own snapshot
manager writes for the same state, both resume from each other's files, and
a real coupled model (``tests/e2e/grid_model.py``) run by plain
``muscle_manager --start-all`` with the one-line change records every
snapshot, resumes from MUSCLE3's resume files to the same end state as the
uninterrupted run, and refuses a catalogued snapshot whose bytes changed.
MUSCLE3 0.11 work runs as subprocesses with the Python of
``.venv-muscle3-0.11`` (see ``tests/muscle3_env.py``).
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from catalog import open_catalog
from catalog.run_dir import parse_ymmsl, resume_files
from catalog.snapshot import Snapshot, SnapshotMetadata
from catalog.store import load_pack

from . import muscle3_env
from .muscle3_env import muscle3_011_python_or_skip

libmuscle = pytest.importorskip("libmuscle", reason="needs the 'test' extra (muscle3 0.10)")
from catalog.muscle3 import instance as m3_instance  # noqa: E402

pytestmark = pytest.mark.interop

E2E = Path(__file__).parent / "e2e"
VERSIONS = ["0.10", "0.11"]
PACK_FORMAT = {"0.10": 1, "0.11": 2}


def _python(version: str) -> Path:
    """The Python of the environment holding that MUSCLE3 release."""
    if version == "0.10":
        return Path(sys.executable)
    return muscle3_011_python_or_skip()


def _in_environment(version: str, check: str, *paths: Path) -> None:
    """Run a check of ``tests/e2e/m3checks.py`` next to the given MUSCLE3 release."""
    if version == "0.10":
        from tests.e2e import m3checks

        assert m3checks.CHECKS[check](*paths) > 0
        return
    done = subprocess.run(
        [str(_python(version)), str(E2E / "m3checks.py"), check, *map(str, paths)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "compared, libmuscle 0.11" in done.stdout


@pytest.mark.parametrize("required", [False, True])
def test_without_the_0_11_environment_its_tests_skip_unless_required(
    required: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_index(*_args: object) -> Path:
        raise muscle3_env.Muscle3EnvError("installing muscle3==0.11.0 failed: no index")

    monkeypatch.setattr(muscle3_env, "build_muscle3_011_env", no_index)
    monkeypatch.setattr(muscle3_env, "_SESSION", {})
    monkeypatch.setenv(muscle3_env.REQUIRE_ENV, "1" if required else "0")
    outcome = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(outcome, match="no index"):
        muscle3_env.muscle3_011_python_or_skip()


# --------------------------------------------------------------------------- same as libmuscle


@pytest.mark.parametrize("version", VERSIONS)
def test_every_save_writes_the_bytes_libmuscle_writes(version: str, tmp_path: Path) -> None:
    """Payloads of every kind (Grids in C and Fortran order, ...), final and implicit snapshots."""
    _in_environment(version, "byte_identity", tmp_path)


@pytest.mark.parametrize("version", VERSIONS)
def test_resuming_from_each_others_files_does_the_same(version: str, tmp_path: Path) -> None:
    _in_environment(version, "cross_resume", tmp_path)


# --------------------------------------------------------------------------- the one line


def test_instance_is_libmuscles_with_the_same_constructor() -> None:
    from catalog.muscle3 import Instance

    assert issubclass(Instance, libmuscle.Instance)
    ours = inspect.signature(Instance.__init__).parameters
    theirs = inspect.signature(libmuscle.Instance.__init__).parameters
    assert list(ours) == list(theirs)
    assert ours["flags"].default == theirs["flags"].default
    assert ours["ports"].default is theirs["ports"].default is None


def test_importing_catalog_muscle3_does_not_import_libmuscle() -> None:
    code = (
        "import sys, catalog.muscle3\n"
        "assert 'libmuscle' not in sys.modules, 'libmuscle imported early'\n"
        "from catalog.muscle3 import Instance\n"
        "assert 'libmuscle' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("installed", ["0.9.1", "0.12.0", "1.0", "unknown"])
def test_another_muscle3_release_is_refused_before_registering(
    installed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def registering(*_args: object) -> None:
        raise AssertionError("libmuscle's Instance was started")

    monkeypatch.setattr(m3_instance, "muscle3_version", lambda: installed)
    monkeypatch.setattr(libmuscle.Instance, "__init__", registering)
    from catalog.muscle3 import Instance, UnsupportedMuscle3Error

    with pytest.raises(UnsupportedMuscle3Error) as info:
        Instance()
    message = str(info.value)
    assert "0.10.x and 0.11.x" in message and f"muscle3 {installed} is installed" in message
    assert isinstance(info.value, RuntimeError)


@pytest.mark.parametrize(
    ("version", "pack_format"),
    [("0.10.0", 1), ("0.10.1rc1", 1), ("0.11.0", 2), ("0.11.3.dev2", 2)],
)
def test_supported_releases_and_the_format_each_writes(version: str, pack_format: int) -> None:
    assert m3_instance.pack_format_of(version) == pack_format


# --------------------------------------------------------------------------- real runs


def _model(python: Path, implementation: str) -> str:
    def program(name: str) -> str:
        return (
            f"  {name}:\n    executable: {python}\n    args: [{E2E / 'grid_model.py'}, {name}]\n"
            f"    env:\n      CATALOG_E2E_INSTANCE: {implementation}\n"
        )

    return f"""ymmsl_version: v0.2
models:
  grid_model:
    description: macro and micro exchanging Grids
    components:
      macro:
        description: macro
        ports: {{o_i: [o_i], s: [s]}}
        implementation: macro
      micro:
        description: micro
        ports: {{f_init: [f_i], o_f: [o_f]}}
        implementation: micro
    conduits:
      macro.o_i: micro.f_i
      micro.o_f: macro.s
programs:
{program("macro")}{program("micro")}resources:
  grid_model.macro: {{threads: 1}}
  grid_model.micro: {{threads: 1}}
settings:
  macro.t_max: 0.5
  macro.dt: 0.1
  micro.dt: 0.02
  muscle_remote_log_level: WARNING
checkpoints:
  at_end: true
  simulation_time:
  - every: 0.1
"""


@dataclass
class Runner:
    """Runs the model with one MUSCLE3 release, every run recording into one catalog.

    Attributes:
        python: The Python of the release's environment (its ``muscle_manager`` is beside it).
        root: Where the run directories go.
        catalog: The campaign catalog (``$MUSCLE_SNAPSHOT_CATALOG`` of every run).
    """

    python: Path
    root: Path
    catalog: Path

    def run(self, name: str, implementation: str, *resume: Path, succeed: bool = True) -> Path:
        """Run under plain ``muscle_manager --start-all``, optionally resuming; the run dir.

        Args:
            name: The run directory's name.
            implementation: ``catalog`` or ``libmuscle``: the Instance class used.
            resume: Resume files to append to the command line.
            succeed: Whether the run is expected to succeed or to fail.
        """
        run_dir = self.root / name
        run_dir.mkdir()
        model = self.root / f"{name}.ymmsl"
        model.write_text(_model(self.python, implementation))
        manager = self.python.parent / "muscle_manager"
        done = subprocess.run(
            [str(manager), "--start-all", "--run-dir", str(run_dir), str(model), *map(str, resume)],
            env=dict(os.environ, MUSCLE_SNAPSHOT_CATALOG=str(self.catalog)),
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert (done.returncode == 0) == succeed, done.stdout[-3000:] + done.stderr[-3000:]
        return run_dir


@dataclass
class Campaign:
    """The runs of one MUSCLE3 release.

    Attributes:
        version: The MUSCLE3 release series.
        runner: Runs more of them.
        full: Ours, uninterrupted.
        resumed: Ours, resumed from an intermediate workflow snapshot of ``full``.
        by_libmuscle: Plain libmuscle, resumed from ``full`` where micro's
            snapshot is a final one.
        from_libmuscle: Ours, resumed from snapshots plain libmuscle wrote in
            ``by_libmuscle``.
        resumed_from: Run -> the resume file it was started with.
    """

    version: str
    runner: Runner
    full: Path
    resumed: Path
    by_libmuscle: Path
    from_libmuscle: Path
    resumed_from: dict[Path, Path]

    @property
    def catalog(self) -> Path:
        return self.runner.catalog


def _resume_points(run_dir: Path) -> list[tuple[Path, dict[str, tuple[Path, Snapshot]]]]:
    """The resume files MUSCLE3 wrote for a run, each with its members' files and snapshots."""
    points = []
    for resume_file in resume_files(run_dir):
        members = {
            instance: (Path(path), load_pack(Path(path)).snapshot)
            for instance, path in _resume_section(resume_file).items()
        }
        points.append((resume_file, members))
    assert points, f"MUSCLE3 wrote no resume files in {run_dir}"
    return points


def _resume_section(resume_file: Path) -> dict[str, Path]:
    return {i: Path(p) for i, p in parse_ymmsl(resume_file.read_text()).resume.items()}


def _pick(run_dir: Path, wanted: Any) -> Path:
    for resume_file, members in _resume_points(run_dir):
        if set(members) == {"macro", "micro"} and wanted(members):
            return resume_file
    raise AssertionError(f"no resume file of {run_dir} fits")


def _intermediate(members: dict[str, tuple[Path, Snapshot]]) -> bool:
    macro = members["macro"][1]
    return not any(s.is_final_snapshot for _, s in members.values()) and (
        macro.message is not None and 0.15 < macro.message.timestamp < 0.45
    )


def _micro_final(members: dict[str, tuple[Path, Snapshot]]) -> bool:
    return members["micro"][1].is_final_snapshot and not members["macro"][1].is_final_snapshot


def _written_in_that_run(members: dict[str, tuple[Path, Snapshot]]) -> bool:
    """No member is the copy a resumed instance made of its origin (always ``<id>_1.pack``)."""
    return all(not path.name.endswith("_1.pack") for path, _ in members.values()) and not any(
        s.is_final_snapshot for _, s in members.values()
    )


@pytest.fixture(scope="module", params=VERSIONS)
def campaign(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    version: str = request.param
    root = tmp_path_factory.mktemp(f"muscle3-{version}")
    runner = Runner(_python(version), root, root / "campaign.sqlite")
    full = runner.run("full", "catalog")
    intermediate = _pick(full, _intermediate)
    resumed = runner.run("resumed", "catalog", intermediate)
    micro_final = _pick(full, _micro_final)
    by_libmuscle = runner.run("by_libmuscle", "libmuscle", micro_final)
    theirs = _pick(by_libmuscle, _written_in_that_run)
    from_libmuscle = runner.run("from_libmuscle", "catalog", theirs)
    return Campaign(
        version, runner, full, resumed, by_libmuscle, from_libmuscle,
        {resumed: intermediate, by_libmuscle: micro_final, from_libmuscle: theirs},
    )  # fmt: skip


def _packs(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("instances/*/snapshots/*.pack"))


def _metadata(metadata: SnapshotMetadata) -> dict[str, Any]:
    fields = dict(metadata.__dict__)
    if math.isnan(fields["timestamp"]):
        fields["timestamp"] = "NaN"
    return fields


def test_every_snapshot_is_recorded_with_the_metadata_it_holds(campaign: Campaign) -> None:
    ours = (campaign.full, campaign.resumed, campaign.from_libmuscle)
    with open_catalog(campaign.catalog, create=True) as catalog:
        runs = {run.run_dir: run for run in catalog.runs()}
        assert set(ours) <= set(runs)
        assert campaign.by_libmuscle not in runs  # plain libmuscle records nothing
        for run_dir in ours:
            run = runs[run_dir]
            assert run.model_name == "grid_model"
            packs = _packs(run_dir)
            assert len(packs) == run.num_snapshots == len(catalog.snapshots(run=run.id)) > 3
            for pack in packs:
                record = catalog.snapshot_by_path(pack)
                assert record is not None, pack
                assert record.sha256 == hashlib.sha256(pack.read_bytes()).hexdigest()
                assert record.format_version == PACK_FORMAT[campaign.version]
                in_file = SnapshotMetadata.from_snapshot(load_pack(pack).snapshot, str(pack))
                assert _metadata(record.to_metadata()) == _metadata(in_file)


def test_every_file_is_what_libmuscle_itself_writes(campaign: Campaign) -> None:
    """libmuscle, loading each of our files and writing it again, writes the same bytes."""
    _in_environment(
        campaign.version, "reencode", campaign.full, campaign.resumed, campaign.from_libmuscle
    )


def _final_macro(run_dir: Path) -> Snapshot:
    finals = [
        snapshot
        for pack in _packs(run_dir)
        if pack.parent.parent.name == "macro"
        and (snapshot := load_pack(pack).snapshot).is_final_snapshot
    ]
    return finals[-1]


def test_resumed_runs_end_where_the_uninterrupted_run_ended(campaign: Campaign) -> None:
    expected = _final_macro(campaign.full).message
    assert expected is not None and expected.data["step"] == 5
    for run_dir in (campaign.resumed, campaign.by_libmuscle, campaign.from_libmuscle):
        message = _final_macro(run_dir).message
        assert message is not None, run_dir
        assert message.timestamp == expected.timestamp, run_dir
        assert message.data["step"] == expected.data["step"], run_dir
        np.testing.assert_array_equal(message.data["state"].array, expected.data["state"].array)


def test_resumed_copies_record_the_snapshot_they_came_from(campaign: Campaign) -> None:
    with open_catalog(campaign.catalog, create=True) as catalog:
        resume_file = campaign.resumed_from[campaign.resumed]
        for instance, path in _resume_section(resume_file).items():
            origin = catalog.snapshot_by_path(path)
            assert origin is not None and origin.run_id == catalog.run("full").id
            safe = instance.replace("[", "-").replace("]", "")
            copy = catalog.snapshot_by_path(
                campaign.resumed / "instances" / instance / "snapshots" / f"{safe}_1.pack"
            )
            assert copy is not None and copy.copied_from_snapshot_id == origin.id
            assert copy.sha256 == origin.sha256
        # snapshots plain libmuscle wrote are not in the catalog: their copies name no origin
        for copy in catalog.snapshots(run="from_libmuscle"):
            assert copy.copied_from_snapshot_id is None


def test_a_catalogued_snapshot_whose_bytes_changed_is_refused(campaign: Campaign) -> None:
    resume_file = campaign.resumed_from[campaign.resumed]
    macro = _resume_section(resume_file)["macro"]
    original = macro.read_bytes()
    with open_catalog(campaign.catalog, create=True) as catalog:
        record = catalog.snapshot_by_path(macro)
        assert record is not None and record.sha256
    at = original.index(b"wallclock_time") + len(b"wallclock_time") + 8
    changed = original[:at] + bytes([original[at] ^ 1]) + original[at + 1 :]
    macro.write_bytes(changed)  # still a valid snapshot, a slightly other wallclock time
    try:
        run_dir = campaign.runner.run("changed", "catalog", resume_file, succeed=False)
    finally:
        macro.write_bytes(original)
    # the instance shut down with the error (error_shutdown), which the manager logs
    log = (run_dir / "muscle3_manager.log").read_text()
    (line,) = [
        line for line in log.splitlines() if line.startswith("macro ") and "CRITICAL" in line
    ]
    assert f"Unable to load snapshot from {macro}" in line
    assert f"recorded sha256 {record.sha256}" in line
    assert f"actual sha256 {hashlib.sha256(changed).hexdigest()}" in line
    assert not (run_dir / "instances" / "macro" / "snapshots" / "macro_1.pack").exists()
