"""muscle-snapshot-catalog: a queryable, crash-safe SQL catalog of MUSCLE3 snapshots.

The public API, for simulation code and notebooks alike::

    from catalog import open_catalog
    with open_catalog("campaign/snapshot_catalog.sqlite") as cat:
        df = cat.snapshots(instance="macro").to_dataframe()
"""

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
from catalog.message import ClosePort, Grid, Message, Milestone
from catalog.records import RecordList, RunRecord, SnapshotRecord, WorkflowSnapshotRecord
from catalog.snapshot import Snapshot, SnapshotMetadata

__all__ = [
    "CATALOG_ENV",
    "Catalog",
    "CatalogError",
    "CatalogTooNewError",
    "CatalogTooOldError",
    "ClosePort",
    "Grid",
    "InvalidInstanceError",
    "Message",
    "Milestone",
    "NewSnapshot",
    "NewWorkflowSnapshot",
    "RecordList",
    "ResumeSelectionError",
    "RunDirectoryError",
    "RunRecord",
    "SchemaVersionError",
    "Snapshot",
    "SnapshotFileError",
    "SnapshotMetadata",
    "SnapshotRecord",
    "SnapshotWriteError",
    "WorkflowSnapshotRecord",
    "open_catalog",
]
