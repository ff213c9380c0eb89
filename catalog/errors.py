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
    """A snapshot file could not be stored (no free name, disk full, ...)."""


class InvalidInstanceError(CatalogError):
    """An instance name is not a valid MUSCLE3 instance reference.

    Raised before anything touches the file system, so that a name such as
    ``../../etc`` can never be turned into a path.
    """


class SchemaVersionError(CatalogError):
    """The catalog's schema does not match this version of the code."""


class CatalogTooOldError(SchemaVersionError):
    """The catalog was made by an older release and must be upgraded first."""


class CatalogTooNewError(SchemaVersionError):
    """The catalog was made by a newer release than this one; it is never touched."""


class RunDirectoryError(CatalogError):
    """A MUSCLE3 run directory could not be imported."""


class ResumeSelectionError(CatalogError):
    """No workflow snapshot matches the requested resume point."""


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
