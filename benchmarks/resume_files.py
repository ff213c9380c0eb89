"""Read the resume mappings out of a folder of ``snapshot_*.ymmsl`` files, quickly.

Both sides of the benchmark write the same file format; comparing the
``resume:`` sections is how the benchmark checks that both registries found
the same workflow snapshots. A line parser is used instead of ymmsl because
parsing a hundred files of a thousand instances each with a YAML library
would take longer than some of the runs being measured. Standard library
only: the MUSCLE3 driver imports this inside its own virtual environment.
"""

from __future__ import annotations

import re
from pathlib import Path

_NAME = re.compile(r"snapshot_(\d{8}_\d{6})(?:_(\d+))?\.ymmsl")


def _order(path: Path) -> tuple[str, int]:
    match = _NAME.fullmatch(path.name)
    if match is None:
        return (path.name, 0)
    return (match.group(1), int(match.group(2) or 0))


def read_resume_mappings(folder: Path) -> list[list[tuple[str, str]]]:
    """The ``resume:`` entries of every resume file in the folder, in the order written.

    Args:
        folder: The snapshot folder.

    Returns:
        One sorted list of ``(instance, path)`` pairs per file.
    """
    mappings = []
    for path in sorted(folder.glob("snapshot_*.ymmsl"), key=_order):
        entries: list[tuple[str, str]] = []
        in_resume = False
        for line in path.read_text().splitlines():
            if line.startswith("resume:"):
                in_resume = True
            elif in_resume and line.startswith("  "):
                instance, _, file = line.strip().partition(": ")
                entries.append((instance, file))
            elif in_resume:
                break
        mappings.append(sorted(entries))
    return mappings
