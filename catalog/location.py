"""Which catalog: the rules that turn "nothing given", a path or a URL into a database location.

A catalog is one campaign, and the runs of a campaign usually live side by
side under one directory. The instances' SnapshotManagers, the manager's
SnapshotRegistry and the command line therefore follow one rule, each from
its own directory (the run directory for instances and the registry, the
working directory for the command line), so that by default they all meet in
the same catalog:

1. a catalog given explicitly (``--catalog``, an argument), else
2. the ``MUSCLE_SNAPSHOT_CATALOG`` environment variable (a path or a
   SQLAlchemy URL), else
3. the nearest ``snapshot_catalog.sqlite`` in that directory or any directory
   above it (as git finds its repository), else
4. a new ``snapshot_catalog.sqlite`` in that directory, but only for those
   that record (instances, the registry, ``import`` and ``init``); commands
   that only read never create a catalog and say where they looked instead.

``muscle-catalog init CAMPAIGN_DIR`` puts the catalog at the top of a
campaign, so that every run below it finds it.

A plain path means a SQLite file; anything with ``://`` is a SQLAlchemy URL
(``postgresql+psycopg://user@host/campaign``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from catalog.run_dir import run_dir_of

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

#: Environment variable naming the catalog (a path or a SQLAlchemy URL).
CATALOG_ENV = "MUSCLE_SNAPSHOT_CATALOG"

#: File name of the default catalog in a directory (the working, run or snapshot directory).
DEFAULT_CATALOG_NAME = "snapshot_catalog.sqlite"


@dataclass(frozen=True)
class CatalogChoice:
    """Which catalog the rules chose, and why.

    Attributes:
        location: The path or URL to open.
        reason: How it was chosen, for messages: ``--catalog``,
            ``$MUSCLE_SNAPSHOT_CATALOG``, ``found`` (an existing file in the
            directory or above it) or ``new`` (none found; one would be created).
        searched: The directories looked in, nearest first (when searched).
    """

    location: str
    reason: str
    searched: tuple[Path, ...] = ()

    @property
    def found(self) -> bool:
        """Whether the catalog is one given or one that exists (not a new file)."""
        return self.reason != "new"

    def not_found_message(self) -> str:
        """What a command that only reads says when there is no catalog to read."""
        start = self.searched[0] if self.searched else Path.cwd()
        return (
            f"No catalog found: there is no {DEFAULT_CATALOG_NAME} in {start} or any "
            "directory above it. Create one with `muscle-catalog init` (or record runs "
            "into one with `muscle-catalog import RUN_DIR`), or name one with --catalog "
            f"or {CATALOG_ENV}."
        )


def find_catalog_above(directory: Path) -> tuple[Path | None, tuple[Path, ...]]:
    """The nearest ``snapshot_catalog.sqlite`` in ``directory`` or a directory above it.

    Returns:
        The file (or None) and the directories looked in, nearest first.
    """
    searched: list[Path] = []
    current = Path(os.path.abspath(directory))
    while True:
        searched.append(current)
        candidate = current / DEFAULT_CATALOG_NAME
        if candidate.is_file():
            return candidate, tuple(searched)
        if current.parent == current:
            return None, tuple(searched)
        current = current.parent


def choose_catalog(explicit: str | os.PathLike[str] | None, directory: Path) -> CatalogChoice:
    """Apply the rules of this module from ``directory``.

    Args:
        explicit: A catalog given by the user (``--catalog``, an argument), if any.
        directory: Where the caller works (run directory, working directory).

    Returns:
        The choice; when nothing exists it is a new file in ``directory``
        (``reason == "new"``), which only recording callers should create.
    """
    if explicit is not None and os.fspath(explicit):
        return CatalogChoice(os.fspath(explicit), "--catalog")
    from_env = os.environ.get(CATALOG_ENV)
    if from_env:
        return CatalogChoice(from_env, f"${CATALOG_ENV}")
    found, searched = find_catalog_above(directory)
    if found is not None:
        return CatalogChoice(str(found), "found", searched)
    new = Path(os.path.abspath(directory)) / DEFAULT_CATALOG_NAME
    return CatalogChoice(str(new), "new", searched)


def default_catalog_in(directory: Path) -> str:
    """The catalog a recording side uses from ``directory`` when none is given.

    ``$MUSCLE_SNAPSHOT_CATALOG``, else the nearest ``snapshot_catalog.sqlite``
    in ``directory`` or above it, else a new one in ``directory``.
    """
    return choose_catalog(None, directory).location


def catalog_for_snapshot_directory(snapshot_directory: Path) -> str:
    """Where an instance saving into ``snapshot_directory`` records its snapshots by default.

    The search starts in the run directory when the directory has MUSCLE3's
    layout (``<run dir>/instances/<instance>/snapshots``), else in the
    snapshot directory itself (see :func:`default_catalog_in`).
    """
    return default_catalog_in(run_dir_of(snapshot_directory) or snapshot_directory)


def to_url(path_or_url: str | os.PathLike[str]) -> URL:
    """Turn what a user gives (a file path or a SQLAlchemy URL) into a URL.

    Args:
        path_or_url: ``results/catalog.sqlite``, ``sqlite:///x.sqlite`` or
            ``postgresql+psycopg://user@host/db``.

    Returns:
        A SQLAlchemy URL; plain paths become absolute ``sqlite:///`` URLs so
        that the catalog does not depend on the working directory.
    """
    from sqlalchemy.engine import URL, make_url

    db_file = sqlite_path(path_or_url)
    if db_file is None:
        return make_url(os.fspath(path_or_url))
    return URL.create("sqlite", database=str(db_file))


def sqlite_path(path_or_url: str | os.PathLike[str]) -> Path | None:
    """The SQLite file a plain path names (absolute), or None for a URL.

    This is what :func:`to_url` makes of a path, without importing
    SQLAlchemy, for the instance side's light recorder.
    """
    text = os.fspath(path_or_url)
    if "://" in text:
        return None
    return Path(text).expanduser().absolute()


def stored_path(path: str | os.PathLike[str], root: Path | None) -> str:
    """How a catalog stores a path: relative to its root when below it, else absolute.

    Args:
        path: The path to store.
        root: The catalog's root (the directory of a SQLite catalog file),
            or None (PostgreSQL): paths are then stored absolute.

    Returns:
        ``/``-separated relative path, or the absolute path.
    """
    absolute = os.path.abspath(path)
    if root is not None:
        prefix = os.path.join(str(root), "")
        if absolute.startswith(prefix):
            return absolute[len(prefix) :].replace(os.sep, "/")
    return absolute


class PathsBelow:
    """:func:`stored_path` of file names relative to one directory, fast for plain names.

    The registry keys every submission by its stored path: thousands per
    second, each a name relative to the run directory. For a plain relative
    name (no ``.``, ``..`` or empty part, POSIX separators) the joined path
    is already normal, so its stored path is a fixed prefix plus the name;
    any other name goes through :func:`stored_path` itself.
    """

    def __init__(self, directory: str | os.PathLike[str], root: Path | None) -> None:
        """Prepare for names below ``directory`` in a catalog rooted at ``root``.

        Args:
            directory: The directory names are relative to (the run directory).
            root: The catalog's root, as for :func:`stored_path`.
        """
        self.directory = os.fspath(directory)
        self._root = root
        base = os.path.join(os.path.abspath(self.directory), "")
        self._prefix: str | None = None
        if os.sep == "/" and os.altsep is None:
            if root is None:
                self._prefix = base
            else:
                below = os.path.join(str(root), "")
                if base.startswith(below):
                    self._prefix = base[len(below) :]

    def join(self, name: str) -> str:
        """The name joined to the directory (an absolute name stays as it is)."""
        return os.path.join(self.directory, name)

    def stored(self, name: str) -> str:
        """``stored_path(self.join(name), root)``."""
        if self._prefix is not None and _plain_relative(name):
            return self._prefix + name
        return stored_path(self.join(name), self._root)


def _plain_relative(name: str) -> bool:
    """A relative POSIX name whose every part is a real name (not empty, ``.`` or ``..``)."""
    wrapped = f"/{name}/"  # every part between slashes, the first and last ones too
    return "//" not in wrapped and "/./" not in wrapped and "/../" not in wrapped


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for other backends and in-memory DBs."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def display_location(url: URL) -> str:
    """A catalog's name for messages: the file path, or the URL without its password."""
    db_file = sqlite_file(url)
    if db_file is not None:
        return str(db_file)
    return url.render_as_string(hide_password=True)
