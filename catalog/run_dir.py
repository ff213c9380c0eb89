"""MUSCLE3's run directory and its yMMSL files: where everything is, and what the files say.

This is the one place that knows MUSCLE3's layout; the instance side, the
registry, import, lineage and resume selection all ask it. A run directory
(the ``--run-dir`` of ``muscle_manager``) looks like this::

    <run dir>/
        configuration.ymmsl             the model as the manager ran it (with a
                                        resume: section if the run was resumed)
        muscle3_manager.log             the manager's log
        instances/
            <instance>/                 e.g. macro, micro[3]
                snapshots/
                    <safe_id>_<n>.pack  one file per snapshot (micro-3_2.pack)
        snapshots/
            snapshot_<YYYYmmdd_HHMMSS>[_<i>].ymmsl
                                        one resume file per workflow snapshot

MUSCLE3 writes absolute paths into resume files and configurations. A run
directory copied off a cluster still says ``/scratch/.../runs/<name>/instances/...``;
:func:`resolve_resume_path` and :func:`map_moved` find such files where they
are now.

yMMSL is read here too, for every version ymmsl 0.17 and 0.18 load (yMMSL v0.1
documents have ``model``, v0.2 documents ``root_model()``), with attributes
looked up defensively so that a newer ymmsl with another class layout still
gives what is there. ``ymmsl`` is imported where a document is parsed, not at
module import, because it is slow to import and most callers only need paths.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from catalog.errors import CatalogError, RunDirectoryError, YmmslLimitError
from catalog.naming import instance_sort_key, parse_pack_name, validate_instance

#: The file in a run directory where MUSCLE3's manager writes the run's configuration.
CONFIGURATION_FILE = "configuration.ymmsl"

#: The manager's log file in a run directory.
MANAGER_LOG = "muscle3_manager.log"

#: The folder of per-instance folders in a run directory.
INSTANCES_FOLDER = "instances"

#: The folder, in an instance's folder and in the run directory, that holds snapshots.
SNAPSHOTS_FOLDER = "snapshots"

_RESUME_FILE_RE = re.compile(r"snapshot_(?P<stamp>\d{8}_\d{6})(?:_(?P<index>\d+))?\.ymmsl")


# --------------------------------------------------------------------------- the layout


def instance_snapshot_folder(run_dir: Path, instance: str) -> Path:
    """Where MUSCLE3 has an instance save its ``.pack`` files."""
    return run_dir / INSTANCES_FOLDER / instance / SNAPSHOTS_FOLDER


def resume_file_folder(run_dir: Path) -> Path:
    """Where MUSCLE3's manager writes the run's ``snapshot_*.ymmsl`` resume files."""
    return run_dir / SNAPSHOTS_FOLDER


def run_dir_of(snapshot_directory: Path) -> Path | None:
    """The run directory of an instance's snapshot directory, if it has MUSCLE3's layout.

    Args:
        snapshot_directory: ``<run dir>/instances/<instance>/snapshots`` or anything else.

    Returns:
        ``<run dir>``, or None if the directory does not follow that layout.
    """
    if (
        snapshot_directory.name == SNAPSHOTS_FOLDER
        and snapshot_directory.parent.parent.name == INSTANCES_FOLDER
    ):
        return snapshot_directory.parent.parent.parent
    return None


def run_dir_of_resume_folder(folder: Path) -> Path:
    """The run directory of the folder the manager writes resume files to.

    MUSCLE3's manager gives its registry ``<run dir>/snapshots``; any other
    folder is taken as the run directory itself.
    """
    return folder.parent if folder.name == SNAPSHOTS_FOLDER else folder


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
    has_instances = (directory / INSTANCES_FOLDER).is_dir()
    if not has_instances and not (directory / CONFIGURATION_FILE).is_file():
        raise RunDirectoryError(
            f"Cannot import {directory}: it is not a MUSCLE3 run directory (it has neither an "
            f"instances/ folder nor {CONFIGURATION_FILE}). {_run_dirs_hint(directory)}"
        )
    return directory


def _run_dirs_hint(directory: Path) -> str:
    """Suggest the run directories inside a campaign directory given by mistake."""
    try:
        children = sorted(p for p in directory.iterdir() if (p / INSTANCES_FOLDER).is_dir())
    except OSError:
        children = []
    if children:
        names = ", ".join(p.name for p in children[:5]) + (", ..." if len(children) > 5 else "")
        return f"It holds run directories ({names}): pass those instead."
    return "Pass the --run-dir of muscle_manager."


@dataclass(frozen=True)
class PackFile:
    """A ``.pack`` file found in a run directory, before it is read.

    Attributes:
        instance: The instance whose folder it is in.
        path: The file.
        number: The number in its name (MUSCLE3's per-instance counter).
        mtime_ns: Its modification time.
    """

    instance: str
    path: Path
    number: int
    mtime_ns: int


def scan_pack_files(run_dir: Path, warnings: list[str]) -> tuple[list[str], list[PackFile]]:
    """Every valid instance folder under ``instances/`` and the ``.pack`` files in them.

    Folders whose name is not a valid instance name, and files not named
    ``<safe_id>_<n>.pack``, are left out with a warning: MUSCLE3 cannot have
    written them, and an invalid name must never become a catalog entry.

    Args:
        run_dir: The run directory.
        warnings: Receives a line per thing left out.

    Returns:
        The instances (in MUSCLE3's order) and their files.
    """
    root = run_dir / INSTANCES_FOLDER
    if not root.is_dir():
        return [], []
    instances: list[str] = []
    files: list[PackFile] = []
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
        files.extend(_scan_folder(instance, folder / SNAPSHOTS_FOLDER, warnings))
    return sorted(instances, key=instance_sort_key), files


def _scan_folder(instance: str, folder: Path, warnings: list[str]) -> Iterator[PackFile]:
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.pack")):
        parsed = parse_pack_name(path.name)
        if parsed is None or not path.is_file():
            warnings.append(
                f"Skipped {path}: not a MUSCLE3 snapshot file name (<instance>_<number>.pack)."
            )
            continue
        yield PackFile(instance, path, parsed[1], path.stat().st_mtime_ns)


def resume_files(run_dir: Path) -> list[Path]:
    """The run's ``snapshots/snapshot_*.ymmsl`` files in the order MUSCLE3 wrote them.

    MUSCLE3 names them by the second they were written, adding ``_1`` to
    ``_99`` for more in the same second, so ``_10`` must sort after ``_9``
    (plain name order would put it after ``_1``).
    """
    folder = resume_file_folder(run_dir)
    if not folder.is_dir():
        return []

    def key(path: Path) -> tuple[str, int, str]:
        match = _RESUME_FILE_RE.fullmatch(path.name)
        if match is None:
            return (path.stem, 0, path.name)
        return (match["stamp"], int(match["index"] or 0), path.name)

    return sorted((p for p in folder.glob("snapshot_*.ymmsl") if p.is_file()), key=key)


def read_configuration_text(run_dir: Path) -> str | None:
    """The run's ``configuration.ymmsl`` text (the manager writes it at start-up), if readable.

    None too for a file beyond the limits of :func:`check_ymmsl_limits` (over
    :data:`MAX_YMMSL_BYTES`, not read at all, or an alias bomb): it is neither
    parsed nor stored, as :func:`catalog.run_import.read_configuration` does.
    """
    path = run_dir / CONFIGURATION_FILE
    try:
        text = read_ymmsl_file(path)
        check_ymmsl_limits(text, path)
    except (OSError, UnicodeDecodeError, YmmslLimitError):
        return None
    return text


# --------------------------------------------------------------------------- moved runs


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
    split = split_at_instances(original)
    if split is None:
        return original, False
    return run_dir.joinpath(INSTANCES_FOLDER, *split[1]), True


def split_at_instances(path: PurePath) -> tuple[PurePath, tuple[str, ...]] | None:
    """Split ``<run dir>/instances/<rest>`` into (run dir, rest), or None.

    MUSCLE3's layout is ``instances/<instance>/snapshots/<file>``, so an
    ``instances`` four parts from the end is preferred; a run directory whose
    own path contains ``instances`` then still splits at the right place.
    """
    parts = path.parts
    if len(parts) >= 4 and parts[-4] == INSTANCES_FOLDER:
        index = len(parts) - 4
    else:
        matches = [i for i, part in enumerate(parts[:-1]) if part == INSTANCES_FOLDER]
        if not matches:
            return None
        index = matches[-1]
    return PurePath(*parts[:index]), tuple(parts[index + 1 :])


def original_run_dir(path: PurePath) -> PurePath | None:
    """The run directory a snapshot path was written under, or None if it has no ``instances/``."""
    split = split_at_instances(path)
    return split[0] if split is not None else None


def original_location(run_dir: Path) -> PurePath | None:
    """Where a run lived when MUSCLE3 wrote it, from the first path in its resume files."""
    for resume_file in resume_files(run_dir):
        try:
            resume = parse_ymmsl(read_ymmsl_file(resume_file), resume_file).resume
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        for path in resume.values():
            found = original_run_dir(path)
            if found is not None:
                return found
    return None


def map_moved(old: PurePath, moved_from: PurePath, now: Path) -> Path | None:
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


# --------------------------------------------------------------------------- yMMSL


@dataclass(frozen=True)
class YmmslDocument:
    """The parts of a yMMSL document the catalog needs, whatever the yMMSL version.

    Attributes:
        model_name: The model's name, None if the document has no model.
        description: Its description, ending in exactly one newline.
        resume: Its ``resume:`` section: instance -> snapshot file as written.
    """

    model_name: str | None
    description: str
    resume: dict[str, PurePath]


#: The largest yMMSL file read, in bytes (16 MiB). MUSCLE3 configurations and
#: resume files are a few kB; a larger file is not one of them, and parsing
#: it would hold a whole import, or an instance's save, for minutes.
MAX_YMMSL_BYTES = 16 * 1024 * 1024

#: How many nodes YAML aliases (``*name``) may add to a yMMSL document when
#: they are expanded. Anchors and aliases are legitimate (sharing settings),
#: but each alias stands for its anchor's whole subtree, and ymmsl's loader
#: walks every expanded copy: nine lines of nested aliases (the "billion
#: laughs" attack) stand for a billion nodes and hang the loader. Real
#: documents stay far below this.
MAX_ALIAS_NODES = 10_000


def read_ymmsl_file(path: Path) -> str:
    """A yMMSL file's text, refusing one over :data:`MAX_YMMSL_BYTES` before reading it.

    Raises:
        YmmslLimitError: The file is too large (also a ValueError).
        OSError, UnicodeDecodeError: It cannot be read as UTF-8 text.
    """
    size = path.stat().st_size
    if size > MAX_YMMSL_BYTES:
        raise _too_large(path, size)
    return path.read_text(encoding="utf-8")


def _too_large(source: object, size: int) -> YmmslLimitError:
    return YmmslLimitError(
        f"{source} is {size} bytes, more than the {MAX_YMMSL_BYTES} bytes (16 MiB) a yMMSL "
        "file may have, so it was not parsed: MUSCLE3 configurations and resume files are a "
        "few kB. Check that it is the right file."
    )


def check_ymmsl_limits(text: str, source: object = "the yMMSL text") -> None:
    """Refuse a yMMSL text that is too large or expands too far through aliases, before parsing.

    The alias check reads only PyYAML's event stream (the parser ymmsl's
    loader uses, without building anything), adding up how many nodes each
    anchor stands for, and stops at the first alias that takes the total
    past :data:`MAX_ALIAS_NODES`: a bomb is refused after reading a few
    hundred bytes. Texts without ``*`` have no aliases and are not scanned.

    Args:
        text: The document.
        source: The file (or what else the text is) for the message.

    Raises:
        YmmslLimitError: Too large, or too many nodes through aliases.
    """
    if len(text) * 4 > MAX_YMMSL_BYTES:  # only then can the UTF-8 size be over the limit
        size = len(text.encode("utf-8", errors="surrogatepass"))
        if size > MAX_YMMSL_BYTES:
            raise _too_large(source, size)
    if "*" not in text:
        return
    import yaml

    sizes: dict[str, int] = {}
    open_collections: list[list[Any]] = []  # [anchor, nodes so far]
    added = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                open_collections.append([event.anchor, 1])
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                anchor, nodes = open_collections.pop()
            elif isinstance(event, yaml.AliasEvent):
                anchor, nodes = None, sizes.get(str(event.anchor), 1)
                added += nodes
                if added > MAX_ALIAS_NODES:
                    raise YmmslLimitError(
                        f"{source} was refused: its YAML aliases (*{event.anchor} and the ones "
                        f"before it) expand to more than {MAX_ALIAS_NODES} nodes, which is "
                        'how a YAML bomb ("billion laughs") works, not how a MUSCLE3 '
                        "configuration looks. Write the repeated parts out, or use fewer aliases."
                    )
            elif isinstance(event, yaml.ScalarEvent):
                anchor, nodes = event.anchor, 1
            else:
                continue
            if anchor is not None:
                sizes[str(anchor)] = nodes
            if open_collections:
                open_collections[-1][1] += nodes
    except yaml.YAMLError:
        return  # not YAML: ymmsl's own loader says what is wrong, and it is linear in size


def load_ymmsl(text: str, source: object = "the yMMSL text") -> Any:
    """Load a yMMSL document as ``ymmsl.load`` does, with limits and one clear error type.

    The limits (:func:`check_ymmsl_limits`) are checked first; documents
    within them load exactly as ``ymmsl.load`` loads them.

    Args:
        text: The document.
        source: The file it was read from (or what else it is), for messages.

    Raises:
        ValueError: The text is not yMMSL; the message is one line.
        YmmslLimitError: (a ValueError) too large, or a YAML alias bomb; the
            message names ``source``.
    """
    check_ymmsl_limits(text, source)
    import ymmsl

    try:
        return ymmsl.load(text)
    except Exception as exc:  # ymmsl raises yatiml, ruamel and its own errors
        raise ValueError(one_line(exc)) from exc


def dump_ymmsl(configuration: Any) -> str | None:
    """A loaded configuration as yMMSL text, or None if ymmsl cannot write it."""
    import ymmsl

    try:
        text: str = ymmsl.dump(configuration)
    except Exception:  # the text is stored for information only
        return None
    return text


def parse_ymmsl(text: str, source: object = "the yMMSL text") -> YmmslDocument:
    """Read the model name, description and resume section of a yMMSL document.

    Args:
        text: The document.
        source: The file it was read from (or what else it is), for messages.

    Raises:
        ValueError: The text is not yMMSL, or its resume section names an
            invalid instance.
        YmmslLimitError: (a ValueError) see :func:`load_ymmsl`.
    """
    document = load_ymmsl(text, source)
    resume: dict[str, PurePath] = {}
    for instance, path in (getattr(document, "resume", None) or {}).items():
        try:
            resume[validate_instance(instance)] = PurePath(str(path))
        except CatalogError as exc:
            raise ValueError(str(exc)) from exc
    return YmmslDocument(
        model_name=model_name(document),
        # ymmsl reads MUSCLE3's "|+" block with the blank line before "resume:";
        # MUSCLE3's description itself ends with exactly one newline.
        description=str(getattr(document, "description", None) or "").rstrip("\n") + "\n",
        resume=resume,
    )


def model_name_of_text(text: str | None, source: object = "the yMMSL text") -> str | None:
    """The model's name in a configuration's text, or None if unknown or unreadable."""
    if text is None:
        return None
    try:
        return model_name(load_ymmsl(text, source))
    except ValueError:
        return None


class NoModelError(CatalogError):
    """A yMMSL document has no (single, usable) model: a settings or resume file, say."""


def root_model(configuration: Any) -> Any:
    """The model of a configuration: ``root_model()`` (yMMSL v0.2) or ``model`` (v0.1).

    Raises:
        NoModelError: The document has no model (a settings or resume file, say).
    """
    if hasattr(configuration, "root_model"):
        try:
            return configuration.root_model()
        except Exception as exc:  # ymmsl raises its own error types here
            raise NoModelError(f"The configuration has no usable model: {exc}") from exc
    model = getattr(configuration, "model", None)
    if model is None or not hasattr(model, "components"):
        raise NoModelError(
            "The configuration has no model: give the yMMSL file with the model and its "
            "conduits (the one passed to muscle_manager), not only settings or a resume file."
        )
    return model


def model_name(configuration: Any) -> str | None:
    """The model's name, or None if the document has no (single root) model to name."""
    try:
        return str(root_model(configuration).name)
    except NoModelError:
        return None


def table_instances(description: str) -> list[str]:
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


def one_line(exc: BaseException) -> str:
    """An exception as one line (yMMSL parse errors span several)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
