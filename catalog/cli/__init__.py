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
"""

from catalog.cli import housekeeping as housekeeping
from catalog.cli import plot as plot
from catalog.cli import runs, schema, snapshots, watch, workflows
from catalog.cli import verify as verify
from catalog.cli.group import cli, main
from catalog.cli.snapshots import describe_data

__all__ = ["cli", "describe_data", "main", "runs", "schema", "snapshots", "watch", "workflows"]
