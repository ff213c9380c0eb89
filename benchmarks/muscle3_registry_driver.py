"""Replay a submission stream through MUSCLE3 0.10's own SnapshotRegistry and time it.

Runs inside a separate virtual environment that has ``muscle3==0.10.0``
installed (``registry_benchmark.py`` creates it), so that the baseline is
the released code, untouched. Reads a JSON file ``{"ymmsl": ..., "stream":
[[instance, metadata], ...]}`` and prints one JSON line: the elapsed seconds
(construction to the end of the registry thread) and the resume mappings
of the files written, in order.

Usage: python muscle3_registry_driver.py STREAM.json WORK_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import ymmsl
from libmuscle.manager.snapshot_registry import SnapshotRegistry
from libmuscle.manager.topology_store import TopologyStore
from libmuscle.snapshot import SnapshotMetadata
from resume_files import read_resume_mappings  # beside this script; sys.path[0] is its folder
from ymmsl.v0_2 import Configuration, Reference


def main() -> None:
    """Run the replay given on the command line."""
    stream_file, work_dir = Path(sys.argv[1]), Path(sys.argv[2])
    data = json.loads(stream_file.read_text())
    configuration = ymmsl.load_as(Configuration, data["ymmsl"])
    snapshot_folder = work_dir / "snapshots"
    snapshot_folder.mkdir(parents=True, exist_ok=True)
    submissions = [
        (Reference(instance), SnapshotMetadata(**metadata)) for instance, metadata in data["stream"]
    ]
    start = time.perf_counter()
    registry = SnapshotRegistry(configuration, snapshot_folder, TopologyStore(configuration))
    registry.start()
    for instance, metadata in submissions:
        registry.register_snapshot(instance, metadata)
    registry.shutdown()
    registry.join()
    elapsed = time.perf_counter() - start
    resumes = read_resume_mappings(snapshot_folder)
    print(json.dumps({"seconds": elapsed, "resumes": resumes}))


if __name__ == "__main__":
    main()
