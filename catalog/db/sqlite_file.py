"""What a SQLite catalog file is, found out without writing a byte, and how to read it read-only.

Opening a file as a catalog must not change it before we know it is one:
SQLite's ``sqlite3.connect`` creates a missing file, and switching the
journal mode to WAL rewrites the header of someone else's database. So
:class:`catalog.catalog.Catalog` first looks at the file with
:func:`probe_sqlite_file` (read, never written)
and only then decides to create, open, open read-only, or refuse.

Reading a WAL database needs its ``-shm`` file (shared memory between
readers and the writer). A reader that may not create it (a read-only
directory or mount) can still read the file when it is *immutable*: SQLite
then neither locks nor looks for a ``-wal`` file. That is only right when no
process can be writing, which a read-only directory without ``-shm`` and
``-wal`` files guarantees (a writer would have created them), so
:func:`read_only_uri` asks for it only then.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from catalog.errors import (
    CatalogError,
    CatalogNotFoundError,
    CatalogReadOnlyError,
    NotACatalogError,
)
from catalog.faults import PERMISSION_DENIED, READ_ONLY_FS, on_read_only_fs
from catalog.location import CATALOG_ENV

#: Tables every catalog has; a database with none of them is not a catalog.
CATALOG_TABLES = frozenset({"runs", "snapshots", "workflow_snapshots"})

#: Offset of the "file format read version" byte in a SQLite header: 2 means WAL.
_HEADER_READ_VERSION = 18


@dataclass(frozen=True)
class SqliteFileState:
    """What a SQLite catalog file holds, seen without changing it.

    Attributes:
        path: The file.
        exists: Whether it exists.
        writable: Whether this process may write it: the file and its
            directory are writable and not on a read-only mount.
        kind: ``missing``, ``empty`` (no bytes or no tables: a catalog to be),
            ``catalog`` (our tables), ``foreign`` (other tables) or
            ``not-sqlite`` (not a SQLite database at all).
        tables: The tables it holds.
    """

    path: Path
    exists: bool
    writable: bool
    kind: str
    tables: frozenset[str] = frozenset()


def probe_sqlite_file(path: Path) -> SqliteFileState:
    """Look at a catalog file without creating or changing it.

    Args:
        path: The file (absolute).

    Returns:
        What it is; a file SQLite cannot open at all counts as ``not-sqlite``.
    """
    if not path.exists():
        return SqliteFileState(path, exists=False, writable=is_writable(path), kind="missing")
    writable = is_writable(path)
    if path.stat().st_size == 0:
        return SqliteFileState(path, exists=True, writable=writable, kind="empty")
    try:
        connection = sqlite3.connect(reading_uri(path), uri=True)
        try:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = frozenset(str(row[0]) for row in rows)
        finally:
            connection.close()
    except sqlite3.OperationalError:
        raise  # a database that cannot be read now (disk full, locked, I/O): not "not SQLite"
    except sqlite3.DatabaseError:
        return SqliteFileState(path, exists=True, writable=writable, kind="not-sqlite")
    if not tables:
        kind = "empty"
    elif tables & CATALOG_TABLES:
        kind = "catalog"
    else:
        kind = "foreign"
    return SqliteFileState(path, exists=True, writable=writable, kind=kind, tables=tables)


def is_writable(path: Path) -> bool:
    """Whether this process may write ``path`` (and the journal files beside it).

    ``os.access`` alone is not enough: it says yes to root on any file, and
    a read-only mount is only seen through ``statvfs``.
    """
    return directory_writable(path.parent) and (not path.exists() or os.access(path, os.W_OK))


def directory_writable(directory: Path) -> bool:
    """Whether files can be created in ``directory`` (also when mounted read-only, or as root)."""
    if not directory.is_dir() or on_read_only_fs(directory):
        return False
    return os.access(directory, os.W_OK | os.X_OK)


def read_only_cause(path: Path) -> str:
    """Why ``path`` cannot be written, in the words an error message needs."""
    if not path.parent.is_dir():
        return f"its directory {path.parent} cannot be reached"
    if on_read_only_fs(path.parent):
        return READ_ONLY_FS
    if not is_writable(path):
        return PERMISSION_DENIED
    return "opened read-only on purpose"


def is_wal(path: Path) -> bool:
    """Whether the file's header says it is in WAL mode (read from the header, not SQLite)."""
    try:
        with path.open("rb") as handle:
            header = handle.read(_HEADER_READ_VERSION + 1)
    except OSError:
        return False
    return len(header) > _HEADER_READ_VERSION and header[_HEADER_READ_VERSION] == 2


def reading_uri(path: Path) -> str:
    """The SQLite URI to read ``path`` with and leave no file behind.

    A file this process may write is opened read-write (never creating it),
    though only read: SQLite then removes the ``-wal`` and ``-shm`` files a
    WAL database needs when the connection closes, which a ``mode=ro``
    connection cannot do. Other files get :func:`read_only_uri`.
    """
    return f"{path.absolute().as_uri()}?mode=rw" if is_writable(path) else read_only_uri(path)


def read_only_uri(path: Path) -> str:
    """The SQLite URI that reads ``path`` without writing it (``mode=ro``, immutable if need be).

    A WAL database whose ``-shm`` file is missing and cannot be created (the
    directory is not writable) can only be read as immutable; no process
    can be writing it then, since a writer would have made the file.
    """
    uri = f"file:{quote(str(path.absolute()))}?mode=ro"
    shm = path.with_name(path.name + "-shm")
    if is_wal(path) and not shm.exists() and not directory_writable(path.parent):
        uri += "&immutable=1"
    return uri


def check_sqlite_file(path: Path, *, create: bool, read_only: bool) -> bool:
    """Decide how to open a SQLite catalog file, refusing what must not be opened.

    Nothing is created or changed here: a missing file is only created later,
    by the engine, when ``create`` is True; a file with other tables is
    refused as it is.

    Args:
        path: The catalog file.
        create: Whether a missing or empty file may become a catalog.
        read_only: Whether the caller only reads.

    Returns:
        Whether to open it read-only: asked for, or the file cannot be written.

    Raises:
        CatalogNotFoundError: The file (or its directory) does not exist and
            ``create`` is False.
        NotACatalogError: The file is not a SQLite database, or holds other
            tables; or it is empty and ``create`` is False.
        CatalogReadOnlyError: A new catalog was asked for where none can be written.
    """
    if not path.parent.is_dir():
        if not create:
            raise CatalogNotFoundError(_not_found(path))
        raise CatalogError(
            f"Cannot open the catalog {path}: the directory {path.parent} does not "
            "exist. Create it first or choose another --catalog path."
        )
    state = probe_sqlite_file(path)
    if state.kind == "missing" and not create:
        raise CatalogNotFoundError(_not_found(path))
    if state.kind == "not-sqlite":
        raise NotACatalogError(
            f"{path} is not a snapshot catalog: it is not a SQLite database; it was not "
            "touched. Choose another --catalog file."
        )
    if state.kind == "foreign":
        shown = sorted(state.tables)
        listed = ", ".join(shown[:5]) + (", ..." if len(shown) > 5 else "")
        raise NotACatalogError(
            f"{path} is not a snapshot catalog: it is a SQLite database holding other "
            f"tables ({listed}); it was not touched. Choose another --catalog file."
        )
    if state.kind in {"missing", "empty"}:
        if not create:
            raise NotACatalogError(
                f"{path} is not a snapshot catalog yet (it is empty). Create it with "
                f"`muscle-catalog --catalog {path} init`, or import a run into it."
            )
        if read_only or not state.writable:
            raise CatalogReadOnlyError(
                f"The catalog is read-only: cannot create a catalog in {path}, which cannot "
                "be written here. Choose a writable --catalog path."
            )
        return False
    return read_only or not state.writable


def _not_found(path: Path) -> str:
    return (
        f"There is no catalog at {path}. Create it with `muscle-catalog init` (in Python: "
        "open_catalog(path, create=True)) or record runs into it with `muscle-catalog import "
        f"RUN_DIR`, or choose another with --catalog or {CATALOG_ENV}."
    )
