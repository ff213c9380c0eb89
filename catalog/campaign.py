"""Importing MUSCLE3 run directories into a catalog, and linking resumed runs to their origin.

A run directory MUSCLE3 wrote holds everything we need: ``configuration.ymmsl``
(the model, and a ``resume:`` section if the run was resumed),
``instances/<instance>/snapshots/<safe_id>_<n>.pack`` (one file per snapshot)
and ``snapshots/snapshot_*.ymmsl`` (the workflow snapshots the manager found).
Importing records one catalog row per ``.pack`` file and one workflow snapshot
per resume file, so that a campaign run before the catalog existed, or on a
machine without it, can be queried like one recorded live.

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
in the report's warnings.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import ymmsl

from catalog.catalog import Catalog, NewSnapshot, NewWorkflowSnapshot
from catalog.enums import Source
from catalog.errors import CatalogError, RunDirectoryError, SnapshotFileError
from catalog.message import Message
from catalog.naming import (
    CONFIGURATION_FILE,
    instance_sort_key,
    parse_pack_name,
    validate_instance,
)
from catalog.records import RunRecord
from catalog.snapshot import Snapshot
from catalog.store import load_pack
from catalog.topology import model_name

#: Called with (files handled so far, total files) while ``.pack`` files are read.
ProgressCallback = Callable[[int, int], None]

ORDER_NOTE = (
    "Snapshot order was reconstructed from file modification times (ties broken by instance, "
    "then file number): MUSCLE3 does not store the order in which its manager received them, "
    "so it can differ from the live order where instances saved at the same moment."
)

_RESUME_FILE_RE = re.compile(r"snapshot_(?P<stamp>\d{8}_\d{6})(?:_(?P<index>\d+))?\.ymmsl")


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

    @property
    def run_id(self) -> int:
        """The run's catalog id."""
        return self.run.id

    @property
    def run_name(self) -> str:
        """The run's name in the catalog (the directory name, or a disambiguated one)."""
        return self.run.name


@dataclass(frozen=True)
class _PackFile:
    """A ``.pack`` file found in a run directory, before it is read."""

    instance: str
    path: Path
    number: int
    mtime_ns: int


@dataclass(frozen=True)
class _YmmslDocument:
    """The parts of a yMMSL document the import needs, whatever the yMMSL version."""

    model_name: str | None
    description: str
    resume: dict[str, PurePath]


# --------------------------------------------------------------------------- public API


def import_run_directory(
    catalog: Catalog, run_dir: Path | str, *, progress: ProgressCallback | None = None
) -> ImportReport:
    """Record a MUSCLE3 run directory in a catalog: its snapshots, workflow snapshots and lineage.

    Args:
        catalog: The catalog to record into.
        run_dir: The run directory (the one given to ``muscle_manager --run-dir``).
        progress: Called with (files read, total files) while ``.pack`` files
            are read, so that a caller can show progress on large directories.

    Returns:
        What was recorded, what was already known, and any warnings.

    Raises:
        RunDirectoryError: ``run_dir`` is not a MUSCLE3 run directory.
    """
    directory = check_run_directory(run_dir)
    warnings: list[str] = []
    configuration_text, document = _read_configuration(directory, warnings)
    run = catalog.ensure_run(
        directory,
        name=_run_name(catalog, directory),
        model_name=document.model_name if document else None,
        configuration=configuration_text,
        source=Source.IMPORT,
    )
    report = ImportReport(run=run, run_dir=directory, warnings=warnings)
    instances = _import_snapshots(catalog, report, progress)
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
) -> list[ImportReport]:
    """Import several run directories, checking them all before importing any.

    Checking first means that a typo in the last directory does not leave a
    half-done campaign import behind.

    Args:
        catalog: The catalog to record into.
        dirs: The run directories, imported in this order.
        progress: Passed to :func:`import_run_directory` for each directory.

    Returns:
        One report per directory, in order.

    Raises:
        RunDirectoryError: One of the directories is not a run directory;
            nothing was imported then.
    """
    checked = [check_run_directory(d) for d in dirs]
    return [import_run_directory(catalog, d, progress=progress) for d in checked]


def check_run_directory(run_dir: Path | str) -> Path:
    """Check that a path is a MUSCLE3 run directory and return it absolute.

    Raises:
        RunDirectoryError: It does not exist, is not a directory, or has
            neither an ``instances/`` folder nor a ``configuration.ymmsl``.
    """
    directory = Path(os.path.abspath(run_dir))
    if not directory.exists():
        raise RunDirectoryError(
            f"Cannot import {directory}: no such directory. Pass the run directory MUSCLE3 "
            "wrote (the --run-dir of muscle_manager, holding configuration.ymmsl and instances/)."
        )
    if not directory.is_dir():
        raise RunDirectoryError(
            f"Cannot import {directory}: it is a file, not a directory. Pass the run directory "
            "MUSCLE3 wrote (holding configuration.ymmsl and instances/), not a file in it."
        )
    if not (directory / "instances").is_dir() and not (directory / CONFIGURATION_FILE).is_file():
        raise RunDirectoryError(
            f"Cannot import {directory}: it is not a MUSCLE3 run directory (it has neither an "
            f"instances/ folder nor {CONFIGURATION_FILE}). {_run_dirs_hint(directory)}"
        )
    return directory


def resolve_resume_path(path: PurePath | str, run_dir: Path) -> tuple[Path, bool]:
    """Where a snapshot named in a resume file is now, relocating it if the run moved.

    MUSCLE3 writes absolute paths (``/scratch/.../runs/x/instances/m/snapshots/m_1.pack``).
    If such a path does not exist, what follows its ``instances/`` component is
    re-rooted under ``run_dir``.

    Args:
        path: The path as written in the resume file.
        run_dir: The run directory the resume file belongs to (absolute).

    Returns:
        ``(path, relocated)``: the path to use and whether it was relocated.
    """
    original = Path(path)
    if original.is_absolute() and original.exists():
        return original, False
    if not original.is_absolute():
        return Path(os.path.abspath(run_dir / original)), False
    split = _split_at_instances(original)
    if split is None:
        return original, False
    return run_dir.joinpath("instances", *split[1]), True


def link_lineage(catalog: Catalog) -> list[RunRecord]:
    """Link every resumed run in the catalog to the run it was resumed from, where now possible.

    A run whose configuration has a ``resume:`` section was started from
    snapshots of another run. Once both are in the catalog, the resumed run's
    ``resumed_from_run_id`` is set. Runs are checked whatever order they were
    imported in, so importing the original after the resumed run links them too.

    Args:
        catalog: The catalog.

    Returns:
        The runs that were newly linked.
    """
    linked: list[RunRecord] = []
    runs = catalog.runs()
    for run in runs:
        if run.resumed_from_run_id is not None:
            continue
        origin = _resumed_from(catalog, run, runs)
        if origin is not None:
            catalog.set_run_lineage(run.id, origin.id)
            linked.append(catalog.run(run.id))
    return linked


# --------------------------------------------------------------------------- the run


def _run_dirs_hint(directory: Path) -> str:
    """Suggest the run directories inside a campaign directory given by mistake."""
    try:
        children = sorted(p for p in directory.iterdir() if (p / "instances").is_dir())
    except OSError:
        children = []
    if children:
        names = ", ".join(p.name for p in children[:5]) + (", ..." if len(children) > 5 else "")
        return f"It holds run directories ({names}): pass those instead."
    return "Pass the --run-dir of muscle_manager."


def _run_name(catalog: Catalog, directory: Path) -> str:
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


def _read_configuration(
    directory: Path, warnings: list[str]
) -> tuple[str | None, _YmmslDocument | None]:
    """The text of ``configuration.ymmsl`` and what it says, warning if it cannot be read."""
    path = directory / CONFIGURATION_FILE
    if not path.is_file():
        warnings.append(f"{path} is missing: the run is imported without its configuration.")
        return None, None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        warnings.append(f"Could not read {path}: {exc}. The run is imported without it.")
        return None, None
    try:
        return text, _parse_ymmsl(text)
    except ValueError as exc:
        warnings.append(
            f"{path} is not valid yMMSL ({exc}); its text is stored but the model name and "
            "resume section are unknown."
        )
        return text, None


# --------------------------------------------------------------------------- yMMSL


def _parse_ymmsl(text: str) -> _YmmslDocument:
    """Read the model name, description and resume section of a yMMSL document.

    Works on what ``ymmsl.load`` returns for yMMSL v0.1 (``model``) and v0.2
    (``root_model()``), looking attributes up defensively so that a newer
    ymmsl release with another class layout still gives what is there.

    Raises:
        ValueError: The text is not yMMSL, or its resume section names an
            invalid instance.
    """
    try:
        document = ymmsl.load(text)
    except Exception as exc:  # ymmsl raises yatiml, ruamel and its own errors
        raise ValueError(_one_line(exc)) from exc
    resume: dict[str, PurePath] = {}
    for instance, path in (getattr(document, "resume", None) or {}).items():
        try:
            resume[validate_instance(instance)] = PurePath(str(path))
        except CatalogError as exc:
            raise ValueError(str(exc)) from exc
    return _YmmslDocument(
        model_name=model_name(document),
        # ymmsl reads MUSCLE3's "|+" block with the blank line before "resume:";
        # MUSCLE3's description itself ends with exactly one newline.
        description=str(getattr(document, "description", None) or "").rstrip("\n") + "\n",
        resume=resume,
    )


def _table_instances(description: str) -> list[str]:
    """The instances listed in a resume file's description table (MUSCLE3 writes all of them)."""
    lines = description.splitlines()
    for index, line in enumerate(lines[:-1]):
        ruler = lines[index + 1].strip()
        if line.startswith("Instance") and ruler and set(ruler) == {"-"}:
            rows = itertools.takewhile(str.strip, lines[index + 2 :])
            return [name for row in rows if _is_instance(name := row.split()[0])]
    return []


def _is_instance(name: str) -> bool:
    try:
        validate_instance(name)
    except CatalogError:
        return False
    return True


# --------------------------------------------------------------------------- snapshots


def _import_snapshots(
    catalog: Catalog, report: ImportReport, progress: ProgressCallback | None
) -> list[str]:
    """Record the run's ``.pack`` files in recorded order; returns the instances found."""
    instances, files = _scan_instances(report.run_dir, report.warnings)
    ordered = _recorded_order(files)
    known = catalog.snapshot_ids([f.path for f in ordered])
    todo = [f for f in ordered if catalog.stored_path(f.path) not in known]
    report.snapshots_already_known = len(ordered) - len(todo)
    counter = _Progress(progress, total=len(ordered), done=len(ordered) - len(todo))
    items = _loaded_snapshots(todo, report.warnings, counter)
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


def _scan_instances(run_dir: Path, warnings: list[str]) -> tuple[list[str], list[_PackFile]]:
    """Every valid instance folder under ``instances/`` and the ``.pack`` files in them."""
    root = run_dir / "instances"
    if not root.is_dir():
        return [], []
    instances: list[str] = []
    files: list[_PackFile] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            instance = validate_instance(folder.name)
        except CatalogError:
            warnings.append(
                f"Skipped {folder}: {folder.name!r} is not a valid MUSCLE3 instance name, so "
                "it cannot be an instance folder MUSCLE3 wrote."
            )
            continue
        instances.append(instance)
        files.extend(_scan_packs(instance, folder / "snapshots", warnings))
    return sorted(instances, key=instance_sort_key), files


def _scan_packs(instance: str, folder: Path, warnings: list[str]) -> Iterator[_PackFile]:
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.pack")):
        parsed = parse_pack_name(path.name)
        if parsed is None or not path.is_file():
            warnings.append(
                f"Skipped {path}: not a MUSCLE3 snapshot file name (<instance>_<number>.pack)."
            )
            continue
        yield _PackFile(instance, path, parsed[1], path.stat().st_mtime_ns)


def _recorded_order(files: Sequence[_PackFile]) -> list[_PackFile]:
    """The order to record files in: by modification time, ties by instance, then number.

    Within one instance the file number always decides, because MUSCLE3's
    counter only goes up while modification times can be scrambled by a
    copy; the instances' sequences are then merged by modification time.
    """
    per_instance: dict[str, list[_PackFile]] = {}
    for item in files:
        per_instance.setdefault(item.instance, []).append(item)
    sequences = [sorted(items, key=lambda f: f.number) for items in per_instance.values()]

    def key(item: _PackFile) -> tuple[int, tuple[tuple[int, int | str], ...], int]:
        return item.mtime_ns, instance_sort_key(item.instance), item.number

    return list(heapq.merge(*sequences, key=key))


def _loaded_snapshots(
    files: Sequence[_PackFile],
    warnings: list[str],
    progress: _Progress,
) -> Iterator[NewSnapshot]:
    """Read each file lazily (the catalog records them in batches), skipping broken ones."""
    for item in files:
        try:
            found = load_pack(item.path)
        except SnapshotFileError as exc:
            warnings.append(f"Skipped {item.path}: {exc}. Nothing was recorded for it.")
        else:
            new = NewSnapshot(
                instance=item.instance,
                path=item.path,
                snapshot_filename=str(item.path),
                snapshot=_metadata_only(found.snapshot),
                size_bytes=found.size_bytes,
                sha256=found.sha256,
                sequence=item.number,
            )
            progress.loaded += 1
            yield new
        progress.step()


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
    known_files = {
        _abspath(w.resume_file) for w in catalog.workflow_snapshots(report.run.id) if w.resume_file
    }
    new: list[NewWorkflowSnapshot] = []
    for resume_file in resume_files(report.run_dir):
        if _abspath(resume_file) in known_files:
            report.workflow_snapshots_already_known += 1
            continue
        item = _workflow_snapshot(catalog, report, resume_file, instances)
        if item is not None:
            new.append(item)
    report.workflow_snapshots_added = len(catalog.record_workflow_snapshots(report.run.id, new))


def resume_files(run_dir: Path) -> list[Path]:
    """The run's ``snapshots/snapshot_*.ymmsl`` files in the order MUSCLE3 wrote them.

    MUSCLE3 names them by the second they were written, adding ``_1`` to
    ``_99`` for more in the same second, so ``_10`` must sort after ``_9``
    (plain name order would put it after ``_1``).
    """
    folder = run_dir / "snapshots"
    if not folder.is_dir():
        return []

    def key(path: Path) -> tuple[str, int, str]:
        match = _RESUME_FILE_RE.fullmatch(path.name)
        if match is None:
            return (path.stem, 0, path.name)
        return (match["stamp"], int(match["index"] or 0), path.name)

    return sorted((p for p in folder.glob("snapshot_*.ymmsl") if p.is_file()), key=key)


def _workflow_snapshot(
    catalog: Catalog,
    report: ImportReport,
    resume_file: Path,
    instances: Sequence[str],
) -> NewWorkflowSnapshot | None:
    """The workflow snapshot a resume file describes, or None (with a warning) if unusable."""
    try:
        document = _parse_ymmsl(resume_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        report.warnings.append(f"Skipped workflow snapshot {resume_file}: {_one_line(exc)}.")
        return None
    members: dict[str, int | None] = dict.fromkeys(
        [*instances, *_table_instances(document.description), *document.resume]
    )
    resolved = {
        instance: (written, *resolve_resume_path(written, report.run_dir))
        for instance, written in document.resume.items()
    }
    ids = catalog.snapshot_ids([path for _written, path, _relocated in resolved.values()])
    for instance, (written, path, relocated) in resolved.items():
        snapshot_id = ids.get(catalog.stored_path(path))
        if snapshot_id is None:
            report.warnings.append(
                f"Skipped workflow snapshot {resume_file}: {instance} resumes from {written}"
                + (f" (looked for {path})" if relocated else "")
                + ", which is not a recorded snapshot."
            )
            return None
        if relocated:
            report.relocated_paths += 1
            report.original_run_dir = report.original_run_dir or _original_run_dir(written)
        members[instance] = snapshot_id
    ordered = {name: members[name] for name in sorted(members, key=instance_sort_key)}
    return NewWorkflowSnapshot(
        members=ordered,
        description=document.description,
        resume_file=resume_file,
        source=Source.IMPORT,
    )


# --------------------------------------------------------------------------- lineage


def _resumed_from(catalog: Catalog, run: RunRecord, runs: Sequence[RunRecord]) -> RunRecord | None:
    """The run whose snapshots ``run``'s configuration resumes from, if it is in the catalog."""
    text = catalog.run_configuration(run.id)
    if not text or "resume" not in text:
        return None
    try:
        resume = _parse_ymmsl(text).resume
    except ValueError:
        return None
    moved_from = _original_location(run.run_dir)
    origins = {
        found
        for path in resume.values()
        if (found := _run_of(catalog, run, runs, path, moved_from)) is not None
    }
    if len(origins) != 1:
        return None
    origin_id = origins.pop()
    return next(r for r in runs if r.id == origin_id)


def _run_of(
    catalog: Catalog,
    run: RunRecord,
    runs: Sequence[RunRecord],
    written: PurePath,
    moved_from: PurePath | None,
) -> int | None:
    """The id of the run (other than ``run``) holding the snapshot a resume path names.

    The strongest evidence decides, and weaker guesses are not tried after it:

    1. The path exists: the snapshot is there (recorded or not).
    2. We know where ``run`` lived when MUSCLE3 wrote it (``moved_from``,
       say ``/scratch/c/resumed/x_resume``, now ``/data/resumed/x_resume``)
       and the path lies in the same tree (``/scratch/c/runs/x/...``): the
       tree moved as a whole, so the snapshot is at ``/data/runs/x/...``.
    3. Otherwise a sibling of ``run`` named like the original run directory,
       else the one run in the catalog with that name.

    Guessing by name only when nothing better is known matters because two
    runs of one campaign can share a directory name (``v0.7/mm_scalar`` and
    ``v0.11/mm_scalar``), with the same file names in them.
    """
    original = Path(written)
    if original.is_absolute() and original.exists():
        return _recorded_run(catalog, run, original)
    split = _split_at_instances(written)
    if split is None:
        return None
    old_dir, rest = split
    mapped = _map_moved(old_dir, moved_from, run.run_dir) if moved_from is not None else None
    if mapped is not None:
        return _recorded_run(catalog, run, mapped.joinpath("instances", *rest))
    sibling = run.run_dir.parent.joinpath(old_dir.name, "instances", *rest)
    found = _recorded_run(catalog, run, sibling)
    if found is not None:
        return found
    hits = {
        other.id
        for other in runs
        if other.id != run.id
        and other.run_dir.name == old_dir.name
        and _recorded_run(catalog, run, other.run_dir.joinpath("instances", *rest)) is not None
    }
    return hits.pop() if len(hits) == 1 else None


def _recorded_run(catalog: Catalog, run: RunRecord, path: Path) -> int | None:
    """The run (other than ``run``) that recorded ``path``, if any."""
    record = catalog.snapshot_by_path(path)
    return record.run_id if record is not None and record.run_id != run.id else None


def _map_moved(old: PurePath, moved_from: PurePath, now: Path) -> Path | None:
    """Apply the move ``moved_from`` -> ``now`` to the path ``old``, if it was under the same root.

    The common trailing part of ``moved_from`` and ``now`` (at least the run
    directory's name, when it was not renamed) is what moved; everything
    before it is the old and new root.
    """
    common = 0
    for old_part, new_part in zip(reversed(moved_from.parts), reversed(now.parts), strict=False):
        if old_part != new_part:
            break
        common += 1
    old_root = PurePath(*moved_from.parts[: len(moved_from.parts) - common])
    new_root = Path(*now.parts[: len(now.parts) - common])
    try:
        return new_root / old.relative_to(old_root)
    except ValueError:
        return None


def _original_location(run_dir: Path) -> PurePath | None:
    """Where a run lived when MUSCLE3 wrote it, from the first path in its resume files."""
    for resume_file in resume_files(run_dir):
        try:
            resume = _parse_ymmsl(resume_file.read_text(encoding="utf-8")).resume
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        for path in resume.values():
            found = _original_run_dir(path)
            if found is not None:
                return found
    return None


# --------------------------------------------------------------------------- helpers


def _split_at_instances(path: PurePath) -> tuple[PurePath, tuple[str, ...]] | None:
    """Split ``<run dir>/instances/<rest>`` into (run dir, rest), or None.

    MUSCLE3's layout is ``instances/<instance>/snapshots/<file>``, so an
    ``instances`` four parts from the end is preferred; a run directory whose
    own path contains ``instances`` then still splits at the right place.
    """
    parts = path.parts
    if len(parts) >= 4 and parts[-4] == "instances":
        index = len(parts) - 4
    else:
        matches = [i for i, part in enumerate(parts[:-1]) if part == "instances"]
        if not matches:
            return None
        index = matches[-1]
    return PurePath(*parts[:index]), tuple(parts[index + 1 :])


def _original_run_dir(path: PurePath) -> PurePath | None:
    split = _split_at_instances(path)
    return split[0] if split is not None else None


def _abspath(path: Path | str) -> str:
    return os.path.abspath(path)


def _same_path(a: Path, b: Path) -> bool:
    return _abspath(a) == _abspath(b)


def _first(values: Iterable[PurePath]) -> PurePath | None:
    return next(iter(values), None)


def _one_line(exc: BaseException) -> str:
    """An exception as one line (yMMSL parse errors span several)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
