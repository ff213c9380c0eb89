"""Watching run directories while MUSCLE3 writes them: replays of real runs, and a real run.

The replays write a real run directory of each MUSCLE3 generation into an
empty directory file by file, in the order its manager saw them (from the
registry trace recorded with the fixture), some files in two halves with a
pause in between, and the end of the manager log last. Watching must record
exactly what importing the finished directory records, and never warn about
the halves it saw.
"""

from __future__ import annotations

import datetime as dt
import json
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from catalog import Catalog, open_catalog
from catalog.cli import cli
from catalog.cli.watch import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TIMEOUT, exit_code
from catalog.enums import RunStatus, Source
from catalog.errors import RunDirectoryError
from catalog.run_dir import (
    CONFIGURATION_FILE,
    MANAGER_LOG,
    parse_ymmsl,
    resume_files,
    split_at_instances,
)
from catalog.run_import import import_run_directory
from catalog.watch import (
    ManagerLog,
    WatchOutcome,
    WatchProgress,
    WatchReport,
    incomplete_resume_section,
    watch_run_directories,
)

from .conftest import RUNS
from .test_end_to_end import model_configuration

REPLAYED = ["v0.10/mm_vector5", "v0.11/mm_scalar", "v0.7/mm_scalar"]
BIN = Path(sys.executable).parent

#: Fast polling for tests; the pauses in half-written files are several polls long.
INTERVAL = 0.05
SETTLE = 0.3
HALF_PAUSE = 0.25

#: The end of a real MUSCLE3 0.10 manager log whose micro crashed (the stderr excerpt shortened).
FAILURE_TAIL = """\
muscle_manager 2026-11-25 18:15:52,973 ERROR   libmuscle.manager.instance_manager: Instance micro[2] quit with exit code 1
muscle_manager 2026-11-25 18:15:52,973 ERROR   libmuscle.manager.instance_manager: Instance macro quit with exit code -9
muscle_manager 2026-11-25 18:15:52,973 ERROR   libmuscle.manager.instance_manager: The last error output of micro[2] was:
muscle_manager 2026-11-25 18:15:52,973 ERROR   libmuscle.manager.instance_manager: 

    RuntimeError: micro: deliberate crash at t=0.26

muscle_manager 2026-11-25 18:15:52,973 ERROR   libmuscle.manager.instance_manager: More output may be found in /runs/crash/instances/micro[2]

"""  # noqa: E501, W291


# --------------------------------------------------------------------------- replaying a run


def _end_index(lines: Sequence[str]) -> int:
    """Where a manager log starts to say the run is ending: the lines watch must not see early."""
    for index, line in enumerate(lines):
        if any(
            marker in line
            for marker in ("Deregistered instance", "finished with exit code", "finished without")
        ):
            return index
    return len(lines)


def _write(path: Path, data: bytes, *, cut: int | None = None, pause: float = 0.0) -> None:
    """Write a file as MUSCLE3 does, in place; with ``cut``, in two parts with a pause between."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        if cut is not None:
            stream.write(data[:cut])
            stream.flush()
            time.sleep(pause)
        stream.write(data[cut or 0 :])


def _resume_line_cut(text: bytes) -> int:
    """Just after the first member of the resume section: valid yMMSL, members missing."""
    start = text.index(b"\nresume:\n") + len(b"\nresume:\n")
    return text.index(b"\n", start) + 1


@dataclass
class Replay:
    """Writes a fixture run into ``target`` in the order its manager saw the files."""

    source: Path
    target: Path
    log_tail: str | None = None
    halves: list[Path] = field(default_factory=list)
    step: float = 0.01

    def writes(self) -> list[Path]:
        """The ``.pack`` and resume files, relative to the run, in the order they were written."""
        order: list[Path] = []
        for line in (self.source / "registry_trace.jsonl").read_text().splitlines():
            event = json.loads(line)
            if event["event"] == "add" and not event["is_null_snapshot"]:
                split = split_at_instances(Path(event["metadata"]["snapshot_filename"]))
                assert split is not None
                order.append(Path("instances", *split[1]))
            elif event["event"] == "write":
                order.append(Path("snapshots", event["file"]))
        files = {p.relative_to(self.source) for p in self.source.glob("instances/*/snapshots/*")}
        files |= {p.relative_to(self.source) for p in resume_files(self.source)}
        assert set(order) == files, "the trace names every file of the run"
        return order

    def run(self) -> None:
        log = (self.source / MANAGER_LOG).read_text().splitlines(keepends=True)
        end = _end_index(log)
        config = (self.source / CONFIGURATION_FILE).read_bytes()
        _write(self.target / CONFIGURATION_FILE, config, cut=len(config) // 2, pause=HALF_PAUSE)
        (self.target / MANAGER_LOG).write_text("".join(log[:end]))
        (self.target / "instances").mkdir()
        (self.target / "snapshots").mkdir()
        writes = self.writes()
        packs = [w for w in writes if w.suffix == ".pack"]
        resumes = [w for w in writes if w.suffix == ".ymmsl"]
        cuts: dict[Path, int] = {
            packs[0]: 1,  # only the version byte
            packs[len(packs) // 2]: (self.source / packs[len(packs) // 2]).stat().st_size // 2,
            resumes[0]: _resume_line_cut((self.source / resumes[0]).read_bytes()),
            resumes[-1]: (self.source / resumes[-1]).stat().st_size // 2,
        }
        self.halves = [self.target / w for w in cuts]
        for relative in writes:
            data = (self.source / relative).read_bytes()
            _write(self.target / relative, data, cut=cuts.get(relative), pause=HALF_PAUSE)
            time.sleep(self.step)
        tail = "".join(log[end:]) if self.log_tail is None else self.log_tail
        with (self.target / MANAGER_LOG).open("a") as stream:
            stream.write(tail)


@contextmanager
def replaying(replay: Replay) -> Iterator[None]:
    """Run a replay in a background thread, re-raising its error after joining it."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            replay.run()
        except BaseException as exc:
            errors.append(exc)

    replay.target.mkdir(parents=True)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(60)
    if errors:
        raise errors[0]


MemberSets = Counter[frozenset[tuple[str, str | None]]]


def member_sets(catalog: Catalog, run_id: int) -> MemberSets:
    """A run's workflow snapshots as member sets (instance -> file or None), counted."""
    return Counter(frozenset(w.members.items()) for w in catalog.workflow_snapshots(run_id))


def watch(
    catalog: Catalog,
    *dirs: Path,
    timeout: float = 60.0,
    stop: threading.Event | None = None,
) -> tuple[list[WatchReport], list[WatchProgress]]:
    """Watch with test timings, keeping every progress item reported."""
    seen: list[WatchProgress] = []
    reports = watch_run_directories(
        catalog,
        dirs,
        interval=INTERVAL,
        settle=SETTLE,
        timeout=timeout,
        progress=seen.extend,
        stop=stop,
    )
    return reports, seen


def reference_import(tmp_path: Path, run_dir: Path) -> tuple[MemberSets, str | None]:
    """What importing the finished directory into a catalog of its own records."""
    folder = tmp_path / "reference"
    folder.mkdir(exist_ok=True)
    with open_catalog(folder / f"{run_dir.name}.sqlite", create=True) as reference:
        report = import_run_directory(reference, run_dir)
        assert report.warnings == []
        return member_sets(reference, report.run_id), reference.run(report.run_id).model_name


def copy_without_end(name: str, tmp_path: Path, tail: str = "") -> Path:
    """A finished fixture run whose manager log stops before the end (``tail`` appended)."""
    target = tmp_path / "runs" / Path(name).name
    shutil.copytree(RUNS / name, target)
    log = (target / MANAGER_LOG).read_text().splitlines(keepends=True)
    (target / MANAGER_LOG).write_text("".join(log[: _end_index(log)]) + tail)
    return target


# --------------------------------------------------------------------------- replays


@pytest.mark.parametrize("name", REPLAYED)
def test_a_replayed_run_is_recorded_as_importing_it_would(
    catalog: Catalog, tmp_path: Path, name: str
) -> None:
    target = tmp_path / "runs" / Path(name).name
    replay = Replay(RUNS / name, target)
    with replaying(replay):
        (report,), seen = watch(catalog, target)

    assert report.outcome == WatchOutcome.FINISHED and report.status == RunStatus.FINISHED
    assert report.warnings == [] and report.pending == []
    assert max(item.pending for item in seen) >= 1, "the half-written files were seen"
    assert any(item.phase == "running" and item.snapshots for item in seen), "recorded live"
    assert report.run is not None and report.run.source == Source.WATCH
    assert report.run.finished_at is not None

    packs = sorted(target.glob("instances/*/snapshots/*.pack"))
    assert sorted(s.path for s in catalog.snapshots(run=report.run.id)) == packs
    assert report.snapshots_added == len(packs)
    expected, model_name = reference_import(tmp_path, target)
    assert member_sets(catalog, report.run.id) == expected
    watched = catalog.workflow_snapshots(report.run.id)
    assert len(watched) == len(resume_files(target)) == report.workflow_snapshots_added
    assert {w.source for w in watched} == {Source.WATCH}
    assert {w.resume_file for w in watched} == set(resume_files(target))
    assert report.run.model_name == model_name is not None
    configuration = (target / CONFIGURATION_FILE).read_text()
    assert catalog.run_configuration(report.run.id) == configuration

    again = import_run_directory(catalog, target)
    assert (again.snapshots_added, again.workflow_snapshots_added) == (0, 0)
    assert again.workflow_snapshots_already_known == len(watched)
    assert catalog.workflow_snapshots(report.run.id) == watched


def test_a_stop_between_transactions_leaves_nothing_half_recorded(
    catalog: Catalog, tmp_path: Path
) -> None:
    target = tmp_path / "runs" / "mm_vector5"
    stop = threading.Event()

    def stop_after_some(items: Sequence[WatchProgress]) -> None:
        if items[0].snapshots >= 5:
            stop.set()

    with replaying(Replay(RUNS / "v0.10/mm_vector5", target)):
        (report,) = watch_run_directories(
            catalog, [target], interval=INTERVAL, progress=stop_after_some, stop=stop
        )
    assert report.outcome == WatchOutcome.INTERRUPTED
    assert report.status == RunStatus.RUNNING, "nothing said how the run went"
    assert report.warnings == []
    assert report.run is not None
    recorded = catalog.snapshots(run=report.run.id)
    assert 5 <= len(recorded) < 41
    assert all(s.size_bytes == s.path.stat().st_size for s in recorded)

    rest = import_run_directory(catalog, target)
    assert rest.warnings == []
    assert rest.snapshots_added + len(recorded) == 41
    expected, _model = reference_import(tmp_path, target)
    assert member_sets(catalog, rest.run_id) == expected


def test_a_resume_file_waits_for_the_snapshots_it_names(catalog: Catalog, tmp_path: Path) -> None:
    target = copy_without_end("v0.11/mm_scalar", tmp_path)
    late = target / "instances" / "micro" / "snapshots" / "micro_6.pack"
    data = late.read_bytes()
    late.unlink()
    tail = (RUNS / "v0.11/mm_scalar" / MANAGER_LOG).read_text()
    tail = tail[len((target / MANAGER_LOG).read_text()) :]

    def write_the_rest(items: Sequence[WatchProgress]) -> None:
        if not late.exists():
            assert items[0].pending == 1, "the last resume file names micro_6.pack"
            assert items[0].workflow_snapshots == 6
            late.write_bytes(data)
            with (target / MANAGER_LOG).open("a") as stream:
                stream.write(tail)

    (report,) = watch_run_directories(
        catalog, [target], interval=INTERVAL, settle=SETTLE, timeout=30, progress=write_the_rest
    )
    assert report.outcome == WatchOutcome.FINISHED and report.warnings == []
    assert (report.snapshots_added, report.workflow_snapshots_added) == (12, 7)


def test_several_runs_are_watched_at_once(catalog: Catalog, tmp_path: Path) -> None:
    names = ["v0.7/mm_scalar", "v0.11/mm_scalar"]
    targets = [tmp_path / name for name in names]
    for name, target in zip(names, targets, strict=True):
        shutil.copytree(RUNS / name, target)
    reports, _seen = watch(catalog, *targets, targets[0])
    assert [r.run_dir for r in reports] == targets
    assert [r.run_name for r in reports] == ["mm_scalar", "mm_scalar-2"]
    assert all(r.outcome == WatchOutcome.FINISHED and r.snapshots_added == 12 for r in reports)
    assert [r.libmuscle_version for r in reports] == [None, "0.11.0"]


def test_a_resumed_run_is_linked_to_its_origin(catalog: Catalog) -> None:
    origin = import_run_directory(catalog, RUNS / "v0.11/mm_scalar")
    (report,), _seen = watch(catalog, RUNS / "v0.11/mm_scalar_resume")
    assert report.outcome == WatchOutcome.FINISHED and report.warnings == []
    assert report.resumed_from is not None and report.resumed_from.id == origin.run_id
    assert report.run is not None and report.run.resumed_from_run_id == origin.run_id


def test_timeout_records_what_is_there_and_warns_once_per_broken_file(
    catalog: Catalog, tmp_path: Path
) -> None:
    target = copy_without_end("v0.11/mm_scalar", tmp_path)
    folder = target / "instances" / "micro" / "snapshots"
    broken = folder / "micro_99.pack"
    broken.write_bytes((folder / "micro_1.pack").read_bytes()[:40])
    last = resume_files(target)[-1].read_bytes()
    cut = target / "snapshots" / "snapshot_20991231_235959.ymmsl"
    cut.write_bytes(last[: _resume_line_cut(last)])

    started = time.monotonic()
    (report,), _seen = watch(catalog, target, timeout=0.5)
    assert time.monotonic() - started < 5
    assert report.outcome == WatchOutcome.TIMEOUT
    assert report.run is not None and report.run.status == RunStatus.RUNNING
    assert report.run.finished_at is None
    assert report.snapshots_added == 12 and report.workflow_snapshots_added == 7
    assert len(report.warnings) == 2, report.warnings
    assert str(broken) in report.warnings[0] and "Nothing was recorded" in report.warnings[0]
    assert str(cut) in report.warnings[1] and "lacks micro" in report.warnings[1]
    assert report.pending == [broken, cut]


def test_a_failed_run_is_marked_failed(catalog: Catalog, tmp_path: Path) -> None:
    target = copy_without_end("v0.10/mm_vector5", tmp_path, FAILURE_TAIL)
    (report,), _seen = watch(catalog, target)
    assert report.outcome == WatchOutcome.FAILED
    assert report.run is not None and report.run.status == RunStatus.FAILED
    assert report.run.finished_at is not None
    # the time the manager logged the failure (local time, as it logs)
    assert report.run.finished_at == dt.datetime(2026, 11, 25, 18, 15, 52, 973000).astimezone()
    assert any("Instance micro[2] quit with exit code 1" in note for note in report.notes)
    assert not any("last error output" in note for note in report.notes)
    assert report.snapshots_added == 41 and report.warnings == []


def test_a_directory_that_never_becomes_a_run_is_reported(catalog: Catalog, tmp_path: Path) -> None:
    (report,), seen = watch(catalog, tmp_path / "not_yet", timeout=0.2)
    assert report.outcome == WatchOutcome.TIMEOUT and report.run is None
    assert seen[0].phase == "waiting"
    assert "never became a MUSCLE3 run directory" in report.warnings[0]
    assert catalog.runs() == []


def test_directories_that_cannot_be_run_directories_are_refused(
    catalog: Catalog, tmp_path: Path
) -> None:
    with pytest.raises(RunDirectoryError, match="neither it nor its parent"):
        watch_run_directories(catalog, [tmp_path / "a" / "b"])
    with pytest.raises(RunDirectoryError, match="holds run directories"):
        watch_run_directories(catalog, [RUNS / "v0.10"])
    (tmp_path / "file").write_text("")
    with pytest.raises(RunDirectoryError, match="is a file"):
        watch_run_directories(catalog, [tmp_path / "file"])
    with pytest.raises(ValueError, match="must be positive"):
        watch_run_directories(catalog, [tmp_path], timeout=0)
    assert catalog.runs() == []


# --------------------------------------------------------------------------- the manager log


@pytest.mark.parametrize(
    "run_dir", sorted(p.parent for p in RUNS.glob(f"*/*/{MANAGER_LOG}")), ids=lambda p: p.name
)
def test_every_fixture_log_says_its_run_finished(run_dir: Path) -> None:
    log = ManagerLog(run_dir / MANAGER_LOG)
    assert log.read()
    assert log.ended == RunStatus.FINISHED and log.end_time is not None
    version = run_dir.parent.name[1:]
    if version == "0.7":
        assert log.version is None and not log.says_how_it_ended
    else:
        assert log.version is not None and log.version.startswith(version)
        assert log.says_how_it_ended


def test_the_log_is_read_as_it_grows(tmp_path: Path) -> None:
    path = tmp_path / MANAGER_LOG
    lines = (RUNS / "v0.11/mm_scalar" / MANAGER_LOG).read_text().splitlines(keepends=True)
    end = _end_index(lines)
    path.write_text("".join(lines[:end]))
    log = ManagerLog(path)
    assert log.read() and log.ended is None and log.instances_started
    assert not log.read(), "nothing new"
    last = lines[-1].rstrip("\n")
    with path.open("a") as stream:
        stream.write("".join(lines[end:-1]) + last[:-10])
    assert log.read() and log.ended == RunStatus.FINISHED, "every instance deregistered"
    assert not log.says_how_it_ended, "a cut line is not taken in"
    with path.open("a") as stream:
        stream.write(last[-10:])
    assert log.read() and log.says_how_it_ended, "a whole last line needs no newline"
    assert not log.read()


@pytest.mark.parametrize(
    "message",
    [
        "Instance micro quit with exit code 1",
        "Instance micro quit with error 1",  # MUSCLE3 0.7.0
        "The simulation was aborted.",
    ],
)
def test_error_lines_of_the_instance_manager_mean_failure(tmp_path: Path, message: str) -> None:
    path = tmp_path / MANAGER_LOG
    path.write_text(
        "muscle_manager 2026-11-25 18:15:52,973 INFO    libmuscle.manager.instance_manager: "
        "Planned micro on Resources(vm: 0)\n"
        "micro          2026-11-25 18:15:52,973 ERROR   micro: an instance's own error\n"
        f"muscle_manager 2026-11-25 18:15:52,973 ERROR   libmuscle.manager.instance_manager: "
        f"{message}\n"
    )
    log = ManagerLog(path)
    log.read()
    assert log.ended == RunStatus.FAILED and log.failure_summary == [message]


# --------------------------------------------------------------------------- resume files


def test_every_fixture_resume_file_is_whole() -> None:
    files = sorted(RUNS.glob("*/*/snapshots/snapshot_*.ymmsl"))
    assert len(files) > 100
    for path in files:
        assert incomplete_resume_section(parse_ymmsl(path.read_text())) is None, path


@pytest.mark.parametrize(
    "name", ["v0.10/mm_vector5", "v0.10/dispatch", "v0.7/mm_scalar", "v0.11/mm_scalar_resume"]
)
def test_no_prefix_of_a_resume_file_passes_for_the_whole(name: str) -> None:
    for path in resume_files(RUNS / name)[::4]:
        text = path.read_text()
        whole = parse_ymmsl(text).resume
        for end in [i + 1 for i, char in enumerate(text) if char == "\n"] + [len(text) - 5]:
            try:
                document = parse_ymmsl(text[:end])
            except ValueError:
                continue
            if incomplete_resume_section(document) is not None or end >= len(text) - 1:
                continue
            # Cut inside the last path: the file it names is not a snapshot (not recorded).
            assert document.resume != whole
            assert any(not str(p).endswith(".pack") for p in document.resume.values())


# --------------------------------------------------------------------------- the command


def invoke(location: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--catalog", location, "watch", *args])


def test_cli_watches_until_the_run_ends(catalog_url: str, tmp_path: Path) -> None:
    target = tmp_path / "runs" / "mm_scalar"
    shutil.copytree(RUNS / "v0.11/mm_scalar", target)
    result = invoke(catalog_url, str(target), "--interval", "0.05")
    assert result.exit_code == 0, result.output
    assert "Watched mm_scalar (run 1)" in result.stdout and "status finished" in result.stdout
    assert "snapshots: 12 added, 0 already known" in result.stdout
    assert "workflow snapshots: 7 added, 0 already known" in result.stdout
    assert "mm_scalar: 12 snapshots, 7 workflow snapshots, 0 pending (finished)" in result.stderr
    assert "Traceback" not in result.output and "Warning" not in result.stderr
    again = invoke(catalog_url, str(target), "--interval", "0.05")
    assert "snapshots: 0 added, 12 already known" in again.stdout


def test_cli_exit_codes_say_how_watching_ended(catalog_url: str, tmp_path: Path) -> None:
    failed = copy_without_end("v0.10/mm_vector5", tmp_path, FAILURE_TAIL)
    result = invoke(catalog_url, str(failed), "--interval", "0.05")
    assert result.exit_code == EXIT_FAILED, result.output
    assert "failed, status failed" in result.stdout and "quit with exit code 1" in result.stdout

    running = copy_without_end("v0.11/mm_scalar", tmp_path)
    result = invoke(catalog_url, str(running), "--interval", "0.05", "--timeout", "0.3")
    assert result.exit_code == EXIT_TIMEOUT, result.output
    assert "timeout, status running" in result.stdout
    assert "(timeout)" in result.stderr

    empty = tmp_path / "empty"
    result = invoke(catalog_url, str(empty), "--timeout", "0.2")
    assert result.exit_code == EXIT_TIMEOUT
    assert "waiting for MUSCLE3" in result.stderr and "never became" in result.stderr

    result = invoke(catalog_url, str(tmp_path / "no" / "such"))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("Error: Cannot watch") and len(result.stderr.splitlines()) == 1

    interrupted = WatchReport(run_dir=tmp_path, outcome=WatchOutcome.INTERRUPTED)
    finished = WatchReport(run_dir=tmp_path, outcome=WatchOutcome.FINISHED)
    assert exit_code([finished, interrupted]) == EXIT_INTERRUPTED
    assert exit_code([finished]) == 0


@pytest.mark.parametrize("option", ["--timeout", "--interval"])
@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_cli_times_must_be_positive(tmp_path: Path, option: str, value: str) -> None:
    result = invoke(str(tmp_path / "c.sqlite"), str(tmp_path), option, value)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.stderr
    assert not (tmp_path / "c.sqlite").exists()


def _command(*args: str) -> list[str]:
    command = BIN / "muscle-catalog"
    if not command.exists():
        pytest.skip(f"the package's commands are not installed beside {sys.executable}")
    return [str(command), *args]


def _read_line(stream: object, timeout: float) -> str:
    """A line of a subprocess's output, or fail after ``timeout`` seconds."""
    assert hasattr(stream, "readline") and hasattr(stream, "fileno")
    ready, _w, _x = select.select([stream], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    line: str = stream.readline()
    return line


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signals_stop_the_command_cleanly(
    catalog_url: str, tmp_path: Path, signum: signal.Signals
) -> None:
    target = tmp_path / "runs" / "mm_scalar"
    shutil.copytree(RUNS / "v0.11/mm_scalar", target, ignore=shutil.ignore_patterns("*.log"))
    process = subprocess.Popen(
        _command("--catalog", catalog_url, "watch", str(target), "--interval", "0.1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "12 snapshots, 7 workflow snapshots" in _read_line(process.stderr, 60)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == EXIT_INTERRUPTED, stdout + stderr
    assert "interrupted, status running" in stdout and "Traceback" not in stderr
    with open_catalog(catalog_url, create=True) as catalog:
        (run,) = catalog.runs()
        assert run.num_snapshots == 12 and run.num_workflow_snapshots == 7


# --------------------------------------------------------------------------- a real run


@pytest.mark.interop
def test_a_real_muscle_manager_run_is_recorded_while_it_runs(
    catalog_url: str, tmp_path: Path
) -> None:
    pytest.importorskip("libmuscle", reason="a real run needs the 'test' extra (muscle3)")
    manager_command = BIN / "muscle_manager"
    if not manager_command.exists():
        pytest.skip(f"muscle_manager is not installed beside {sys.executable}")
    model = tmp_path / "model.ymmsl"
    model.write_text(model_configuration(2, t_max=0.5, every=0.1))
    run_dir = tmp_path / "run1"
    run_dir.mkdir()  # muscle_manager wants its --run-dir to exist
    watcher = subprocess.Popen(
        _command("--catalog", catalog_url, "watch", str(run_dir), "--interval", "0.2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        manager = subprocess.run(
            [str(manager_command), "--start-all", "--run-dir", str(run_dir), str(model)],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )  # fmt: skip
        assert manager.returncode == 0, manager.stdout + manager.stderr
        stdout, stderr = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, stdout + stderr
    assert "Warning" not in stderr

    with open_catalog(catalog_url, create=True) as catalog:
        (run,) = catalog.runs()
        assert run.status == RunStatus.FINISHED and run.source == Source.WATCH
        assert run.model_name == "counting" and run.finished_at is not None
        snapshots = catalog.snapshots(run=run.id)
        assert sorted(s.path for s in snapshots) == sorted(
            run_dir.glob("instances/*/snapshots/*.pack")
        )
        assert min(s.recorded_at for s in snapshots) < run.finished_at, "recorded while running"
        written = resume_files(run_dir)
        workflows = catalog.workflow_snapshots(run.id)
        assert len(workflows) == len(written) > 1
        assert [w.resume_file for w in workflows] == written
        for workflow in workflows:
            assert workflow.resume_file is not None
            resume = parse_ymmsl(workflow.resume_file.read_text()).resume
            named = {i: f for i, f in workflow.members.items() if f is not None}
            assert named == {instance: str(path) for instance, path in resume.items()}
            assert set(workflow.members) == {"macro", "micro[0]", "micro[1]"}
