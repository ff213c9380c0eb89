"""Adapters that run inside real MUSCLE3 (muscle3 0.10 and 0.11), on the manager and instance side.

These are the only modules of the package that import ``libmuscle`` or
``muscle3``; everything else works without MUSCLE3 installed. Each adapter
takes the arguments and calls a MUSCLE3 release makes and hands them to the
version-independent core:

- :class:`Instance` (``catalog.muscle3.instance``): ``libmuscle.Instance``
  whose snapshots go through :class:`catalog.instance.SnapshotManager`. A
  component uses it by changing one line,
  ``from catalog.muscle3 import Instance``;
- ``catalog.muscle3.manager``: ``muscle-catalog-manager``, MUSCLE3's manager
  with :class:`catalog.registry.SnapshotRegistry`.

``Instance`` is loaded on first use, so that importing this package does not
import libmuscle (and fails only where MUSCLE3 is actually needed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from catalog.muscle3.instance import Instance, UnsupportedMuscle3Error

__all__ = ["Instance", "UnsupportedMuscle3Error"]


def __getattr__(name: str) -> Any:
    """Load ``Instance`` and its error from ``catalog.muscle3.instance`` when first asked for."""
    if name in __all__:
        from catalog.muscle3 import instance

        return getattr(instance, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
