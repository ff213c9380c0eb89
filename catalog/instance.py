"""The instance side: SnapshotManager saves an instance's snapshots durably and records them.

This keeps the interface of MUSCLE3's ``libmuscle.snapshot_manager`` (the
seed), so an ``Instance`` can use it unchanged, and adds the catalog: every
save writes a MUSCLE3-compatible ``.pack`` file crash-safely
(:mod:`catalog.store`), records it in the catalog in one transaction, and
submits to the manager the metadata built from the values recorded, so that
what the manager is told is what was recorded.

Recording into a SQLite catalog file at this release's schema revision (the
normal case inside a run) goes through :mod:`catalog.db.sqlite_recorder`,
which needs only the stdlib ``sqlite3``: SQLAlchemy, the ORM and their
start-up cost, which every instance process would pay, are imported only
for other catalogs (PostgreSQL, a file yet to be created or at another
revision: the full :class:`catalog.catalog.Catalog` creates or refuses it as
always) and when resuming (the file is checked against the catalog once).

The files are byte for byte what libmuscle writes for the same state:
format 1 as MUSCLE3 0.10 (counts from the communicator, F_INIT counts of
final snapshots lowered by one), or format 2 as MUSCLE3 0.11 when the caller
passes the communicator state to :meth:`SnapshotManager.save_snapshot`. This
module knows nothing of libmuscle itself; :mod:`catalog.muscle3.instance`
adapts it to each MUSCLE3 release.

Resuming checks the file against the catalog first: a snapshot the catalog
recorded with other bytes (a file edited or overwritten since) is refused,
and the copy a resumed instance stores as its run's first snapshot records
which catalogued snapshot it was copied from.

When saving fails (``docs/saving.md``): a file that cannot be written
(disk full, read-only, permission denied) is a :class:`SnapshotWriteError`
and nothing is left behind; a catalog that cannot record a file already safe
on disk (locked for longer than ``MUSCLE_CATALOG_LOCK_TIMEOUT``, default
10 s here; disk full; read-only; corrupt; a damaged version table) is a
warning naming the cause, the catalog and the command that records the file
later, or with ``MUSCLE_CATALOG_ON_ERROR=raise`` a :class:`CatalogWriteError`.

Where the catalog is, when none is given, is decided by
:func:`catalog.location.catalog_for_snapshot_directory`: the
``MUSCLE_SNAPSHOT_CATALOG`` environment variable, else the nearest
``snapshot_catalog.sqlite`` in the run directory (MUSCLE3's layout; else the
snapshot directory) or above it, else a new one there.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sqlite3
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ymmsl import Operator, Settings

from catalog.db.sqlite_recorder import SqliteSnapshotRecorder
from catalog.db.sqlite_settings import INSTANCE_LOCK_TIMEOUT_S, lock_timeout
from catalog.errors import CatalogError, CatalogWriteError, SnapshotFileError, SnapshotWriteError
from catalog.faults import RAISE, catalog_failure, on_error_policy
from catalog.location import catalog_for_snapshot_directory, sqlite_path
from catalog.message import Message
from catalog.naming import validate_instance
from catalog.payload import CATALOG_TYPES, PayloadTypes, decode_snapshot, encode_snapshot
from catalog.records import NewSnapshot, RunRecord
from catalog.run_dir import (
    CONFIGURATION_FILE,
    model_name_of_text,
    read_configuration_text,
    run_dir_of,
)
from catalog.snapshot import FORMAT_V2, Snapshot, SnapshotMetadata
from catalog.store import StoredFile, load_pack, read_pack_buffer, store_pack

if TYPE_CHECKING:
    from catalog.catalog import Catalog

_logger = logging.getLogger(__name__)

#: MUSCLE3's name for the port that receives settings from the manager.
SETTINGS_IN_PORT = "muscle_settings_in"


class SnapshotManager:
    """Saves and loads the snapshots of one instance, recording each in the catalog.

    Args:
        instance_id: The instance's name, e.g. ``micro[3]`` (str or ymmsl Reference).
        manager: The client used to submit snapshot metadata to the manager
            (anything with ``submit_snapshot_metadata(metadata)``).
        communicator: What holds the instance's message counts (MUSCLE3
            0.10's port manager): it gives ``get_message_counts()``,
            ``list_ports()``, ``settings_in_connected()`` and
            ``restore_message_counts(counts)``. For format 2 the counts come
            with the communicator state passed to :meth:`save_snapshot`
            instead, and restoring is :meth:`_restore`'s job.
        catalog: The catalog to record into: an open :class:`Catalog`, a path
            or URL, or None for the default (see the module documentation).
        payload_types: The classes of the grids and port markers in loaded
            and saved messages (see :class:`catalog.payload.PayloadTypes`);
            this package's own unless running inside MUSCLE3.

    Attributes:
        resume_overlay: The settings overlay of the snapshot resumed from, or
            None when not resuming, as libmuscle's own manager has it:
            libmuscle's Instance applies the overlay only when it is not
            None, so when not resuming its overlay is left alone rather than
            replaced by an empty one.
    """

    def __init__(
        self,
        instance_id: Any,
        manager: Any,
        communicator: Any,
        catalog: Catalog | str | os.PathLike[str] | None = None,
        *,
        payload_types: PayloadTypes = CATALOG_TYPES,
    ) -> None:
        self._instance_id = instance_id
        self._instance = validate_instance(instance_id)
        self._manager = manager
        self._communicator = communicator
        self._catalog_arg = catalog
        # Anything but a location is an open Catalog (not imported to check: see the module doc).
        self._catalog: Catalog | None = (
            None if catalog is None or isinstance(catalog, (str, os.PathLike)) else catalog
        )
        self._owns_catalog = False
        self._payload_types = payload_types
        self._run: RunRecord | None = None
        self._recorder: SqliteSnapshotRecorder | None = None
        self._recorder_tried = False
        self._recorder_run_id: int | None = None
        self._resume_from_snapshot: Snapshot | None = None
        self.resume_overlay: Settings | None = None
        self._next_snapshot_num = 1
        self._snapshot_directory = Path.cwd()
        # Read once, here, so that a bad value stops the instance before its first save.
        self._on_error = on_error_policy()
        self._lock_timeout_s = lock_timeout(INSTANCE_LOCK_TIMEOUT_S)

    # -- the seed's interface ------------------------------------------------------------

    def prepare_resume(
        self, resume_snapshot: Path | None, snapshot_directory: Path | None
    ) -> float | None:
        """Apply the checkpoint information the manager sent at start-up.

        Sets the snapshot directory; when resuming, loads the snapshot,
        checks it against the catalog, restores the communicator's state
        (:meth:`_restore`), takes its settings overlay, stores a copy of it as
        this run's first snapshot and submits that copy to the manager. The
        copy has the original's bytes (libmuscle re-encodes, which gives the
        same bytes for files libmuscle wrote) and records, when the catalog
        holds the original, which snapshot it was copied from.

        Args:
            resume_snapshot: The snapshot to resume from, or None.
            snapshot_directory: Where to save snapshots (None: the working directory).

        Returns:
            The resumed message's timestamp, or None if not resuming or the
            snapshot is implicit (has no message).

        Raises:
            SnapshotFileError: The snapshot to resume from is missing or
                broken, or the catalog recorded it with other bytes (the
                message names the file and both SHA-256 digests).
        """
        result: float | None = None
        self._snapshot_directory = snapshot_directory or Path.cwd()
        if resume_snapshot is None:
            return None
        path = Path(resume_snapshot)
        data, digest = read_pack_buffer(path)
        snapshot = decode_snapshot(data, path, self._payload_types)
        origin = self._verified_origin(path, digest)
        if snapshot.message is not None:
            self._resume_from_snapshot = snapshot
            result = snapshot.message.timestamp
        self.resume_overlay = snapshot.settings_overlay
        self._restore(snapshot, path)
        self._store_and_submit(snapshot, data, copied_from=origin)
        self._link_resumed_run()
        return result

    def _link_resumed_run(self) -> None:
        """Record, as the run starts, which run and workflow snapshot it resumes from.

        Under ``muscle-catalog-manager`` the registry does this; under plain
        ``muscle_manager`` nothing else would until a later ``import`` or
        ``watch``, so the resumed instances do it from the run's configuration
        (its ``resume:`` section); the first one links, the others find it
        linked. Lineage is information, not the simulation's business: a
        failure is logged and the run goes on.
        """
        run_dir = run_dir_of(self._snapshot_directory)
        text = read_configuration_text(run_dir) if run_dir is not None else None
        if run_dir is None or not text or "resume" not in text:
            return
        failures: tuple[type[Exception], ...] = (ValueError, *_catalog_errors())
        try:
            from catalog.lineage import link_resumed_run
            from catalog.run_dir import parse_ymmsl

            resume = parse_ymmsl(text, run_dir / CONFIGURATION_FILE).resume
            run = self.catalog.ensure_run(run_dir)
            if resume and run.resumed_from_run_id is None:
                link_resumed_run(self.catalog, run, resume)
        except failures as exc:
            _logger.warning("Could not record which run %s resumed from: %s", run_dir, exc)

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
        communicator_state: Mapping[str, Any] | None = None,
    ) -> float:
        """Save a snapshot (final: at the end of a reuse iteration) and record it.

        Without ``communicator_state`` this is MUSCLE3 0.10's save: format 1,
        counts from the communicator. For final snapshots the F_INIT ports
        (and ``muscle_settings_in`` when connected) have already received the
        next iteration's message, which is not processed yet, so their counts
        are lowered by one, exactly as MUSCLE3 0.7-0.10 do: a declared but
        unconnected F_INIT port goes from 0 to -1. We keep that -1 rather than
        stop at 0 so that our files are byte-identical to libmuscle's for the
        same state; it changes no consistency result, because only connected
        ports are ever compared (``docs/consistency.md``).

        With ``communicator_state`` this is MUSCLE3 0.11's save: format 2,
        counts from the state, nothing lowered (0.11 captures the state before
        the next F_INIT messages arrive).

        Args:
            msg: The state to save; None for an implicit snapshot.
            final: True if called for a final snapshot.
            triggers: What triggered it.
            wallclock_time: Seconds since the manager started.
            f_init_max_timestamp: For final snapshots, the largest timestamp of
                the pre-received F_INIT messages.
            settings_overlay: The current settings overlay.
            communicator_state: MUSCLE3 0.11's communicator state as a plain
                map (``CommunicatorState.asdict()``, taken at the time of the
                save), or None for format 1.

        Returns:
            The simulation time the snapshot stands for: the message's
            timestamp (-inf for None), or ``f_init_max_timestamp`` for a
            final snapshot that has one.

        Raises:
            SnapshotWriteError: The state cannot be stored (see
                :func:`catalog.payload.encode_snapshot`), or the file not
                written (disk full, read-only, permission denied).
            CatalogWriteError: Only with ``MUSCLE_CATALOG_ON_ERROR=raise``: the
                file was stored and the manager told, but the catalog could
                not record it (by default that is a logged warning).
        """
        if communicator_state is None:
            counts = {
                port: list(slots) for port, slots in self._communicator.get_message_counts().items()
            }
            if final:
                self._discount_pre_received(counts)
            snapshot = Snapshot(triggers, wallclock_time, counts, final, msg, settings_overlay)
        else:
            state = dict(communicator_state)
            if not isinstance(state.get("port_message_counts"), Mapping):
                raise SnapshotWriteError(
                    "The communicator state has no port_message_counts; pass MUSCLE3 0.11's "
                    "CommunicatorState.asdict()"
                )
            counts = {port: list(slots) for port, slots in state["port_message_counts"].items()}
            snapshot = Snapshot(
                triggers, wallclock_time, counts, final, msg, settings_overlay, FORMAT_V2, state
            )
        self._store_and_submit(snapshot, encode_snapshot(snapshot, self._payload_types))
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
            from catalog.catalog import open_catalog

            self._catalog = open_catalog(
                self._catalog_location(), create=True, lock_timeout_s=self._lock_timeout_s
            )
            self._owns_catalog = True
        return self._catalog

    def close(self) -> None:
        """Release the catalog connections this manager opened."""
        if self._recorder is not None:
            self._recorder.close()
        self._recorder, self._recorder_tried, self._recorder_run_id = None, False, None
        if self._owns_catalog and self._catalog is not None:
            self._catalog.close()
            self._catalog = None
            self._run = None

    def _catalog_location(self) -> str | os.PathLike[str]:
        """The path or URL of the catalog, when none was given open."""
        location = self._catalog_arg
        if location is None or not isinstance(location, (str, os.PathLike)):
            return catalog_for_snapshot_directory(self._snapshot_directory)
        return location

    def _sqlite_recorder(self) -> SqliteSnapshotRecorder | None:
        """The light recorder, when the catalog is a SQLite file it may write (decided once).

        Not for a :class:`Catalog` given open (its caller chose it), a URL
        (PostgreSQL) or a file that is missing or not at the head revision:
        those go through the full Catalog.
        """
        if not self._recorder_tried:
            self._recorder_tried = True
            given_open = self._catalog_arg is not None and not isinstance(
                self._catalog_arg, (str, os.PathLike)
            )
            db_file = None if given_open else sqlite_path(self._catalog_location())
            if db_file is not None:
                self._recorder = SqliteSnapshotRecorder.open(
                    db_file, busy_timeout_s=self._lock_timeout_s
                )
        return self._recorder

    def _run_record(self) -> RunRecord:
        if self._run is None:
            run_dir = run_dir_of(self._snapshot_directory) or self._snapshot_directory
            configuration = read_configuration_text(run_dir)
            self._run = self.catalog.ensure_run(
                run_dir,
                configuration=configuration,
                model_name=model_name_of_text(configuration, run_dir / CONFIGURATION_FILE),
            )
        return self._run

    # -- internals -------------------------------------------------------------------------

    def _restore(self, snapshot: Snapshot, path: Path) -> None:
        """Give the communicator the message counts of the snapshot resumed from.

        This is MUSCLE3 0.10's restore. Adapters for releases that keep more
        state (MUSCLE3 0.11's timeline and message cache) override it.

        Args:
            snapshot: The snapshot resumed from.
            path: Its file, for error messages.
        """
        del path
        self._communicator.restore_message_counts(snapshot.port_message_counts)

    def _verified_origin(self, path: Path, sha256: str) -> int | None:
        """Check the file to resume from against the catalog; the id of the snapshot it is.

        A file the catalog recorded with other bytes has been changed since
        it was saved (edited, overwritten, damaged): resuming from it would
        silently start from a state nobody checked for consistency with its
        peers, so it is refused. A file the catalog does not know is resumed
        from as MUSCLE3 would. If the catalog cannot be read, the check is
        skipped with a warning, as saving goes on when the catalog cannot be
        written: the file itself decoded fine.

        Args:
            path: The file to resume from, as the manager named it.
            sha256: Hex digest of its bytes.

        Returns:
            The catalogued snapshot it is (matched by path, else by content,
            as :func:`catalog.lineage.origin_snapshot_id` does), or None.

        Raises:
            SnapshotFileError: The catalog recorded this path with another digest.
        """
        try:
            record = self.catalog.snapshot_by_path(path)
            if record is None:
                from catalog.lineage import origin_snapshot_id

                return origin_snapshot_id(self.catalog, path, sha256)
        except _catalog_errors() as exc:
            _logger.warning(
                "Could not look up %s in the snapshot catalog (%s); resuming from it unchecked.",
                path,
                exc,
            )
            return None
        if record.sha256 is not None and record.sha256 != sha256:
            raise SnapshotFileError(
                path,
                f"the file changed after the catalog recorded it as snapshot {record.id}: "
                f"recorded sha256 {record.sha256}, actual sha256 {sha256}. Resuming from it "
                "could break consistency with the other instances' snapshots; restore the "
                "original file or resume from another snapshot.",
            )
        return record.id

    def _discount_pre_received(self, counts: dict[str, list[int]]) -> None:
        """Lower the counts of ports whose next message was pre-received, as MUSCLE3 0.10 does."""
        ports = list(self._communicator.list_ports().get(Operator.F_INIT, []))
        if self._communicator.settings_in_connected():
            ports.append(SETTINGS_IN_PORT)
        for port in ports:
            if port in counts:
                counts[port] = [count - 1 for count in counts[port]]

    def _store_and_submit(
        self, snapshot: Snapshot, data: bytes | bytearray, copied_from: int | None = None
    ) -> None:
        stored = store_pack(self._snapshot_directory, self._instance, data, self._next_snapshot_num)
        self._next_snapshot_num = stored.next_number
        metadata, failure = self._record(snapshot, stored, copied_from)
        # The manager hears of the file even when the catalog failed: the file
        # is a complete snapshot, and the run can be resumed from it.
        self._manager.submit_snapshot_metadata(metadata)
        if failure is not None:
            raise failure

    def _record(
        self, snapshot: Snapshot, stored: StoredFile, copied_from: int | None
    ) -> tuple[SnapshotMetadata, CatalogWriteError | None]:
        """Record a stored file; the manager's metadata is built from what was recorded.

        Through the light recorder when it applies (see
        :meth:`_sqlite_recorder`), else through the full Catalog's
        :meth:`~catalog.catalog.Catalog.record_snapshot_metadata` (one round
        trip on PostgreSQL); neither reads the record back. If the catalog
        cannot be written (locked for longer than the lock timeout, disk full,
        read-only, damaged, database down) the snapshot file is safe on
        disk, and the manager gets the metadata from the file's content
        instead. What happens then is the
        user's choice (``MUSCLE_CATALOG_ON_ERROR``, see ``docs/saving.md``):
        by default a warning naming the cause, the catalog and the command
        that records the file later, and the simulation goes on; with
        ``raise``, that message as a :class:`CatalogWriteError`, returned
        for the caller to raise once the manager has been told.

        Returns:
            The metadata for the manager, and the error to raise (or None).
        """
        new = NewSnapshot(
            instance=self._instance,
            path=stored.path,
            snapshot_filename=str(stored.path),
            snapshot=snapshot,
            size_bytes=stored.size_bytes,
            sha256=stored.sha256,
            sequence=stored.number,
            copied_from_snapshot_id=copied_from,
        )
        try:
            recorder = self._sqlite_recorder()
            if recorder is not None:
                return self._record_light(recorder, new), None
            recorded = self.catalog.record_snapshot_metadata(self._run_record().id, new)
            return recorded.metadata, None
        except _catalog_errors() as exc:
            message = self._not_recorded_message(stored.path, exc)
            metadata = SnapshotMetadata.from_snapshot(snapshot, str(stored.path))
            if self._on_error == RAISE:
                error = CatalogWriteError(
                    message, path=stored.path, catalog=self._catalog_display()
                )
                error.__cause__ = exc
                return metadata, error
            _logger.warning("%s", message)
            return metadata, None

    def _not_recorded_message(self, path: Path, exc: BaseException) -> str:
        """The cause in words, the catalog, and the command that records the file later."""
        catalog = self._catalog_display()
        run_dir = run_dir_of(self._snapshot_directory) or self._snapshot_directory
        waited = self._catalog.lock_timeout_s if self._catalog is not None else self._lock_timeout_s
        reason = catalog_failure(exc, self._catalog_file(), waited)
        return (
            f"Snapshot {path} was saved, but the catalog {catalog} could not record it: "
            f"{reason}. The file is kept; record it later with "
            f"`muscle-catalog import --catalog {catalog} {run_dir}`."
        )

    def _catalog_display(self) -> str:
        """The catalog as messages name it: its path, or its URL without the password."""
        if self._catalog is not None:
            return self._catalog.location
        location = os.fspath(self._catalog_location())
        db_file = sqlite_path(location)
        if db_file is not None:
            return str(db_file)
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", location)

    def _catalog_file(self) -> Path | None:
        """The SQLite catalog file, or None (PostgreSQL), to look at its filesystem."""
        if self._catalog is not None:
            return Path(self._catalog.location) if self._catalog.root is not None else None
        return sqlite_path(self._catalog_location())

    def _record_light(self, recorder: SqliteSnapshotRecorder, new: NewSnapshot) -> SnapshotMetadata:
        """Record through the light recorder; the first save also finds or creates the run."""
        run_dir = run_dir_of(self._snapshot_directory) or self._snapshot_directory
        if self._recorder_run_id is not None:  # the run is known: no yMMSL to read again
            _run_id, _snapshot_id, metadata = recorder.record(
                self._recorder_run_id, new, run_dir=run_dir
            )
            return metadata
        configuration = read_configuration_text(run_dir)
        self._recorder_run_id, _snapshot_id, metadata = recorder.record(
            None,
            new,
            run_dir=run_dir,
            model_name=model_name_of_text(configuration, run_dir / CONFIGURATION_FILE),
            configuration=configuration,
        )
        return metadata


def _catalog_errors() -> tuple[type[Exception], ...]:
    """The errors that mean the catalog cannot be used now (logged; the save goes on).

    SQLAlchemy's and psycopg's errors count only once they are imported:
    before that, nothing can have raised one, and importing them to name them
    would cost every instance the start-up the light recorder saves. psycopg's
    own errors reach here from :mod:`catalog.db.pg_recorder`, which does not
    go through SQLAlchemy.
    """
    errors: tuple[type[Exception], ...] = (CatalogError, OSError, sqlite3.Error)
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc is not None:
        errors += (sqlalchemy_exc.SQLAlchemyError,)
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None:
        errors += (psycopg.Error,)
    return errors
