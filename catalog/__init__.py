"""muscle-snapshot-catalog: a queryable, crash-safe SQL catalog of MUSCLE3 snapshots.

The public API, for simulation code, the manager and notebooks alike::

    from catalog import open_catalog
    with open_catalog("campaign/snapshot_catalog.sqlite") as cat:
        df = cat.snapshots(instance="macro").to_dataframe()
        resume_point = cat.latest_workflow_snapshot(run="my_run")

The data flow, one module per step: ``payload`` (the .pack bytes) ->
``store`` (durable files) -> ``catalog`` (rows) -> ``manager`` (instance
side) -> ``registry`` (manager side: ``topology``, ``consistency``,
``workflow_search``, ``resume_file``) -> ``resume`` (picking resume points);
``campaign`` imports existing run directories, ``cli`` is the command.
"""

from catalog.campaign import ImportReport, import_run_directories, import_run_directory
from catalog.catalog import CATALOG_ENV, Catalog, NewSnapshot, NewWorkflowSnapshot, open_catalog
from catalog.errors import (
    CatalogError,
    CatalogTooNewError,
    CatalogTooOldError,
    InvalidInstanceError,
    ResumeSelectionError,
    RunDirectoryError,
    SchemaVersionError,
    SnapshotFileError,
    SnapshotWriteError,
)
from catalog.manager import SnapshotManager
from catalog.message import ClosePort, Grid, Message, Milestone
from catalog.records import RecordList, RunRecord, SnapshotRecord, WorkflowSnapshotRecord
from catalog.registry import SnapshotRegistry
from catalog.resume import (
    ReindexReport,
    ResumeFile,
    reindex_run,
    resume_file_for,
    select_workflow_snapshot,
    workflows_containing,
)
from catalog.snapshot import Snapshot, SnapshotMetadata
from catalog.topology import TopologyError

__all__ = [
    "CATALOG_ENV",
    "Catalog",
    "CatalogError",
    "CatalogTooNewError",
    "CatalogTooOldError",
    "ClosePort",
    "Grid",
    "ImportReport",
    "InvalidInstanceError",
    "Message",
    "Milestone",
    "NewSnapshot",
    "NewWorkflowSnapshot",
    "RecordList",
    "ReindexReport",
    "ResumeFile",
    "ResumeSelectionError",
    "RunDirectoryError",
    "RunRecord",
    "SchemaVersionError",
    "Snapshot",
    "SnapshotFileError",
    "SnapshotManager",
    "SnapshotMetadata",
    "SnapshotRecord",
    "SnapshotRegistry",
    "SnapshotWriteError",
    "TopologyError",
    "WorkflowSnapshotRecord",
    "import_run_directories",
    "import_run_directory",
    "open_catalog",
    "reindex_run",
    "resume_file_for",
    "select_workflow_snapshot",
    "workflows_containing",
]
