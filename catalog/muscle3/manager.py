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

The run does not depend on the catalog: malformed submissions are rejected one
by one, a locked or lost catalog is retried while the run goes on, and what
is still unrecorded when the manager shuts down is written to a spill file
that ``muscle-catalog import`` or ``muscle-catalog verify --fix`` replays
(see :mod:`catalog.registry` and :mod:`catalog.spill`). The registry's
summary is logged at shutdown.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
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
    manager_class = manager_module.Manager
    if not getattr(manager_class.wait, "_records_outcome", False):
        setattr(manager_class, "wait", _recording_outcome(manager_class.wait))  # noqa: B010


def _recording_outcome(wait: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """Wrap ``Manager.wait`` so the run's status (finished or failed) reaches the catalog.

    MUSCLE3's manager learns how the run went in ``wait()``, after which it
    shuts the registry down; the registry is told the outcome then. An
    exception (Ctrl-C, say) counts as a failure and is raised on.
    """

    @functools.wraps(wait)
    def recording_wait(manager: Any) -> bool:
        registry = getattr(manager, "_snapshot_registry", None)
        try:
            success = wait(manager)
        except BaseException:
            if isinstance(registry, ManagerRegistry):
                registry.record_outcome(False)
            raise
        if isinstance(registry, ManagerRegistry):
            registry.record_outcome(success)
        return success

    recording_wait._records_outcome = True  # type: ignore[attr-defined]
    return recording_wait


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
