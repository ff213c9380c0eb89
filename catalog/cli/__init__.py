"""The ``muscle-catalog`` command: import runs, list snapshots, pick resume points, upgrade.

Thin on purpose: each subcommand parses its options, calls the library and
prints the result, as a rich table for people or as JSON for scripts. All the
behaviour worth testing lives in the library, where notebooks get it too.
One module per group of commands:

* :mod:`.group`: the ``muscle-catalog`` group, ``--catalog``, error reporting;
* :mod:`.runs`: ``import``, ``runs``, ``lineage``;
* :mod:`.snapshots`: ``snapshots``, ``show``;
* :mod:`.workflows`: ``workflows``, ``resume``, ``reindex``;
* :mod:`.schema`: ``init``, ``upgrade``;
* :mod:`.watch`: ``watch`` run directories while ``muscle_manager`` runs them;
* :mod:`.housekeeping`: ``gc``, ``forget``, ``du``, ``copy``: clean up and move a campaign;
* :mod:`.verify`: ``verify`` files and workflow snapshots, ``relocate`` moved runs;
* :mod:`.plot`: ``plot`` a timeline of runs' snapshots (needs the ``plot`` extra);
* :mod:`.output`: tables, JSON and progress bars.

Only :mod:`.group` is imported with the package: a command's module is
imported when that command runs (see :data:`.group.COMMANDS`), and the names
below are looked up on first use, so that ``muscle-catalog --help`` starts
as fast as click itself.
"""

from __future__ import annotations

import importlib
from typing import Any

from catalog.cli.group import cli, main

#: Public names defined in command modules, imported on first use (PEP 562).
_LAZY = {"describe_data": "catalog.cli.snapshots"}

_MODULES = ("housekeeping", "plot", "runs", "schema", "snapshots", "verify", "watch", "workflows")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _MODULES:
        return importlib.import_module(f"catalog.cli.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["cli", "describe_data", "main", "runs", "schema", "snapshots", "watch", "workflows"]
