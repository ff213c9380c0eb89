"""Campaign housekeeping: checking, repairing, moving and trimming what a catalog records.

A campaign outlives the machines and directories it started on: files get
copied off clusters, disks lose bits, runs are killed mid-save, and old
snapshots need clearing away. Each module here does one such job on an open
:class:`catalog.catalog.Catalog`, returns a typed report, and has a
``muscle-catalog`` command of the same name:

* ``verify.py``: find recorded files that are missing or changed, unrecorded
  ``.pack`` files, leftover temporary files, workflow snapshots that can no
  longer be resumed from and duplicate workflow snapshots; optionally fix
  what can be fixed;
* ``relocate.py``: rewrite every stored path of a run directory that was
  moved or copied, in one transaction;
* ``retention.py``: which snapshots a retention policy keeps;
* ``gc.py``: delete the snapshot files a policy no longer keeps;
* ``forget.py``: remove runs from the catalog;
* ``copy.py``: copy runs, with their records, into another catalog;
* ``du.py``: disk usage per run and instance.
"""
