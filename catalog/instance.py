"""The instance side: SnapshotManager saves an instance's snapshots durably and records them.

This keeps the interface of MUSCLE3's ``libmuscle.snapshot_manager`` (the
seed), so an ``Instance`` can use it unchanged, and adds the catalog: every
save writes a MUSCLE3-compatible ``.pack`` file crash-safely
(:mod:`catalog.store`), records it in the catalog in one transaction, and
submits to the manager the metadata built from the recorded row, so that what
the manager is told is what was recorded.

Where the catalog is, when none is given, is decided by
:func:`catalog.location.catalog_for_snapshot_directory`: the
``MUSCLE_SNAPSHOT_CATALOG`` environment variable, else the run directory's
``snapshot_catalog.sqlite`` (MUSCLE3's layout), else one in the snapshot
directory.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, cast

from sqlalchemy.exc import SQLAlchemyError
from ymmsl import Operator, Settings

from catalog.catalog import Catalog, open_catalog
from catalog.errors import CatalogError
from catalog.location import catalog_for_snapshot_directory
from catalog.message import Message
from catalog.naming import validate_instance
from catalog.payload import decode_snapshot, encode_snapshot
from catalog.records import NewSnapshot, RunRecord
from catalog.run_dir import model_name_of_text, read_configuration_text, run_dir_of
from catalog.snapshot import Snapshot, SnapshotMetadata
from catalog.store import StoredFile, load_pack, read_pack_bytes, store_pack

_logger = logging.getLogger(__name__)

#: MUSCLE3's name for the port that receives settings from the manager.
SETTINGS_IN_PORT = "muscle_settings_in"


class SnapshotManager:
    """Saves and loads the snapshots of one instance, recording each in the catalog.

    Args:
        instance_id: The instance's name, e.g. ``micro[3]`` (str or ymmsl Reference).
        manager: The client used to submit snapshot metadata to the manager
            (anything with ``submit_snapshot_metadata(metadata)``).
        communicator: The instance's communicator (or port manager): it gives
            ``get_message_counts()``, ``list_ports()``,
            ``settings_in_connected()`` and ``restore_message_counts(counts)``.
        catalog: The catalog to record into: an open :class:`Catalog`, a path
            or URL, or None for the default (see the module documentation).
    """

    def __init__(
        self,
        instance_id: Any,
        manager: Any,
        communicator: Any,
        catalog: Catalog | str | os.PathLike[str] | None = None,
    ) -> None:
        self._instance_id = instance_id
        self._instance = validate_instance(instance_id)
        self._manager = manager
        self._communicator = communicator
        self._catalog_arg = catalog
        self._catalog: Catalog | None = catalog if isinstance(catalog, Catalog) else None
        self._owns_catalog = False
        self._run: RunRecord | None = None
        self._resume_from_snapshot: Snapshot | None = None
        self.resume_overlay = Settings()
        self._next_snapshot_num = 1
        self._snapshot_directory = Path.cwd()

    # -- the seed's interface ------------------------------------------------------------

    def prepare_resume(
        self, resume_snapshot: Path | None, snapshot_directory: Path | None
    ) -> float | None:
        """Apply the checkpoint information the manager sent at start-up.

        Sets the snapshot directory; when resuming, loads the snapshot,
        restores the message counts, takes its settings overlay, stores a copy
        of it as this run's first snapshot and submits that copy to the manager.

        Args:
            resume_snapshot: The snapshot to resume from, or None.
            snapshot_directory: Where to save snapshots (None: the working directory).

        Returns:
            The resumed message's timestamp, or None if not resuming or the
            snapshot is implicit (has no message).

        Raises:
            SnapshotFileError: The snapshot to resume from is missing or broken.
        """
        result: float | None = None
        self._snapshot_directory = snapshot_directory or Path.cwd()
        if resume_snapshot is None:
            return None
        data = read_pack_bytes(Path(resume_snapshot))
        snapshot = decode_snapshot(data, resume_snapshot)
        if snapshot.message is not None:
            self._resume_from_snapshot = snapshot
            result = snapshot.message.timestamp
        self.resume_overlay = snapshot.settings_overlay
        self._communicator.restore_message_counts(snapshot.port_message_counts)
        self._store_and_submit(snapshot, data)
        return result

    def resuming_from_intermediate(self) -> bool:
        """Whether the manager gave us an intermediate snapshot to resume from."""
        snapshot = self._resume_from_snapshot
        return snapshot is not None and not snapshot.is_final_snapshot

    def resuming_from_final(self) -> bool:
        """Whether the manager gave us a final snapshot to resume from."""
        snapshot = self._resume_from_snapshot
        return snapshot is not None and snapshot.is_final_snapshot

    def load_snapshot(self) -> Message:
        """The message to resume from (call only when resuming from a non-implicit snapshot)."""
        snapshot = cast(Snapshot, self._resume_from_snapshot)
        return cast(Message, snapshot.message)

    def save_snapshot(
        self,
        msg: Message | None,
        final: bool,
        triggers: list[str],
        wallclock_time: float,
        f_init_max_timestamp: float | None,
        settings_overlay: Settings,
    ) -> float:
        """Save a snapshot (final: at the end of a reuse iteration) and record it.

        For final snapshots the F_INIT ports (and ``muscle_settings_in`` when
        connected) have already received the next iteration's message, which
        is not processed yet, so their counts are lowered by one as MUSCLE3
        does; unlike MUSCLE3 0.7-0.10 a count is never lowered below zero
        (an unconnected F_INIT port stays at 0 instead of -1).

        Args:
            msg: The state to save; None for an implicit snapshot.
            final: True if called for a final snapshot.
            triggers: What triggered it.
            wallclock_time: Seconds since the manager started.
            f_init_max_timestamp: For final snapshots, the largest timestamp of
                the pre-received F_INIT messages.
            settings_overlay: The current settings overlay.

        Returns:
            The simulation time the snapshot stands for: the message's
            timestamp (-inf for None), or ``f_init_max_timestamp`` for a
            final snapshot that has one.
        """
        counts = {
            port: list(slots) for port, slots in self._communicator.get_message_counts().items()
        }
        if final:
            self._discount_pre_received(counts)
        snapshot = Snapshot(triggers, wallclock_time, counts, final, msg, settings_overlay)
        self._store_and_submit(snapshot, encode_snapshot(snapshot))
        timestamp = msg.timestamp if msg is not None else -math.inf
        if final and f_init_max_timestamp is not None:
            timestamp = f_init_max_timestamp
        return timestamp

    @staticmethod
    def load_snapshot_from_file(snapshot_location: Path) -> Snapshot:
        """Load a stored snapshot (format 1 or 2).

        Raises:
            SnapshotFileError: (a RuntimeError) the file is missing or not a
                valid snapshot; the message names the file and the fix.
        """
        _logger.debug("Loading snapshot from %s", snapshot_location)
        return load_pack(Path(snapshot_location)).snapshot

    # -- catalog ---------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        """The catalog this instance records into (opened on first use)."""
        if self._catalog is None:
            location = self._catalog_arg
            if location is None or isinstance(location, Catalog):
                location = catalog_for_snapshot_directory(self._snapshot_directory)
            self._catalog = open_catalog(location)
            self._owns_catalog = True
        return self._catalog

    def close(self) -> None:
        """Release the catalog connection if this manager opened it."""
        if self._owns_catalog and self._catalog is not None:
            self._catalog.close()
            self._catalog = None
            self._run = None

    def _run_record(self) -> RunRecord:
        if self._run is None:
            run_dir = run_dir_of(self._snapshot_directory) or self._snapshot_directory
            configuration = read_configuration_text(run_dir)
            self._run = self.catalog.ensure_run(
                run_dir, configuration=configuration, model_name=model_name_of_text(configuration)
            )
        return self._run

    # -- internals -------------------------------------------------------------------------

    def _discount_pre_received(self, counts: dict[str, list[int]]) -> None:
        ports = list(self._communicator.list_ports().get(Operator.F_INIT, []))
        if self._communicator.settings_in_connected():
            ports.append(SETTINGS_IN_PORT)
        for port in ports:
            if port in counts:
                counts[port] = [max(count - 1, 0) for count in counts[port]]

    def _store_and_submit(self, snapshot: Snapshot, data: bytes) -> None:
        stored = store_pack(self._snapshot_directory, self._instance, data, self._next_snapshot_num)
        self._next_snapshot_num = stored.next_number
        metadata = self._record(snapshot, stored)
        self._manager.submit_snapshot_metadata(metadata)

    def _record(self, snapshot: Snapshot, stored: StoredFile) -> SnapshotMetadata:
        """Record a stored file; the manager's metadata comes from the recorded row.

        If the catalog cannot be written (database down, disk full) the
        snapshot file is safe on disk and the simulation goes on: the error is
        logged with the command that adopts the file later, and the manager
        gets the metadata from the file's content instead.
        """
        new = NewSnapshot(
            instance=self._instance,
            path=stored.path,
            snapshot_filename=str(stored.path),
            snapshot=snapshot,
            size_bytes=stored.size_bytes,
            sha256=stored.sha256,
            sequence=stored.number,
        )
        try:
            record = self.catalog.record_snapshot(self._run_record().id, new)
        except (CatalogError, OSError, SQLAlchemyError) as exc:
            _logger.error(
                "Snapshot %s was saved but could not be recorded in the catalog: %s. "
                "Run `muscle-catalog import %s` later to record it.",
                stored.path,
                exc,
                run_dir_of(self._snapshot_directory) or self._snapshot_directory,
            )
            return SnapshotMetadata.from_snapshot(snapshot, str(stored.path))
        return record.to_metadata()
