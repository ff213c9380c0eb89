"""The fixed vocabularies the catalog stores: where a record came from, and what state it is in.

Each is a :class:`enum.StrEnum`, so a value is stored as its plain text (which
keeps the database readable from plain SQL and notebooks) and compares equal
to that text. The database holds the same lists as CHECK constraints
(migration 0002), so a value outside them can never be recorded, whichever
program writes.

This module imports nothing of the package, so that the database schema, the
records and the command line can all use it without pulling anything else in.
"""

from __future__ import annotations

from enum import StrEnum


class Source(StrEnum):
    """How a run or a workflow snapshot came into the catalog.

    Runs are ``live`` (recorded while running, by the instances or the
    registry), ``import`` (a finished run directory was read) or ``watch``
    (recorded by watching a run that plain MUSCLE3 runs). Workflow
    snapshots are ``registry`` (found by our registry while the run went on),
    ``import`` (read from a ``snapshot_*.ymmsl`` MUSCLE3 wrote), ``reindex``
    (recomputed from the recorded snapshots) or ``watch`` (found by watching
    a run that plain MUSCLE3 runs).
    """

    LIVE = "live"
    IMPORT = "import"
    REGISTRY = "registry"
    REINDEX = "reindex"
    WATCH = "watch"


class SnapshotStatus(StrEnum):
    """Whether a snapshot's ``.pack`` file is still what the catalog recorded.

    ``present``: recorded and there. ``missing``: the file is gone, or only
    its metadata ever reached the catalog (a submission whose file could not
    be read). ``corrupt``: the file is there but no longer matches its
    recorded size or sha256. ``deleted``: removed on purpose (clean-up); the
    row stays so that the history remains queryable.
    """

    PRESENT = "present"
    MISSING = "missing"
    CORRUPT = "corrupt"
    DELETED = "deleted"


class RunStatus(StrEnum):
    """Where a run is in its life.

    ``running``: its manager or instances are recording now. ``finished``:
    it ended cleanly. ``failed``: its manager reported a failure.
    ``unknown``: nobody said (imported runs without a manager log, and every
    run recorded before runs had a status).
    """

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    UNKNOWN = "unknown"


class WorkflowStatus(StrEnum):
    """Whether a workflow snapshot can still be resumed from.

    ``resumable``: as far as the catalog knows, every member file is there
    and intact. ``unresumable``: a member was found missing, corrupt or
    deleted, so resume selection passes it over.
    """

    RESUMABLE = "resumable"
    UNRESUMABLE = "unresumable"


def sql_in_list(enum: type[StrEnum]) -> str:
    """The values of an enum as a SQL ``IN`` list, for CHECK constraints: ``'a', 'b'``."""
    return ", ".join(f"'{member.value}'" for member in enum)
