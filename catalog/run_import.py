"""Importing MUSCLE3 run directories into a catalog: one row per ``.pack``, one per resume file.

A run directory MUSCLE3 wrote (see :mod:`catalog.run_dir` for its layout)
holds everything needed: the configuration, one ``.pack`` file per snapshot
and one ``snapshot_*.ymmsl`` resume file per workflow snapshot the manager
found. Importing records them, so that a campaign run before the catalog
existed, or on a machine without it, can be queried like one recorded live;
then :mod:`catalog.lineage` links resumed runs to the runs they came from.

Two things make this harder than reading files:

* MUSCLE3 writes absolute paths into the resume files. A run directory copied
  off a cluster still says ``/scratch/.../runs/<name>/instances/...``. Such a
  path is re-rooted at the ``instances/`` component under the directory being
  imported, and the report says how many were.
* The order in which the manager received the snapshots is not stored
  anywhere. We reconstruct it from file modification times (the "recorded
  order"), which can differ from the live order when instances saved at the
  same moment; the report says so.

Importing is idempotent: files and resume files already recorded are skipped,
so importing a directory again (say, after the run went on) only adds what is
new. A broken ``.pack`` file never aborts an import: it is left out and named
in the report's warnings. A file too large to decode (above the decode limit,
or beyond the memory available) is recorded from its metadata alone, with a
warning: the file's headers say where the data is, so the metadata is read
around it without decoding it.

The per-file steps (:func:`run_name`, :func:`read_configuration`,
:func:`pack_snapshot`, :func:`read_pack_file`, :func:`recorded_order`,
:func:`recorded_resume_files`, :func:`parse_resume_file`,
:func:`workflow_snapshot_from`) are public because
:mod:`catalog.watch` records the same files while MUSCLE3 is still writing
them: both must read a file into the same row, or a later import would not
recognise what watch recorded.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from sqlalchemy import select

from catalog.catalog import Catalog
from catalog.db.schema import SnapshotRow
from catalog.enums import Source
from catalog.errors import CatalogError, SnapshotFileError, SnapshotTooLargeError, YmmslLimitError
from catalog.lineage import link_lineage
from catalog.maintenance.relocate import relocate
from catalog.maintenance.verify import file_problem
from catalog.message import Message
from catalog.naming import instance_sort_key, validate_instance
from catalog.records import NewSnapshot, NewWorkflowSnapshot, RunRecord
from catalog.resume_file import read_plain_resume_document
from catalog.run_dir import (
    CONFIGURATION_FILE,
    PackFile,
    YmmslDocument,
    check_run_directory,
    one_line,
    original_run_dir,
    parse_ymmsl,
    read_ymmsl_file,
    resolve_resume_path,
    resume_files,
    scan_pack_files,
    table_instances,
)
from catalog.snapshot import Snapshot
from catalog.spill import ReplayReport, replay_spills
from catalog.store import DECODE_LIMIT_ENV, decode_limit, load_pack, load_pack_metadata

#: Called with (files handled so far, total files) while ``.pack`` files are read.
ProgressCallback = Callable[[int, int], None]

ORDER_NOTE = (
    "Snapshot order was reconstructed from file modification times (ties broken by instance, "
    "then file number): MUSCLE3 does not store the order in which its manager received them, "
    "so it can differ from the live order where instances saved at the same moment."
)


@dataclass
class ImportReport:
    """What importing one run directory did.

    Attributes:
        run: The run's record (refreshed after the import).
        run_dir: The directory imported, absolute.
        snapshots_added: ``.pack`` files newly recorded.
        snapshots_already_known: ``.pack`` files that were recorded before.
        workflow_snapshots_added: Resume files newly recorded as workflow snapshots.
        workflow_snapshots_already_known: Resume files recorded before.
        relocated_paths: Resume paths that did not exist and were resolved
            against the run directory.
        original_run_dir: Where the resume files say the run used to live,
            if any path had to be relocated.
        resumed_from: The run this run was resumed from, if it is in the catalog.
        newly_linked: Runs (this one or others imported before their origin)
            whose lineage this import made known.
        warnings: Problems: files left out and why.
        notes: Things worth knowing that are not problems.
        relocated_from: Where the run was recorded before, when this import
            found it moved (its old directory gone, its files here) and
            relocated it instead of adding a new run.
        replayed: The registry spill files replayed first (:mod:`catalog.spill`).
    """

    run: RunRecord
    run_dir: Path
    snapshots_added: int = 0
    snapshots_already_known: int = 0
    workflow_snapshots_added: int = 0
    workflow_snapshots_already_known: int = 0
    relocated_paths: int = 0
    original_run_dir: PurePath | None = None
    resumed_from: RunRecord | None = None
    newly_linked: list[RunRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    relocated_from: Path | None = None
    replayed: list[ReplayReport] = field(default_factory=list)

    @property
    def run_id(self) -> int:
        """The run's catalog id."""
        return self.run.id

    @property
    def run_name(self) -> str:
        """The run's name in the catalog (the directory name, or a disambiguated one)."""
        return self.run.name


def import_run_directory(
    catalog: Catalog,
    run_dir: Path | str,
    *,
    progress: ProgressCallback | None = None,
    decode_limit_bytes: int | None = None,
) -> ImportReport:
    """Record a MUSCLE3 run directory in a catalog: its snapshots, workflow snapshots and lineage.

    Args:
        catalog: The catalog to record into.
        run_dir: The run directory (the one given to ``muscle_manager --run-dir``).
        progress: Called with (files read, total files) while ``.pack`` files
            are read, so that a caller can show progress on large directories.
        decode_limit_bytes: ``.pack`` files larger than this are recorded
            from their metadata without decoding their data (with a warning);
            default ``MUSCLE_CATALOG_DECODE_LIMIT`` or 1 GiB. A file that does
            not fit in memory is recorded that way too.

    A spill file the run's snapshot registry left (the catalog was unavailable
    at its shutdown, see :mod:`catalog.spill`) is replayed first.

    Returns:
        What was recorded, what was already known, and any warnings.

    Raises:
        RunDirectoryError: ``run_dir`` is not a MUSCLE3 run directory.
        CatalogError: A spill file could not be replayed as the catalog is unavailable.
    """
    checked = check_run_directory(run_dir)
    recorded = catalog.recorded_run_dir(checked)
    directory = recorded if recorded is not None else Path(os.path.realpath(checked))
    relocated_from = _relocate_moved_run(catalog, directory) if recorded is None else None
    warnings: list[str] = []
    configuration_text, document = read_configuration(directory, warnings)
    run = catalog.ensure_run(
        directory,
        name=run_name(catalog, directory),
        model_name=document.model_name if document else None,
        configuration=configuration_text,
        source=Source.IMPORT,
    )
    report = ImportReport(
        run=run, run_dir=directory, warnings=warnings, relocated_from=relocated_from
    )
    if relocated_from is not None:
        report.notes.append(
            f"{directory} holds the files of run {run.name!r}, recorded at {relocated_from}, "
            "which no longer exists: the run was relocated here instead of being added again."
        )
    _replay_spill_files(catalog, report)
    limit = decode_limit() if decode_limit_bytes is None else decode_limit_bytes
    instances = _import_snapshots(catalog, report, progress, limit)
    _import_workflow_snapshots(catalog, report, instances)
    report.newly_linked = link_lineage(catalog)
    report.run = catalog.run(run.id)
    if report.run.resumed_from_run_id is not None:
        report.resumed_from = catalog.run(report.run.resumed_from_run_id)
    elif document is not None and document.resume:
        report.notes.append(
            "This run was resumed from snapshots that are not in the catalog (yet): "
            f"{_first(document.resume.values())}. Import that run and the lineage is linked."
        )
    return report


def import_run_directories(
    catalog: Catalog,
    dirs: Iterable[Path | str],
    progress: ProgressCallback | None = None,
    decode_limit_bytes: int | None = None,
) -> list[ImportReport]:
    """Import several run directories, checking them all before importing any.

    Checking first means that a typo in the last directory does not leave a
    half-done campaign import behind.

    Args:
        catalog: The catalog to record into.
        dirs: The run directories, imported in this order.
        progress: Passed to :func:`import_run_directory` for each directory.
        decode_limit_bytes: Passed to :func:`import_run_directory`.

    Returns:
        One report per directory, in order.

    Raises:
        RunDirectoryError: One of the directories is not a run directory;
            nothing was imported then.
    """
    checked = [check_run_directory(d) for d in dirs]
    return [
        import_run_directory(catalog, d, progress=progress, decode_limit_bytes=decode_limit_bytes)
        for d in checked
    ]


# --------------------------------------------------------------------------- the run


def _replay_spill_files(catalog: Catalog, report: ImportReport) -> None:
    """Record what the run's registry spilled, before the files, to keep its submission order."""
    report.replayed = replay_spills(catalog, [report.run_dir])
    for replayed in report.replayed:
        report.notes.append(replayed.summary() + ".")
        report.warnings.extend(replayed.not_replayed)


def _relocate_moved_run(catalog: Catalog, directory: Path) -> Path | None:
    """Relocate a recorded run whose directory is gone and whose files are all here.

    A run directory copied or moved off a cluster is the same run: recording
    it again would double its snapshots and break the lineage of the runs
    resumed from it. A run matches when its directory no longer exists and
    every one of its recorded files that is here (at least one) has the same
    size and sha256; sizes are compared first so that unrelated runs cost no
    hashing.

    Returns:
        The old directory of the run that was relocated, or None.
    """
    for run in catalog.runs():
        old = run.run_dir
        if old.exists() or not _same_files(catalog, run.id, old, directory):
            continue
        relocate(catalog, old, directory)
        return old
    return None


def _same_files(catalog: Catalog, run_id: int, old: Path, directory: Path) -> bool:
    query = select(SnapshotRow.path, SnapshotRow.size_bytes, SnapshotRow.sha256).where(
        SnapshotRow.run_id == run_id
    )
    with catalog.read_session() as session:
        rows = list(session.execute(query))
    here: list[tuple[Path, int | None, str | None]] = []
    for stored, size, digest in rows:
        path = catalog.resolve_path(stored)
        if not path.is_relative_to(old):
            continue
        moved = directory / path.relative_to(old)
        if moved.is_file():
            if size is not None and moved.stat().st_size != size:
                return False
            here.append((moved, size, digest))
    if not here:
        return False
    return all(file_problem(path, size, digest, quick=False) is None for path, size, digest in here)


def run_name(catalog: Catalog, directory: Path) -> str:
    """The directory's name, or ``name-2``, ``name-3``, ... if another run has taken it.

    Run names are how users pick runs on the command line, so two runs of one
    campaign (say ``v0.7/mm_scalar`` and ``v0.11/mm_scalar``) must not share
    one. Names and ids share that option (``--run 2``), so a directory named
    only by digits becomes ``run-2``: as ``2`` it would clash with run id 2.
    """
    runs = catalog.runs()
    for run in runs:
        if _same_path(run.run_dir, directory):
            return run.name
    taken = {run.name for run in runs}
    base = f"run-{directory.name}" if directory.name.isdigit() else directory.name
    name = base
    for counter in itertools.count(2):
        if name not in taken:
            break
        name = f"{base}-{counter}"
    return name


def read_configuration(
    directory: Path, warnings: list[str]
) -> tuple[str | None, YmmslDocument | None]:
    """The text of ``configuration.ymmsl`` and what it says, warning if it cannot be read."""
    path = directory / CONFIGURATION_FILE
    if not path.is_file():
        warnings.append(f"{path} is missing: the run is imported without its configuration.")
        return None, None
    try:
        text = read_ymmsl_file(path)
        document = parse_ymmsl(text, path)
    except YmmslLimitError as exc:
        # Not stored either: whatever reads the stored text later would refuse it again.
        warnings.append(f"{exc} The run is imported without its configuration.")
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        warnings.append(f"Could not read {path}: {exc}. The run is imported without it.")
        return None, None
    except ValueError as exc:
        warnings.append(
            f"{path} is not valid yMMSL ({exc}); its text is stored but the model name and "
            "resume section are unknown."
        )
        return text, None
    return text, document


# --------------------------------------------------------------------------- snapshots


def _import_snapshots(
    catalog: Catalog, report: ImportReport, progress: ProgressCallback | None, limit: int
) -> list[str]:
    """Record the run's ``.pack`` files in recorded order; returns the instances found."""
    instances, files = scan_pack_files(report.run_dir, report.warnings)
    ordered = recorded_order(files)
    known = catalog.snapshot_ids([f.path for f in ordered])
    # A first import knows none: no need to work out every file's stored path again.
    todo = [f for f in ordered if catalog.stored_path(f.path) not in known] if known else ordered
    report.snapshots_already_known = len(ordered) - len(todo)
    counter = _Progress(progress, total=len(ordered), done=len(ordered) - len(todo))
    items = _loaded_snapshots(todo, report.warnings, counter, limit)
    report.snapshots_added = catalog.record_snapshots(report.run.id, items)
    # Files recorded meanwhile (or under another run) are skipped by the catalog too.
    report.snapshots_already_known += counter.loaded - report.snapshots_added
    if report.snapshots_added:
        report.notes.append(ORDER_NOTE)
    return instances


class _Progress:
    """Counts files handled (and loaded) and reports them to the caller's callback."""

    def __init__(self, callback: ProgressCallback | None, *, total: int, done: int) -> None:
        self.callback = callback
        self.total = total
        self.done = done
        self.loaded = 0
        self.step(0)

    def step(self, count: int = 1) -> None:
        """Count ``count`` more files handled and tell the callback."""
        self.done += count
        if self.callback is not None:
            self.callback(self.done, self.total)


def recorded_order(files: Sequence[PackFile]) -> list[PackFile]:
    """The order to record files in: by modification time, ties by instance, then number.

    Within one instance the file number always decides, because MUSCLE3's
    counter only goes up while modification times can be scrambled by a
    copy; the instances' sequences are then merged by modification time.
    """
    per_instance: dict[str, list[PackFile]] = {}
    for item in files:
        per_instance.setdefault(item.instance, []).append(item)
    sequences = [sorted(items, key=lambda f: f.number) for items in per_instance.values()]

    def key(item: PackFile) -> tuple[int, tuple[tuple[int, int | str], ...], int]:
        return item.mtime_ns, instance_sort_key(item.instance), item.number

    return list(heapq.merge(*sequences, key=key))


def _loaded_snapshots(
    files: Sequence[PackFile],
    warnings: list[str],
    progress: _Progress,
    limit: int,
) -> Iterator[NewSnapshot]:
    """Read each file lazily (the catalog records them in batches), skipping broken ones."""
    for item in files:
        try:
            reading = read_pack_file(item, limit)
        except SnapshotFileError as exc:
            warnings.append(f"Skipped {item.path}: {exc}. Nothing was recorded for it.")
        else:
            if reading.problem is not None:
                warnings.append(reading.problem)
            progress.loaded += 1
            yield reading.snapshot
        progress.step()


@dataclass(frozen=True)
class PackReading:
    """What to record for one ``.pack`` file, and whether its data could be checked.

    Attributes:
        snapshot: What to record.
        data_decoded: False when the file was recorded from its metadata
            without decoding its message data (too large for the decode limit,
            or for the memory available).
        problem: Why the data was not decoded, as a sentence naming the file;
            None when it was.
    """

    snapshot: NewSnapshot
    data_decoded: bool = True
    problem: str | None = None


def read_pack_file(item: PackFile, limit: int | None = None) -> PackReading:
    """Read one ``.pack`` file for recording, decoding its data only if it fits.

    A catalog records only metadata, but a full decode is what proves the
    file is not corrupt, so files are decoded when they can be. A file larger
    than ``limit`` (or one that turns out not to fit in memory) is read from
    its metadata alone, at a cost that does not grow with its size, and still
    recorded: its size and sha256 let ``verify`` notice later changes.

    Args:
        item: The file.
        limit: Files larger than this many bytes are not decoded; default
            :func:`catalog.store.decode_limit` (``MUSCLE_CATALOG_DECODE_LIMIT``).

    Raises:
        SnapshotFileError: The file cannot be read, or even its metadata does
            not decode (yet: MUSCLE3 writes it in place, so a reader can see it
            half-written).
    """
    limit = decode_limit() if limit is None else limit
    try:
        size = item.path.stat().st_size
    except OSError as exc:
        raise SnapshotFileError(item.path, f"{exc.strerror or exc}") from exc
    problem: str | None = None
    if size > limit:
        found = load_pack_metadata(item.path)
        problem = (
            f"{item.path} is {size} bytes, more than the decode limit of {limit} bytes "
            f"({DECODE_LIMIT_ENV}): it was recorded from its metadata without decoding its "
            "message data, so damage to the data would go unnoticed. Raise the limit to check it."
        )
    else:
        try:
            found = load_pack(item.path)
        except SnapshotTooLargeError as exc:
            problem = f"{exc} It was recorded from its metadata alone."
        if problem is not None:
            # Outside the handler: the traceback would keep the file's bytes alive.
            found = load_pack_metadata(item.path)
    new = NewSnapshot(
        instance=item.instance,
        path=item.path,
        snapshot_filename=str(item.path),
        snapshot=_metadata_only(found.snapshot),
        size_bytes=found.size_bytes,
        sha256=found.sha256,
        sequence=item.number,
    )
    return PackReading(new, found.data_decoded, problem)


def pack_snapshot(item: PackFile) -> NewSnapshot:
    """What to record for one ``.pack`` file: its metadata, size and checksum, without its data.

    :func:`read_pack_file` with the default decode limit, for callers that
    need no word on whether the data was decoded.

    Raises:
        SnapshotFileError: The file cannot be read or does not decode (yet:
            MUSCLE3 writes it in place, so a reader can see it half-written).
    """
    return read_pack_file(item).snapshot


def _metadata_only(snapshot: Snapshot) -> Snapshot:
    """The snapshot without its data, so a batch of thousands does not hold every array."""
    message = snapshot.message
    light = None if message is None else Message(message.timestamp, message.next_timestamp)
    return dataclasses.replace(snapshot, message=light, communicator_state=None)


# --------------------------------------------------------------------------- workflow snapshots


def _import_workflow_snapshots(
    catalog: Catalog, report: ImportReport, instances: Sequence[str]
) -> None:
    """Record each ``snapshots/snapshot_*.ymmsl`` of the run as a workflow snapshot, in order."""
    known_files = recorded_resume_files(catalog, report.run.id)
    new: list[NewWorkflowSnapshot] = []
    for resume_file in resume_files(report.run_dir):
        if _abspath(resume_file) in known_files:
            report.workflow_snapshots_already_known += 1
            continue
        item = _workflow_snapshot(catalog, report, resume_file, instances)
        if item is not None:
            new.append(item)
    report.workflow_snapshots_added = len(catalog.record_workflow_snapshots(report.run.id, new))
    # Resume files whose member set was already recorded (by the registry, say).
    report.workflow_snapshots_already_known += len(new) - report.workflow_snapshots_added


def recorded_resume_files(catalog: Catalog, run_id: int) -> set[str]:
    """The resume files (absolute paths) a run's recorded workflow snapshots came from.

    Import and watch both skip these, which is what makes either one, run
    after the other, add nothing.
    """
    return {_abspath(w.resume_file) for w in catalog.workflow_snapshots(run_id) if w.resume_file}


def _workflow_snapshot(
    catalog: Catalog,
    report: ImportReport,
    resume_file: Path,
    instances: Sequence[str],
) -> NewWorkflowSnapshot | None:
    """The workflow snapshot a resume file describes, or None (with a warning) if unusable."""
    try:
        document = parse_resume_file(resume_file)
    except ValueError as exc:
        report.warnings.append(f"Skipped workflow snapshot {resume_file}: {exc}.")
        return None
    found = workflow_snapshot_from(catalog, report.run_dir, resume_file, document, instances)
    if found.problem is not None:
        report.warnings.append(found.problem)
        return None
    report.relocated_paths += len(found.relocated)
    for written in found.relocated:
        report.original_run_dir = report.original_run_dir or original_run_dir(written)
    return found.workflow_snapshot


def parse_resume_file(resume_file: Path) -> YmmslDocument:
    """Read a ``snapshot_*.ymmsl`` resume file.

    Raises:
        ValueError: It cannot be read or is not yMMSL (the message is one
            line): possibly because it is still being written.
    """
    try:
        text = read_ymmsl_file(resume_file)
        return _plain_resume_document(text) or parse_ymmsl(text, resume_file)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(one_line(exc)) from exc


def _plain_resume_document(text: str) -> YmmslDocument | None:
    """A resume file in MUSCLE3's own shape, read without ymmsl (see read_plain_resume_document).

    None when the text has another shape or names an instance that is not
    valid: ymmsl then reads it, and reports what is wrong in its own words.
    """
    plain = read_plain_resume_document(text)
    if plain is None:
        return None
    description, written = plain
    try:
        resume = {validate_instance(name): PurePath(path) for name, path in written.items()}
    except CatalogError:
        return None
    # A resume file has no model; ymmsl's reading gives no model name for it either.
    return YmmslDocument(model_name=None, description=description, resume=resume)


@dataclass(frozen=True)
class ResumeFileReading:
    """What a parsed resume file amounts to in a catalog.

    Attributes:
        workflow_snapshot: What to record, or None if it cannot be recorded.
        problem: Why not, as one sentence naming the file; None if it can.
        relocated: The snapshot paths, as written, that did not exist and
            were resolved against the run directory.
    """

    workflow_snapshot: NewWorkflowSnapshot | None
    problem: str | None = None
    relocated: tuple[PurePath, ...] = ()


def workflow_snapshot_from(
    catalog: Catalog,
    run_dir: Path,
    resume_file: Path,
    document: YmmslDocument,
    instances: Sequence[str],
    *,
    source: Source = Source.IMPORT,
) -> ResumeFileReading:
    """The workflow snapshot a resume file describes, with members as catalog snapshot ids.

    Its members are every instance of the run (``instances``, the description's
    table and the resume section); those in the resume section resume from the
    snapshot named there, the others restart. The member set is the workflow
    snapshot's identity, so whoever reads the file must compute it this way.

    Args:
        catalog: The catalog holding the run's snapshots.
        run_dir: The run directory (absolute), for relocating moved paths.
        resume_file: The file, recorded as the workflow snapshot's resume file.
        document: The file, parsed.
        instances: The run's instance folders.
        source: Who is recording it.

    Returns:
        The workflow snapshot, or the problem if a snapshot it names is not
        recorded (not a snapshot of this catalog, or not recorded yet).
    """
    members: dict[str, int | None] = dict.fromkeys(
        [*instances, *table_instances(document.description), *document.resume]
    )
    resolved = {
        instance: (written, *resolve_resume_path(written, run_dir))
        for instance, written in document.resume.items()
    }
    ids = catalog.snapshot_ids([path for _written, path, _relocated in resolved.values()])
    relocated: list[PurePath] = []
    for instance, (written, path, was_relocated) in resolved.items():
        snapshot_id = ids.get(catalog.stored_path(path))
        if snapshot_id is None:
            return ResumeFileReading(
                None,
                f"Skipped workflow snapshot {resume_file}: {instance} resumes from {written}"
                + (f" (looked for {path})" if was_relocated else "")
                + ", which is not a recorded snapshot.",
            )
        if was_relocated:
            relocated.append(written)
        members[instance] = snapshot_id
    ordered = {name: members[name] for name in sorted(members, key=instance_sort_key)}
    return ResumeFileReading(
        NewWorkflowSnapshot(
            members=ordered,
            description=document.description,
            resume_file=resume_file,
            source=source,
        ),
        relocated=tuple(relocated),
    )


# --------------------------------------------------------------------------- helpers


def _abspath(path: Path | str) -> str:
    return os.path.abspath(path)


def _same_path(a: Path, b: Path) -> bool:
    return _abspath(a) == _abspath(b)


def _first(values: Iterable[PurePath]) -> PurePath | None:
    return next(iter(values), None)
