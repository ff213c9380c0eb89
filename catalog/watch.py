"""Watching run directories while plain MUSCLE3 runs them: snapshots enter the catalog as written.

``muscle_manager`` of any release (0.7 to 0.11) can run a simulation without
this package; :func:`watch_run_directories` polls its run directory and
records, within a poll interval or two, every ``.pack`` file the instances
write and every ``snapshots/snapshot_*.ymmsl`` resume file the manager writes
(as a workflow snapshot with source ``watch``). It reads each file exactly as
:mod:`catalog.run_import` does, with that module's functions, so the rows are
the same as importing the finished directory would give, and importing it
afterwards adds nothing.

Why polling: it needs no dependency, works the same on every platform and on
network filesystems (where inotify-style notification misses writes made on
other machines, the usual case for a cluster run watched from a login node),
and a run directory only gains files at the rate a simulation checkpoints.
Each poll lists the instance folders by name (``os.scandir``, no ``stat`` per
known file), so a directory of many thousands of files stays cheap to poll.

Half-written files are normal here. MUSCLE3 writes ``.pack`` files and resume
files in place under their final names, so a poll can see either cut short.
Neither is recorded nor warned about while that can still change: a ``.pack``
that does not decode, and a resume file that does not parse, lacks members its
own description lists, or names a ``.pack`` not recorded yet, are retried on
the next poll (a ``.pack`` only once its size or modification time changed).
Only when the run has ended, or at the timeout, is anything still unusable
reported, once, as a warning naming the file. Decoding is a sound test for a
``.pack``: msgpack cannot decode a prefix of a map. For a resume file it is
not (YAML cut at a line end is valid YAML with members missing), hence the
comparison with its description table, in which MUSCLE3 lists every instance.

The run ends when the manager log says so (see :class:`ManagerLog`). MUSCLE3's
manager logs the end before it drains its snapshot registry, which can still
write resume files afterwards, so watching goes on until nothing new has
appeared for ``settle`` seconds, then makes a final pass and records the
run's status. The timeout, a ``stop`` event, and SIGINT/SIGTERM (when called
from the main thread) stop it between transactions: every recording (a
batch of snapshots, the workflow snapshots of one poll, the run's status) is
one transaction, so a stop never leaves anything half-recorded.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePath
from types import FrameType

from catalog.catalog import Catalog
from catalog.enums import RunStatus, Source
from catalog.errors import CatalogError, RunDirectoryError, SnapshotFileError
from catalog.lineage import link_lineage
from catalog.naming import instance_sort_key, parse_pack_name, validate_instance
from catalog.records import NewSnapshot, NewWorkflowSnapshot, RunRecord
from catalog.run_dir import (
    CONFIGURATION_FILE,
    INSTANCES_FOLDER,
    MANAGER_LOG,
    PackFile,
    YmmslDocument,
    instance_snapshot_folder,
    original_run_dir,
    resume_files,
    table_instances,
)
from catalog.run_import import (
    pack_snapshot,
    parse_resume_file,
    read_configuration,
    recorded_order,
    recorded_resume_files,
    run_name,
    workflow_snapshot_from,
)

#: Seconds between polls: a snapshot is recorded within about this long of being written.
DEFAULT_INTERVAL = 1.0

#: Seconds without new files, after the log says the run ended, before the final pass.
DEFAULT_SETTLE = 2.0

#: ``.pack`` files per transaction, so a large backlog neither holds the write
#: lock for long nor delays a stop.
BATCH_SIZE = 500


class WatchOutcome(StrEnum):
    """Why watching a run stopped.

    ``finished`` and ``failed``: the manager log says the run ended so (the
    run's status is set to the same). ``timeout``: the time given ran out
    first. ``interrupted``: a stop was asked for (Ctrl-C, SIGTERM, the
    ``stop`` event). After a timeout or interrupt the run's status is left
    as it was, because nothing said how the run went.
    """

    FINISHED = "finished"
    FAILED = "failed"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class WatchProgress:
    """Where watching one run is, passed to the progress callback after every poll.

    Attributes:
        run_dir: The directory watched.
        run_name: The run's catalog name, None until it is a run directory.
        phase: ``waiting`` (not a run directory yet), ``running``, ``ending``
            (the log says it ended; waiting for the last files), or the
            :class:`WatchOutcome` once done.
        snapshots: Its ``.pack`` files in the catalog (recorded now or before).
        workflow_snapshots: Its resume files in the catalog (recorded now or before).
        pending: Files seen but not recordable yet (being written, most likely).
    """

    run_dir: Path
    run_name: str | None
    phase: str
    snapshots: int
    workflow_snapshots: int
    pending: int


#: Called with one :class:`WatchProgress` per run after every poll.
WatchProgressCallback = Callable[[Sequence[WatchProgress]], None]


@dataclass
class WatchReport:
    """What watching one run directory did.

    Attributes:
        run_dir: The directory watched, absolute.
        outcome: Why watching stopped.
        run: The run's record at the end; None if the directory never became
            a MUSCLE3 run directory.
        snapshots_added: ``.pack`` files recorded by watching.
        snapshots_already_known: ``.pack`` files that were recorded before.
        workflow_snapshots_added: Resume files recorded as workflow snapshots.
        workflow_snapshots_already_known: Resume files recorded before (or
            whose member set was: the registry, say, found it too).
        pending: Files still unrecorded when watching stopped.
        relocated_paths: Resume paths that did not exist and were resolved
            against the run directory (the manager wrote them on another
            machine or mount point).
        original_run_dir: Where the resume files say the run lives, if relocated.
        libmuscle_version: The manager's version, from its log (0.8 and later log it).
        resumed_from: The run this run was resumed from, if it is in the catalog.
        newly_linked: Runs whose lineage watching made known.
        warnings: Problems: files left out and why, each named once.
        notes: Things worth knowing that are not problems.
    """

    run_dir: Path
    outcome: WatchOutcome = WatchOutcome.INTERRUPTED
    run: RunRecord | None = None
    snapshots_added: int = 0
    snapshots_already_known: int = 0
    workflow_snapshots_added: int = 0
    workflow_snapshots_already_known: int = 0
    pending: list[Path] = field(default_factory=list)
    relocated_paths: int = 0
    original_run_dir: PurePath | None = None
    libmuscle_version: str | None = None
    resumed_from: RunRecord | None = None
    newly_linked: list[RunRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def run_name(self) -> str | None:
        """The run's catalog name, if it was recorded."""
        return self.run.name if self.run is not None else None

    @property
    def status(self) -> RunStatus | None:
        """The run's status in the catalog at the end, if it was recorded."""
        return self.run.status if self.run is not None else None


# --------------------------------------------------------------------------- the manager log

_LINE_RE = re.compile(
    r"muscle_manager\s+(?P<when>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:,\d+)?)\s+"
    r"(?P<level>[A-Z]+)\s+(?P<logger>[\w.]+): (?P<message>.*)"
)
_INSTANCE_MANAGER = "libmuscle.manager.instance_manager"
_CLEAN_END = "The simulation finished without error."
_PLANNED_RE = re.compile(r"Planned (?P<instance>\S+) on ")
_REGISTRATION_RE = re.compile(r"(?P<what>Registered|Deregistered) instance (?P<instance>\S+)$")
_VERSION_RE = re.compile(r"libmuscle version: (?P<version>\S+)")


class ManagerLog:
    """What ``muscle3_manager.log`` says about a run so far, read incrementally.

    MUSCLE3's ``InstanceManager.wait`` logs how the run ended (0.7.2 and later):
    ``The simulation finished without error.`` on a clean end, ERROR lines
    (``Instance <i> quit with exit code <n>``, ``The simulation was aborted.``,
    ...) otherwise; 0.7.0 and 0.7.1 log the errors (``quit with error <n>``)
    but nothing on a clean end. There, the run counts as ended when every
    instance the manager planned has deregistered, which is the last thing
    their logs show. Runs whose instances were started by hand have no
    planned instances; only the two end lines or a timeout end those.

    Attributes:
        path: The log file.
        version: The libmuscle version of the manager, if logged.
        finished_cleanly: The clean-end line was seen.
        failures: The messages of the ERROR lines of the instance manager.
        end_time: When the line that ended the run was logged (local time).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.version: str | None = None
        self.finished_cleanly = False
        self.failures: list[str] = []
        self.end_time: dt.datetime | None = None
        self._offset = 0
        self._end = 0
        self._planned: set[str] = set()
        self._registered: set[str] = set()
        self._deregistered: set[str] = set()

    @property
    def ended(self) -> RunStatus | None:
        """``finished`` or ``failed`` once the log says the run ended, else None."""
        if self.failures:
            return RunStatus.FAILED
        if self.finished_cleanly:
            return RunStatus.FINISHED
        if self._planned and self._planned <= self._deregistered:
            return RunStatus.FINISHED
        return None

    @property
    def says_how_it_ended(self) -> bool:
        """Whether one of MUSCLE3's end lines was logged (not only every instance leaving)."""
        return self.finished_cleanly or bool(self.failures)

    @property
    def instances_started(self) -> bool:
        """Whether the manager has got as far as planning or registering instances."""
        return bool(self._planned or self._registered)

    @property
    def failure_summary(self) -> list[str]:
        """The ERROR lines that say what failed, without the stderr excerpts around them."""
        return [
            message
            for message in self.failures
            if not message.startswith(("The last error output", "More output may be found"))
        ]

    def read(self) -> bool:
        """Read what was appended since the last call; returns whether there was anything.

        Only whole lines are taken in, except that a clean-end line still
        missing its newline counts: its text is complete.
        """
        try:
            with self.path.open("rb") as stream:
                stream.seek(self._offset)
                data = stream.read()
        except OSError:
            return False
        end = self._offset + len(data)
        grew, self._end = end != self._end, end
        whole, newline, tail = data.rpartition(b"\n")
        if newline:
            self._offset += len(whole) + 1
            for line in whole.decode("utf-8", errors="replace").split("\n"):
                self._take(line)
        partial = tail.decode("utf-8", errors="replace")
        if partial.endswith(_CLEAN_END) and _INSTANCE_MANAGER in partial:
            self._take(partial)
        return grew

    def _take(self, line: str) -> None:
        match = _LINE_RE.match(line)
        if match is None:
            return  # a continuation line (an instance's stderr) or an instance's own line
        when = _log_time(match["when"])
        message = match["message"].rstrip()
        if match["logger"] == "libmuscle.manager.manager" and self.version is None:
            found = _VERSION_RE.search(message)
            self.version = found["version"] if found else None
            return
        if match["logger"] == "libmuscle.manager.mmp_server":
            registration = _REGISTRATION_RE.search(message)
            if registration is None:
                return
            if registration["what"] == "Registered":
                self._registered.add(registration["instance"])
                return
            self._deregistered.add(registration["instance"])
            if self._planned and self._planned <= self._deregistered:
                self.end_time = self.end_time or when
            return
        if match["logger"] != _INSTANCE_MANAGER:
            return
        planned = _PLANNED_RE.match(message)
        if planned is not None:
            self._planned.add(planned["instance"])
        elif match["level"] == "ERROR":
            if not self.failures:
                self.end_time = when
            if message:
                self.failures.append(message)
        elif message == _CLEAN_END:
            self.finished_cleanly = True
            self.end_time = when

    def modified_seconds_ago(self) -> float:
        """How long ago the log was last written (infinite if it cannot be read)."""
        try:
            return max(time.time() - self.path.stat().st_mtime, 0.0)
        except OSError:
            return float("inf")


def _log_time(text: str) -> dt.datetime | None:
    """A log line's time: the manager logs local time without a zone, so local time it is."""
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").astimezone()
    except ValueError:
        return None


# --------------------------------------------------------------------------- resume files


def incomplete_resume_section(document: YmmslDocument) -> str | None:
    """Why a parsed resume file looks cut short, or None if its resume section is whole.

    MUSCLE3 lists every instance in the description's table and writes the
    ``resume:`` section last, one line per instance that does not restart
    (those the table's trigger list shows under ``Instance start``). A file
    cut at a line end still parses, with members missing, and would be a
    different workflow snapshot; this finds that. A MUSCLE3 resume file always
    resumes at least the instance whose snapshot completed it, so an empty
    section means the file was cut before it.
    """
    if not document.resume:
        return "its resume section is missing or empty"
    table = table_instances(document.description)
    restarting: set[str] = set()
    for line in document.description.splitlines():
        if line.startswith("- Instance start (") and line.endswith(")"):
            restarting.update(name.strip() for name in line[18:-1].split(","))
    missing = [name for name in table if name not in restarting and name not in document.resume]
    if missing:
        return f"its resume section lacks {', '.join(missing)}, which its description lists"
    return None


# --------------------------------------------------------------------------- one run


@dataclass
class _PendingPack:
    """A ``.pack`` file not recorded yet: why, and its size and time just before it was read.

    Taken before reading, a change made while it was read still differs from
    them, so it is retried even where modification times are coarse.
    """

    item: PackFile
    signature: tuple[int, int]
    problem: str


class _RunWatch:
    """The state of watching one run directory between polls."""

    def __init__(self, catalog: Catalog, directory: Path, now: float) -> None:
        self.catalog = catalog
        self.directory = directory
        self.report = WatchReport(run_dir=directory)
        self.log = ManagerLog(directory / MANAGER_LOG)
        self.run_id: int | None = None
        self.configuration: YmmslDocument | None = None
        self.configuration_recorded = False
        self.instances: set[str] = set()
        self.seen_packs: set[Path] = set()
        self.pending_packs: dict[Path, _PendingPack] = {}
        self.known_resume_files: set[str] = set()
        self.pending_resume_files: dict[Path, str] = {}
        self.scan_problems: dict[Path, str] = {}
        self.last_activity = now
        self.ended_seen: float | None = None
        self.done = False

    # -- the progress line --------------------------------------------------------------

    def progress(self) -> WatchProgress:
        """Where this run is, for the progress line."""
        if self.done:
            phase = str(self.report.outcome)
        elif self.run_id is None:
            phase = "waiting"
        else:
            phase = "ending" if self.ended_seen is not None else "running"
        report = self.report
        return WatchProgress(
            run_dir=self.directory,
            run_name=report.run_name,
            phase=phase,
            snapshots=report.snapshots_added + report.snapshots_already_known,
            workflow_snapshots=(
                report.workflow_snapshots_added + report.workflow_snapshots_already_known
            ),
            pending=len(self.pending_packs) + len(self.pending_resume_files),
        )

    # -- one poll -----------------------------------------------------------------------

    def poll(self, now: float, should_stop: Callable[[], bool], *, final: bool = False) -> None:
        """Record what is new (or, when ``final``, everything still recordable)."""
        if self.run_id is None:
            if not self._is_run_directory():
                return
            self._record_run()
        if self.log.read():
            self.last_activity = now
            self.report.libmuscle_version = self.log.version
        if should_stop():
            return
        self._record_configuration(final)
        if self._record_snapshots(should_stop, final=final):
            self.last_activity = now
        if should_stop():
            return
        if self._record_workflow_snapshots(final=final):
            self.last_activity = now

    def ready_to_finish(self, now: float, settle: float) -> bool:
        """Whether the log says the run ended and nothing new appeared for ``settle`` seconds.

        A log last written longer than ``settle`` ago belongs to a run that
        ended before watching began: its registry is long done.
        """
        if self.run_id is None or self.log.ended is None:
            return False
        if self.ended_seen is None:
            self.ended_seen = now
            if self.log.modified_seconds_ago() >= settle:
                return True
        return now - max(self.ended_seen, self.last_activity) >= settle

    def _is_run_directory(self) -> bool:
        directory = self.directory
        return (directory / INSTANCES_FOLDER).is_dir() or (directory / CONFIGURATION_FILE).is_file()

    def _record_run(self) -> None:
        # One run per real directory: the form a run was recorded under, else resolved.
        self.directory = self.catalog.canonical_run_dir(self.directory)
        run = self.catalog.ensure_run(
            self.directory,
            name=run_name(self.catalog, self.directory),
            source=Source.WATCH,
            status=RunStatus.RUNNING,
        )
        self.run_id = run.id
        self.report.run = run
        self.known_resume_files = recorded_resume_files(self.catalog, run.id)

    def _record_configuration(self, final: bool) -> None:
        """Record the configuration once the manager has finished writing it.

        The manager writes it before it starts any instance, so it is whole
        once the log shows instances or a ``.pack`` exists; a half-written
        one could parse with its last sections missing.
        """
        if self.configuration_recorded or self.run_id is None:
            return
        if not (final or self.log.instances_started or self.seen_packs or self.log.ended):
            return
        warnings: list[str] = []
        text, document = read_configuration(self.directory, warnings)
        if document is None and not final:
            return
        self.report.warnings.extend(warnings)
        self.configuration = document
        self.catalog.ensure_run(
            self.directory,
            name=run_name(self.catalog, self.directory),
            model_name=document.model_name if document else None,
            configuration=text,
            source=Source.WATCH,
            status=RunStatus.RUNNING,
        )
        self.configuration_recorded = True
        if document is not None and document.resume:
            self.report.newly_linked.extend(link_lineage(self.catalog))

    # -- .pack files --------------------------------------------------------------------

    def _record_snapshots(self, should_stop: Callable[[], bool], *, final: bool) -> bool:
        """Record new and now-complete ``.pack`` files; returns whether anything changed."""
        assert self.run_id is not None
        new = self._scan()
        changed = bool(new)
        known = self.catalog.snapshot_ids([item.path for item in new]) if new else {}
        candidates: list[PackFile] = []
        for item in new:
            self.seen_packs.add(item.path)
            if self.catalog.stored_path(item.path) in known:
                self.report.snapshots_already_known += 1
            else:
                candidates.append(item)
        for path, pending in list(self.pending_packs.items()):
            signature = _signature(path)
            if signature is None:  # gone: there is nothing left to record
                del self.pending_packs[path]
                self.seen_packs.discard(path)
                changed = True
            elif final or signature != pending.signature:
                candidates.append(pending.item)
                changed = True
        loaded: list[tuple[PackFile, tuple[int, int], NewSnapshot]] = []
        for item in recorded_order(candidates):
            signature = _signature(item.path) or (-1, -1)
            try:
                loaded.append((item, signature, pack_snapshot(item)))
            except SnapshotFileError as exc:
                problem = f"Skipped {item.path}: {exc}. Nothing was recorded for it."
                self.pending_packs[item.path] = _PendingPack(item, signature, problem)
            else:
                self.pending_packs.pop(item.path, None)
        for start in range(0, len(loaded), BATCH_SIZE):
            if should_stop() and not final:
                for item, signature, _new in loaded[start:]:
                    problem = f"{item.path} was not recorded: watching stopped."
                    self.pending_packs[item.path] = _PendingPack(item, signature, problem)
                break
            batch = [new for _item, _signature, new in loaded[start : start + BATCH_SIZE]]
            added = len(self.catalog.record_snapshot_batch(self.run_id, batch))
            self.report.snapshots_added += added
            self.report.snapshots_already_known += len(batch) - added
        return changed

    def _scan(self) -> list[PackFile]:
        """``.pack`` files not seen before, in valid instance folders, with MUSCLE3's names."""
        found: list[PackFile] = []
        for instance in self._instance_folders():
            folder = instance_snapshot_folder(self.directory, instance)
            try:
                entries = list(os.scandir(folder))
            except OSError:  # not created yet (MUSCLE3 makes it when the instance starts)
                continue
            for entry in entries:
                path = Path(entry.path)
                if not entry.name.endswith(".pack") or path in self.seen_packs:
                    continue
                parsed = parse_pack_name(entry.name)
                if parsed is None or not entry.is_file():
                    self.scan_problems.setdefault(
                        path,
                        f"Skipped {path}: not a MUSCLE3 snapshot file name "
                        "(<instance>_<number>.pack).",
                    )
                    continue
                try:
                    mtime_ns = entry.stat().st_mtime_ns
                except OSError:
                    continue
                found.append(PackFile(instance, path, parsed[1], mtime_ns))
        return found

    def _instance_folders(self) -> list[str]:
        root = self.directory / INSTANCES_FOLDER
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name)
        except OSError:
            return []
        for entry in entries:
            if entry.name in self.instances or not entry.is_dir():
                continue
            try:
                self.instances.add(validate_instance(entry.name))
            except CatalogError:
                self.scan_problems.setdefault(
                    Path(entry.path),
                    f"Skipped {entry.path}: {entry.name!r} is not a valid MUSCLE3 instance name, "
                    "so it cannot be an instance folder MUSCLE3 wrote.",
                )
        return sorted(self.instances, key=instance_sort_key)

    # -- resume files -------------------------------------------------------------------

    def _record_workflow_snapshots(self, *, final: bool) -> bool:
        """Record the resume files that are whole and name recorded snapshots, in written order."""
        assert self.run_id is not None
        ready: list[NewWorkflowSnapshot] = []
        changed = False
        instances = sorted(self.instances, key=instance_sort_key)
        for resume_file in resume_files(self.directory):
            key = os.path.abspath(resume_file)
            if key in self.known_resume_files:
                continue
            changed = changed or resume_file not in self.pending_resume_files
            try:
                document = parse_resume_file(resume_file)
            except ValueError as exc:
                self.pending_resume_files[resume_file] = (
                    f"Skipped workflow snapshot {resume_file}: {exc}."
                )
                continue
            cut_short = incomplete_resume_section(document)
            if cut_short is not None:
                self.pending_resume_files[resume_file] = (
                    f"Skipped workflow snapshot {resume_file}: {cut_short}; "
                    "the file looks cut short."
                )
                continue
            found = workflow_snapshot_from(
                self.catalog, self.directory, resume_file, document, instances, source=Source.WATCH
            )
            if found.workflow_snapshot is None:
                self.pending_resume_files[resume_file] = found.problem or str(resume_file)
                continue
            self.report.relocated_paths += len(found.relocated)
            for written in found.relocated:
                self.report.original_run_dir = self.report.original_run_dir or original_run_dir(
                    written
                )
            ready.append(found.workflow_snapshot)
        if ready:
            added = len(self.catalog.record_workflow_snapshots(self.run_id, ready))
            self.report.workflow_snapshots_added += added
            self.report.workflow_snapshots_already_known += len(ready) - added
            for item in ready:
                assert item.resume_file is not None
                self.known_resume_files.add(os.path.abspath(item.resume_file))
                self.pending_resume_files.pop(item.resume_file, None)
            changed = True
        return changed

    # -- the end ------------------------------------------------------------------------

    def finish(
        self, outcome: WatchOutcome | None, now: float, should_stop: Callable[[], bool]
    ) -> None:
        """Stop watching: a final pass, the warnings, the run's status and lineage.

        Args:
            outcome: Why; None when the log says the run ended, which the
                final pass reads once more (an ERROR line can follow the
                last deregistration).
            now: The monotonic time.
            should_stop: Whether a stop was asked for.

        An interrupted watch skips the final pass (it was asked to stop) and
        lists what is pending instead of warning: those files may well be
        whole by now.
        """
        self.done = True
        if outcome != WatchOutcome.INTERRUPTED:
            self.poll(now, should_stop, final=True)
        if outcome is None:
            failed = self.log.ended == RunStatus.FAILED
            outcome = WatchOutcome.FAILED if failed else WatchOutcome.FINISHED
        self.report.outcome = outcome
        pending = [*self.pending_packs, *self.pending_resume_files]
        self.report.pending = pending
        if outcome == WatchOutcome.INTERRUPTED:
            if pending:
                self.report.notes.append(
                    f"Stopped with {len(pending)} files not recorded yet; watch or import the "
                    "directory again to record them."
                )
        else:
            self.report.warnings.extend(item.problem for item in self.pending_packs.values())
            self.report.warnings.extend(self.pending_resume_files.values())
        self.report.warnings.extend(self.scan_problems.values())
        if self.run_id is None:
            self._never_a_run(outcome)
            return
        if outcome in (WatchOutcome.FINISHED, WatchOutcome.FAILED):
            status = RunStatus.FINISHED if outcome == WatchOutcome.FINISHED else RunStatus.FAILED
            self.catalog.set_run_status(self.run_id, status, when=self.log.end_time)
            self._explain_end(outcome)
        self.report.newly_linked.extend(link_lineage(self.catalog))
        run = self.catalog.run(self.run_id)
        self.report.run = run
        if run.resumed_from_run_id is not None:
            self.report.resumed_from = self.catalog.run(run.resumed_from_run_id)
        elif self.configuration is not None and self.configuration.resume:
            first = next(iter(self.configuration.resume.values()))
            self.report.notes.append(
                "This run was resumed from snapshots that are not in the catalog (yet): "
                f"{first}. Import that run and the lineage is linked."
            )

    def _explain_end(self, outcome: WatchOutcome) -> None:
        if outcome == WatchOutcome.FAILED:
            self.report.notes.append(
                "The manager log reports a failure: "
                + "; ".join(self.log.failure_summary[:3] or self.log.failures[:1])
                + "."
            )
        elif not self.log.says_how_it_ended:
            self.report.notes.append(
                "The manager log does not say how the run ended (MUSCLE3 0.7.0 and 0.7.1 log "
                "nothing on a clean end); every instance deregistered and no error was logged, "
                "so it is recorded as finished."
            )

    def _never_a_run(self, outcome: WatchOutcome) -> None:
        if outcome == WatchOutcome.TIMEOUT:
            self.report.warnings.append(
                f"{self.directory} never became a MUSCLE3 run directory (no {INSTANCES_FOLDER}/ "
                f"or {CONFIGURATION_FILE} appeared): nothing was recorded. Is it the --run-dir "
                "given to muscle_manager?"
            )


def _signature(path: Path) -> tuple[int, int] | None:
    """A file's modification time and size, or None if it is gone."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size


# --------------------------------------------------------------------------- all runs


def check_watch_directory(run_dir: Path | str) -> Path:
    """Check that a path can be watched and return it absolute.

    A run directory need not exist yet, so that a job script can start
    watching before it creates the ``--run-dir`` and starts ``muscle_manager``.
    Its parent must exist, though (a typo is then caught), and a directory
    holding run directories (a campaign directory, given by mistake) is
    refused with their names.

    Raises:
        RunDirectoryError: It cannot become a run directory.
    """
    directory = Path(os.path.abspath(run_dir))
    if directory.exists() and not directory.is_dir():
        raise RunDirectoryError(
            f"Cannot watch {directory}: it is a file, not a directory. Pass the --run-dir of "
            "muscle_manager."
        )
    if not directory.exists():
        if not directory.parent.is_dir():
            raise RunDirectoryError(
                f"Cannot watch {directory}: neither it nor its parent directory exists. Pass the "
                "--run-dir of muscle_manager (it may be created after watching starts)."
            )
        return directory
    if not (directory / INSTANCES_FOLDER).is_dir():
        try:
            runs = sorted(p.name for p in directory.iterdir() if (p / INSTANCES_FOLDER).is_dir())
        except OSError:
            runs = []
        if runs:
            names = ", ".join(runs[:5]) + (", ..." if len(runs) > 5 else "")
            raise RunDirectoryError(
                f"Cannot watch {directory}: it holds run directories ({names}), it is not one. "
                "Pass those instead."
            )
    return directory


def watch_run_directories(
    catalog: Catalog,
    run_dirs: Iterable[Path | str],
    *,
    interval: float = DEFAULT_INTERVAL,
    timeout: float | None = None,
    settle: float = DEFAULT_SETTLE,
    progress: WatchProgressCallback | None = None,
    stop: threading.Event | None = None,
    handle_signals: bool = True,
) -> list[WatchReport]:
    """Record run directories' snapshots and workflow snapshots while MUSCLE3 writes them.

    Returns once every run has ended (its manager log says so), at the
    timeout, or when asked to stop; see the module documentation for how
    half-written files and the end of a run are handled.

    Args:
        catalog: The catalog to record into.
        run_dirs: The ``--run-dir`` of each ``muscle_manager`` to watch; they
            may not exist yet.
        interval: Seconds between polls.
        timeout: Stop after this many seconds (a final pass still records
            what it can); None waits for the runs to end.
        settle: Seconds without anything new, after a run's log says it
            ended, before its final pass (the manager writes its last resume
            files after logging the end).
        progress: Called after every poll with each run's progress.
        stop: Set it (from another thread) to stop between transactions.
        handle_signals: When called from the main thread, make SIGINT
            (Ctrl-C) and SIGTERM stop watching cleanly instead of raising
            mid-poll; a second Ctrl-C raises KeyboardInterrupt at once.

    Returns:
        One report per directory, in the order given.

    Raises:
        RunDirectoryError: A directory cannot be watched; nothing was recorded.
        ValueError: ``interval`` or ``timeout`` is not positive, or ``settle``
            is negative.
    """
    directories = list(dict.fromkeys(check_watch_directory(d) for d in run_dirs))
    if interval <= 0 or (timeout is not None and timeout <= 0) or settle < 0:
        raise ValueError(
            f"interval ({interval}) and timeout ({timeout}) must be positive and settle "
            f"({settle}) not negative"
        )
    stop = stop if stop is not None else threading.Event()
    should_stop = stop.is_set
    start = time.monotonic()
    deadline = start + timeout if timeout is not None else None
    watches = [_RunWatch(catalog, directory, start) for directory in directories]
    with _stop_on_signals(stop, enabled=handle_signals):
        while True:
            now = time.monotonic()
            for watch in watches:
                if watch.done or should_stop():
                    continue
                watch.poll(now, should_stop)
                if not should_stop() and watch.ready_to_finish(time.monotonic(), settle):
                    watch.finish(None, time.monotonic(), should_stop)
            active = [w for w in watches if not w.done]
            if active and should_stop():
                for watch in active:
                    watch.finish(WatchOutcome.INTERRUPTED, time.monotonic(), should_stop)
            elif active and deadline is not None and time.monotonic() >= deadline:
                for watch in active:  # a run that ended while settling still gets its status
                    ended = watch.log.ended is not None and watch.run_id is not None
                    outcome = None if ended else WatchOutcome.TIMEOUT
                    watch.finish(outcome, time.monotonic(), should_stop)
            if progress is not None:
                progress([w.progress() for w in watches])
            if all(w.done for w in watches):
                break
            wait = interval if deadline is None else min(interval, deadline - time.monotonic())
            stop.wait(max(wait, 0.0))
    return [w.report for w in watches]


@contextmanager
def _stop_on_signals(stop: threading.Event, *, enabled: bool) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into setting ``stop`` while watching (main thread only).

    Python raises KeyboardInterrupt wherever the main thread is, which could
    be between a commit and the bookkeeping after it; a flag checked between
    transactions stops cleanly instead. A second Ctrl-C is for when that is
    not fast enough.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
