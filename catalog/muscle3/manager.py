"""The manager side inside MUSCLE3: ``muscle_manager`` with this package's SnapshotRegistry.

MUSCLE3's manager builds its ``SnapshotRegistry(configuration, snapshot_dir,
topology_store)`` itself. :class:`ManagerRegistry` takes exactly those
arguments and hands the first two to :class:`catalog.registry.SnapshotRegistry`
(the topology is read from the configuration, so the TopologyStore is not
needed). Swapping the class before the manager starts is all it takes for a
live run to record its submissions and workflow snapshots in the catalog (by
default ``<run dir>/snapshot_catalog.sqlite``, or ``$MUSCLE_SNAPSHOT_CATALOG``),
write MUSCLE3's resume files without its hangs and crashes, and keep going
where MUSCLE3's registry thread would die.

Use ``muscle-catalog-manager`` exactly like ``muscle_manager``::

    muscle-catalog-manager --start-all --run-dir run1 model.ymmsl

Instances need no change: the registry records each submitted snapshot from
its ``.pack`` file if the instance did not record it itself.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from catalog.registry import SnapshotRegistry


class ManagerRegistry(SnapshotRegistry):
    """Our registry, constructed with the arguments MUSCLE3's manager passes."""

    def __init__(self, configuration: Any, snapshot_folder: Path, topology_store: Any) -> None:
        """Create the registry as MUSCLE3's ``Manager`` does.

        Args:
            configuration: The run's configuration (ymmsl).
            snapshot_folder: Where resume files go (``<run dir>/snapshots``).
            topology_store: MUSCLE3's TopologyStore; unused, since our registry
                reads the topology from the configuration.
        """
        del topology_store
        super().__init__(configuration, snapshot_folder)


def use_catalog_registry() -> None:
    """Make MUSCLE3's manager in this process use our registry (:class:`ManagerRegistry`).

    Raises:
        ImportError: MUSCLE3 is not installed in this environment.
    """
    import libmuscle.manager.manager as manager_module

    setattr(manager_module, "SnapshotRegistry", ManagerRegistry)  # noqa: B010


def main() -> None:
    """Entry point of ``muscle-catalog-manager``: MUSCLE3's manager command, our registry."""
    try:
        use_catalog_registry()
        from muscle3.muscle_manager import manage_simulation
    except ImportError:
        sys.exit(
            "Error: muscle-catalog-manager runs MUSCLE3's own manager, which is not installed "
            "here. Install MUSCLE3 (pip install muscle3) in this environment."
        )
    manage_simulation()
