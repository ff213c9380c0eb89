"""Write a small real catalog at this release's schema revision, plus its records as JSON.

One such catalog is kept per released schema revision (``<revision>.sqlite`` and
``<revision>.records.json``) so that the upgrade tests can take every old
catalog to the newest schema and check that every record reads back equal.

The catalog is made the way users make one: real MUSCLE3 run directories
(copied from ``tests/data/runs`` into a campaign directory beside the catalog
file, so every stored path is relative and the asset does not depend on where
the repository lives) are imported, one is reindexed, and one run is recorded
live through the SnapshotRegistry. It holds vector instances, implicit
snapshots with NaN timestamps, resumed runs linked to their origin, and
workflow snapshots from import, reindex and the registry.

Usage (from the repository root, with this release installed)::

    python tests/data/catalogs/make_catalog_asset.py
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import shutil
import sqlite3
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import ymmsl

from catalog import SnapshotRegistry, import_run_directory, open_catalog, reindex_run

HERE = Path(__file__).parent
DIST = "muscle-snapshot-catalog"
RUNS = HERE.parent / "runs"

#: The imported runs under tests/data/runs; each keeps its directory's name, which
#: is how a resumed run's configuration names the run it resumed from.
IMPORTED = [
    "v0.10/mm_stateless",
    "v0.10/mm_stateless_resume",
    "v0.10/mm_vector5",
    "v0.10/mm_vector5_resume",
]

#: The run recorded live: its submissions are replayed through the registry.
LIVE = ("v0.11/mm_scalar", "live_mm_scalar")


def plain(value: Any, root: Path) -> Any:
    """A record field as JSON: paths relative to the catalog's directory, floats spelled out."""
    if isinstance(value, Path):
        return value.relative_to(root).as_posix() if value.is_absolute() else value.as_posix()
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v, root) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, root) for v in value]
    return value


def records(cat: Any, root: Path) -> dict[str, list[dict[str, Any]]]:
    """Every run, snapshot and workflow snapshot of the catalog, field by field."""

    def fields(record: Any) -> dict[str, Any]:
        return {f.name: plain(getattr(record, f.name), root) for f in dataclasses.fields(record)}

    return {
        "runs": [fields(r) for r in cat.runs()],
        "snapshots": [fields(s) for s in cat.snapshots()],
        "workflow_snapshots": [fields(w) for w in cat.workflow_snapshots()],
    }


def replay_live(cat: Any, campaign: Path) -> None:
    """Record a run as the registry does live, from the submissions its manager received."""
    source, name = LIVE
    run_dir = campaign / name
    shutil.copytree(RUNS / source, run_dir)
    stream = json.loads((run_dir / "registry_input.json").read_text())

    def number(value: Any) -> Any:
        names = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
        return names[value] if isinstance(value, str) else value

    registry = SnapshotRegistry(
        ymmsl.load(stream["ymmsl"]), run_dir / "snapshots_live", cat, run_dir=run_dir,
        threaded=False, clock=lambda: dt.datetime(2026, 11, 24, 12, 0, 0),
    )  # fmt: skip
    for submission in stream["submissions"]:
        metadata = dict(submission["metadata"])
        for key in ("timestamp", "next_timestamp", "wallclock_time"):
            metadata[key] = number(metadata[key])
        registry.register_snapshot(submission["instance"], metadata)
    registry.shutdown()


def main() -> None:
    """Build the asset in a scratch campaign directory and copy it here."""
    with tempfile.TemporaryDirectory() as scratch:
        campaign = Path(scratch)
        db_file = campaign / "snapshot_catalog.sqlite"
        with open_catalog(db_file, create=True) as cat:
            for source in IMPORTED:
                shutil.copytree(RUNS / source, campaign / Path(source).name)
                import_run_directory(cat, campaign / Path(source).name)
            reindex_run(cat, "mm_stateless")
            replay_live(cat, campaign)
            dump = records(cat, campaign)
        connection = sqlite3.connect(db_file)
        try:
            revision = connection.execute(
                "SELECT version_num FROM muscle_catalog_alembic_version"
            ).fetchone()[0]
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            connection.execute("PRAGMA journal_mode = DELETE")
        finally:
            connection.close()
        target = HERE / f"{revision}.sqlite"
        with sqlite3.connect(db_file) as source_db, sqlite3.connect(target) as target_db:
            source_db.backup(target_db)
        meta = {"revision": revision, "written_by": f"muscle-snapshot-catalog {version(DIST)}"}
        (HERE / f"{revision}.records.json").write_text(
            json.dumps({**meta, **dump}, indent=1, sort_keys=True) + "\n"
        )
        print(f"Wrote {target} and its records ({sum(len(v) for v in dump.values())} records)")


if __name__ == "__main__":
    main()
