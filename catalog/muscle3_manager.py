"""Run MUSCLE3's own ``muscle_manager`` with this package's SnapshotRegistry.

MUSCLE3's manager builds its ``SnapshotRegistry(configuration, snapshot_dir,
topology_store)`` itself. Ours takes the same arguments, so swapping the
class before the manager starts is all it takes for a live run to record its
submissions and workflow snapshots in the catalog (by default
``<run dir>/snapshot_catalog.sqlite``, or ``$MUSCLE_SNAPSHOT_CATALOG``),
write MUSCLE3's resume files without its hangs and crashes, and keep going
where MUSCLE3's registry thread would die.

Use ``muscle-catalog-manager`` exactly like ``muscle_manager``::

    muscle-catalog-manager --start-all --run-dir run1 model.ymmsl

Instances need no change: the registry records each submitted snapshot from
its ``.pack`` file if the instance did not record it itself.
"""

from __future__ import annotations

import sys

from catalog.registry import SnapshotRegistry


def use_catalog_registry() -> None:
    """Make MUSCLE3's manager in this process use :class:`catalog.SnapshotRegistry`.

    Raises:
        ImportError: MUSCLE3 is not installed in this environment.
    """
    import libmuscle.manager.manager as manager_module

    setattr(manager_module, "SnapshotRegistry", SnapshotRegistry)  # noqa: B010


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
