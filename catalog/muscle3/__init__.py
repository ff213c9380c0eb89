"""Adapters that run inside real MUSCLE3 (muscle3 0.10 and 0.11), on the manager and instance side.

These are the only modules of the package that import ``libmuscle`` or
``muscle3``; everything else works without MUSCLE3 installed. Each adapter
takes the arguments and calls a MUSCLE3 release makes and hands them to the
version-independent core (:class:`catalog.registry.SnapshotRegistry`,
:class:`catalog.instance.SnapshotManager`).
"""
