"""The error types the catalog raises.

Every error a user can cause (a broken ``.pack`` file, a catalog written by a
newer release, a hostile instance name, ...) is a :class:`CatalogError`, which
derives from :class:`RuntimeError` because that is what MUSCLE3's own loaders
raise: code written against libmuscle that catches ``RuntimeError`` keeps
working. Messages name the file or catalog involved and say how to fix it.
"""

from __future__ import annotations


class CatalogError(RuntimeError):
    """Base class of every error this package raises on purpose."""


class SnapshotFileError(CatalogError):
    """A ``.pack`` snapshot file is missing, unreadable, corrupt or of an unknown version.

    Attributes:
        path: The file concerned, as given by the caller.
    """

    def __init__(self, path: object, problem: str) -> None:
        self.path = path
        super().__init__(f"Unable to load snapshot from {path}: {problem}")


class SnapshotWriteError(CatalogError):
    """A snapshot file could not be stored (no free name, disk full, ...).

    Nothing is left behind and nothing is recorded: the message names the
    cause in words (``disk full``, ``read-only file system``, ``permission
    denied``), the directory or file, and the fix.
    """


class CatalogWriteError(CatalogError):
    """A snapshot file was stored, but the catalog could not record it.

    Raised only when ``MUSCLE_CATALOG_ON_ERROR=raise`` (by default the failure
    is logged as a warning and the run goes on; see ``docs/saving.md``). The
    file is complete and kept on disk, and the manager has been told about it.

    Attributes:
        path: The snapshot file that was stored but not recorded.
        catalog: The catalog (path, or URL without password) that failed.
    """

    def __init__(self, message: str, *, path: object, catalog: str) -> None:
        self.path = path
        self.catalog = catalog
        super().__init__(message)


class SettingError(CatalogError):
    """An environment variable that configures the catalog has a value it cannot use."""


class InvalidInstanceError(CatalogError):
    """An instance name is not a valid MUSCLE3 instance reference.

    Raised before anything touches the file system, so that a name such as
    ``../../etc`` can never be turned into a path.
    """


class SchemaVersionError(CatalogError):
    """The catalog's schema does not match this version of the code."""


class NotACatalogError(SchemaVersionError):
    """The database holds something else (another program's tables, or nothing yet).

    It is refused untouched: opening it as a catalog would change someone else's file.
    """


class CatalogTooOldError(SchemaVersionError):
    """The catalog was made by an older release and must be upgraded first."""


class CatalogTooNewError(SchemaVersionError):
    """The catalog was made by a newer release than this one; it is never touched."""


class VersionTableError(SchemaVersionError):
    """The catalog's version table is damaged (several rows, or none), so its schema is unknown.

    Raised before anything is written to the catalog; the message names the
    catalog and how to repair it.
    """


class RunDirectoryError(CatalogError):
    """A MUSCLE3 run directory could not be imported."""


class YmmslLimitError(CatalogError, ValueError):
    """A yMMSL file is refused before it is parsed: too large, or an alias bomb.

    Also a :class:`ValueError`, which is what every caller of
    :func:`catalog.run_dir.load_ymmsl` already handles for "not yMMSL".
    """


class ResumeSelectionError(CatalogError):
    """No workflow snapshot matches the requested resume point."""


class CatalogNotFoundError(CatalogError):
    """There is no catalog where one was asked for, and creating one was not asked for.

    Reading commands and ``open_catalog(path)`` raise it rather than leave an
    empty catalog behind a typo in a path.
    """


class CatalogReadOnlyError(CatalogError):
    """A write was asked of a catalog opened read-only (a read-only file, directory or mount)."""


class DatabaseDriverError(CatalogError):
    """The catalog URL names a database backend that is not supported or whose driver is missing."""


class SnapshotTooLargeError(SnapshotFileError):
    """A ``.pack`` file is too large to read or decode in the memory available.

    Attributes:
        size_bytes: The file's size.
    """

    def __init__(self, path: object, size_bytes: int) -> None:
        self.size_bytes = size_bytes
        super().__init__(
            path,
            f"the file is {size_bytes} bytes ({size_bytes / 2**30:.2f} GiB) and there is not "
            "enough memory to decode it (that needs about twice its size). Load it on a machine "
            "with more memory, or free memory first; `muscle-catalog import` records such a file "
            "from its metadata without decoding its data.",
        )


class SnapshotChangedError(SnapshotFileError):
    """A recorded ``.pack`` file's bytes no longer match the sha256 the catalog recorded."""
