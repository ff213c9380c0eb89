"""Which catalog: the rules that turn "nothing given", a path or a URL into a database location.

The instances' SnapshotManagers, the manager's SnapshotRegistry and the
command line each follow the same rule, from their own directory, so that by
default they meet in the same catalog:

1. a catalog given explicitly (``--catalog``, an argument), else
2. the ``MUSCLE_SNAPSHOT_CATALOG`` environment variable (a path or a
   SQLAlchemy URL), else
3. ``snapshot_catalog.sqlite`` in the directory that side works in: the run
   directory for instances and the registry, the working directory for the
   command line.

A plain path means a SQLite file; anything with ``://`` is a SQLAlchemy URL
(``postgresql+psycopg://user@host/campaign``).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from catalog.run_dir import run_dir_of

#: Environment variable naming the catalog (a path or a SQLAlchemy URL).
CATALOG_ENV = "MUSCLE_SNAPSHOT_CATALOG"

#: File name of the default catalog in a directory (the working, run or snapshot directory).
DEFAULT_CATALOG_NAME = "snapshot_catalog.sqlite"


def default_catalog_in(directory: Path) -> str:
    """The catalog when none is given: ``$MUSCLE_SNAPSHOT_CATALOG``, else one in ``directory``."""
    return os.environ.get(CATALOG_ENV) or str(directory / DEFAULT_CATALOG_NAME)


def catalog_for_snapshot_directory(snapshot_directory: Path) -> str:
    """Where an instance saving into ``snapshot_directory`` records its snapshots by default.

    The run directory's catalog when the directory has MUSCLE3's layout
    (``<run dir>/instances/<instance>/snapshots``), else one in the snapshot
    directory itself; ``$MUSCLE_SNAPSHOT_CATALOG`` overrides both.
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
    text = os.fspath(path_or_url)
    if "://" in text:
        return make_url(text)
    return URL.create("sqlite", database=str(Path(text).expanduser().absolute()))


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
