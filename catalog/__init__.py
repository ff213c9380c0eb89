"""muscle-snapshot-catalog: a queryable, crash-safe SQL catalog of MUSCLE3 snapshots.

The public API, for simulation code, the manager and notebooks alike::

    from catalog import open_catalog
    with open_catalog("campaign/snapshot_catalog.sqlite") as cat:
        df = cat.snapshots(instance="macro").to_dataframe()
        resume_point = cat.latest_workflow_snapshot(run="my_run")

The data flow, one module per step:

* a payload file: ``payload`` (the .pack bytes, with ``msgpack_spans`` for large
  ones) -> ``store`` (durable files) -> ``snapshot_data`` (a record's data, read back);
* a catalog record: ``catalog`` (the Catalog facade over ``db/``), written by
  ``instance`` (the instance side's SnapshotManager), ``run_import`` (existing
  run directories) and ``registry``;
* the registry (manager side): ``topology`` -> ``consistency`` ->
  ``workflow_search`` -> ``resume_file``; ``muscle3`` adapts it (and later the
  instance side) to real MUSCLE3 releases;
* a resume point: ``resume`` picks one, ``replay`` recomputes them, ``lineage``
  says which run resumed from which;
* ``watch`` records a run that plain MUSCLE3 is running, as ``run_import`` does
  for finished ones.

``run_dir`` knows MUSCLE3's run-directory layout and yMMSL, ``location``
which catalog to use, ``records`` and ``enums`` the types all of them share;
``cli`` is the ``muscle-catalog`` command.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from catalog.catalog import Catalog, open_catalog
    from catalog.enums import RunStatus, SnapshotStatus, Source, WorkflowStatus
    from catalog.errors import (
        CatalogError,
        CatalogNotFoundError,
        CatalogReadOnlyError,
        CatalogTooNewError,
        CatalogTooOldError,
        CatalogWriteError,
        InvalidInstanceError,
        NotACatalogError,
        ResumeSelectionError,
        RunDirectoryError,
        SchemaVersionError,
        SettingError,
        SnapshotChangedError,
        SnapshotFileError,
        SnapshotTooLargeError,
        SnapshotWriteError,
        VersionTableError,
        YmmslLimitError,
    )
    from catalog.instance import SnapshotManager
    from catalog.location import CATALOG_ENV
    from catalog.maintenance.gc import GcReport, gc
    from catalog.maintenance.relocate import RelocateReport, relocate
    from catalog.maintenance.verify import VerifyReport, verify
    from catalog.message import ClosePort, Grid, Message, Milestone
    from catalog.records import (
        AlternativeWorkflowSnapshot,
        NewSnapshot,
        NewWorkflowSnapshot,
        RecordList,
        RunRecord,
        RunSummary,
        SnapshotRecord,
        WorkflowSnapshotRecord,
    )
    from catalog.registry import SnapshotRegistry
    from catalog.replay import ReindexReport, reindex_run, workflows_containing
    from catalog.resume import ResumeFile, resume_file_for, select_workflow_snapshot
    from catalog.run_import import ImportReport, import_run_directories, import_run_directory
    from catalog.snapshot import Snapshot, SnapshotMetadata
    from catalog.snapshot_data import load_snapshot
    from catalog.snapshot_query import QueryError
    from catalog.topology import TopologyError

#: Where each public name lives. Names are imported on first use (PEP 562), so
#: that ``import catalog.muscle3`` in a simulation, or the command line's
#: ``--help``, does not import the database layer, the registry and ymmsl it
#: may never need; ``from catalog import X`` works as before.
_LAZY = {
    "Catalog": "catalog.catalog",
    "CATALOG_ENV": "catalog.location",
    "CatalogError": "catalog.errors",
    "CatalogNotFoundError": "catalog.errors",
    "CatalogReadOnlyError": "catalog.errors",
    "CatalogTooNewError": "catalog.errors",
    "CatalogTooOldError": "catalog.errors",
    "CatalogWriteError": "catalog.errors",
    "ClosePort": "catalog.message",
    "gc": "catalog.maintenance.gc",
    "GcReport": "catalog.maintenance.gc",
    "relocate": "catalog.maintenance.relocate",
    "RelocateReport": "catalog.maintenance.relocate",
    "verify": "catalog.maintenance.verify",
    "VerifyReport": "catalog.maintenance.verify",
    "Grid": "catalog.message",
    "import_run_directories": "catalog.run_import",
    "import_run_directory": "catalog.run_import",
    "ImportReport": "catalog.run_import",
    "load_snapshot": "catalog.snapshot_data",
    "InvalidInstanceError": "catalog.errors",
    "NotACatalogError": "catalog.errors",
    "Message": "catalog.message",
    "Milestone": "catalog.message",
    "NewSnapshot": "catalog.records",
    "NewWorkflowSnapshot": "catalog.records",
    "open_catalog": "catalog.catalog",
    "RecordList": "catalog.records",
    "reindex_run": "catalog.replay",
    "ReindexReport": "catalog.replay",
    "resume_file_for": "catalog.resume",
    "ResumeFile": "catalog.resume",
    "ResumeSelectionError": "catalog.errors",
    "RunDirectoryError": "catalog.errors",
    "RunRecord": "catalog.records",
    "RunSummary": "catalog.records",
    "AlternativeWorkflowSnapshot": "catalog.records",
    "QueryError": "catalog.snapshot_query",
    "RunStatus": "catalog.enums",
    "SchemaVersionError": "catalog.errors",
    "SettingError": "catalog.errors",
    "VersionTableError": "catalog.errors",
    "YmmslLimitError": "catalog.errors",
    "select_workflow_snapshot": "catalog.resume",
    "Snapshot": "catalog.snapshot",
    "SnapshotChangedError": "catalog.errors",
    "SnapshotFileError": "catalog.errors",
    "SnapshotTooLargeError": "catalog.errors",
    "SnapshotManager": "catalog.instance",
    "SnapshotMetadata": "catalog.snapshot",
    "SnapshotRecord": "catalog.records",
    "SnapshotRegistry": "catalog.registry",
    "SnapshotStatus": "catalog.enums",
    "SnapshotWriteError": "catalog.errors",
    "Source": "catalog.enums",
    "TopologyError": "catalog.topology",
    "workflows_containing": "catalog.replay",
    "WorkflowSnapshotRecord": "catalog.records",
    "WorkflowStatus": "catalog.enums",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'catalog' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CATALOG_ENV",
    "AlternativeWorkflowSnapshot",
    "Catalog",
    "CatalogError",
    "CatalogNotFoundError",
    "CatalogReadOnlyError",
    "CatalogTooNewError",
    "CatalogTooOldError",
    "CatalogWriteError",
    "ClosePort",
    "GcReport",
    "Grid",
    "ImportReport",
    "InvalidInstanceError",
    "Message",
    "Milestone",
    "NewSnapshot",
    "NewWorkflowSnapshot",
    "NotACatalogError",
    "QueryError",
    "RecordList",
    "ReindexReport",
    "RelocateReport",
    "ResumeFile",
    "ResumeSelectionError",
    "RunDirectoryError",
    "RunRecord",
    "RunStatus",
    "RunSummary",
    "SchemaVersionError",
    "SettingError",
    "Snapshot",
    "SnapshotChangedError",
    "SnapshotFileError",
    "SnapshotManager",
    "SnapshotMetadata",
    "SnapshotRecord",
    "SnapshotRegistry",
    "SnapshotStatus",
    "SnapshotTooLargeError",
    "SnapshotWriteError",
    "Source",
    "TopologyError",
    "VerifyReport",
    "VersionTableError",
    "WorkflowSnapshotRecord",
    "WorkflowStatus",
    "YmmslLimitError",
    "gc",
    "import_run_directories",
    "import_run_directory",
    "load_snapshot",
    "open_catalog",
    "reindex_run",
    "relocate",
    "resume_file_for",
    "select_workflow_snapshot",
    "verify",
    "workflows_containing",
]
