"""``catalog.muscle3.Instance``: libmuscle's Instance, with its snapshots saved and recorded by us.

A MUSCLE3 component changes one line::

    from catalog.muscle3 import Instance  # was: from libmuscle import Instance

and everything else stays libmuscle's: the constructor, every method, the
``Message`` and ``Grid`` classes the program uses. Only the snapshots differ:
they are written by :class:`catalog.instance.SnapshotManager` (temporary
file, fsync, a link that never overwrites, directory fsync, then the catalog
row, and the manager is told the recorded metadata), with the very bytes
libmuscle would have written, so plain libmuscle resumes from our files and
we resume from its files.

Supported are MUSCLE3 0.10.x, whose ``.pack`` files are format 1, and 0.11.x,
format 2 (with its communicator state). Any other release is refused when the
Instance is created, before it registers with the manager, because the
snapshot machinery this adapter plugs into is private to libmuscle and
changed between those two releases.

How it plugs in: libmuscle's ``Instance.__init__`` builds its own snapshot
manager and then, in ``_setup_checkpointing``, has it load the snapshot to
resume from, store a copy of it and tell the manager. Replacing the manager
after ``__init__`` would be too late, so :class:`Instance` overrides
``_setup_checkpointing`` to put ours in place first. libmuscle's manager is
discarded unused (its constructor does no I/O). The calls libmuscle makes
on a snapshot manager are the same in both releases except for
``save_snapshot``, which 0.11 gives the communicator state;
:class:`Muscle3SnapshotManager` translates both to the version-independent
core and hands libmuscle its own types back.

Resuming differs from libmuscle in two deliberate ways: a file the catalog
recorded with other bytes is refused (see
:meth:`catalog.instance.SnapshotManager.prepare_resume`), and so is a file
of the other format, with an error that says which MUSCLE3 wrote it (each
libmuscle release reads only its own format and fails with a vaguer error).
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path
from typing import Any

from ymmsl import Operator, Settings

from catalog.errors import CatalogError, SnapshotFileError, SnapshotWriteError
from catalog.instance import SnapshotManager
from catalog.message import Message
from catalog.payload import PayloadTypes
from catalog.snapshot import FORMAT_V1, FORMAT_V2, Snapshot

try:
    import libmuscle
    from libmuscle import InstanceFlags, mpp_message
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "catalog.muscle3.Instance runs inside MUSCLE3, which is not installed in this "
        "environment. Install a supported release: pip install 'muscle3>=0.10,<0.12'"
    ) from _missing

#: MUSCLE3 release series (major, minor) supported -> the ``.pack`` format it writes and reads.
PACK_FORMAT_OF_SERIES = {(0, 10): FORMAT_V1, (0, 11): FORMAT_V2}
#: The supported releases, as error messages name them.
SUPPORTED_RELEASES = "0.10.x and 0.11.x"

_MUSCLE3_OF_FORMAT = {FORMAT_V1: "0.7 to 0.10", FORMAT_V2: "0.11"}
_NO_FLAGS = InstanceFlags(0)


class UnsupportedMuscle3Error(CatalogError):
    """The installed MUSCLE3 is not a release :class:`Instance` supports."""


def muscle3_version() -> str:
    """The version of the installed ``muscle3`` distribution (the one libmuscle reports)."""
    try:
        return importlib.metadata.version("muscle3")
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(libmuscle, "__version__", "unknown"))


def pack_format_of(version: str) -> int:
    """The ``.pack`` format a MUSCLE3 release writes, if this adapter supports that release.

    Only the major and minor number count, so patch releases and
    pre-releases (``0.11.1``, ``0.10.1rc1``) of a supported series are accepted.

    Args:
        version: A MUSCLE3 version string.

    Returns:
        1 for MUSCLE3 0.10.x, 2 for 0.11.x.

    Raises:
        UnsupportedMuscle3Error: Any other release; the message names the supported ones.
    """
    match = re.match(r"(\d+)\.(\d+)", version)
    series = (int(match[1]), int(match[2])) if match else None
    pack_format = PACK_FORMAT_OF_SERIES.get(series) if series else None
    if pack_format is None:
        raise UnsupportedMuscle3Error(
            f"catalog.muscle3.Instance supports MUSCLE3 {SUPPORTED_RELEASES}, but muscle3 "
            f"{version} is installed. Install a supported release "
            "(pip install 'muscle3>=0.10,<0.12'), or use libmuscle.Instance and record the "
            "run afterwards with `muscle-catalog import`."
        )
    return pack_format


def libmuscle_payload_types(pack_format: int) -> PayloadTypes:
    """The classes libmuscle uses for grids and port markers, for the codec.

    MUSCLE3 0.10 has ClosePort (ext type 0 of format 1), 0.11 has Milestone
    (ext type 0 of format 2); each release has only its own.
    """
    marker = "ClosePort" if pack_format == FORMAT_V1 else "Milestone"
    marker_class = getattr(mpp_message, marker, None)
    if pack_format == FORMAT_V1:
        return PayloadTypes(grid=libmuscle.Grid, close_port=marker_class, milestone=None)
    return PayloadTypes(grid=libmuscle.Grid, close_port=None, milestone=marker_class)


class Muscle3SnapshotManager(SnapshotManager):
    """The catalog's SnapshotManager as libmuscle's Instance calls it, in libmuscle's types.

    Messages are handed over without copying the program's state: only the
    top-level ``Message`` is rewrapped, and the codec accepts and builds
    ``libmuscle.Grid`` and libmuscle's port markers directly (see
    :class:`catalog.payload.PayloadTypes`).

    Args:
        instance_id: The instance's name (libmuscle's ``Reference``).
        manager: libmuscle's MMP client, which submits the metadata.
        peer: What holds the message counts: the ``PortManager`` (0.10) or
            the ``Communicator`` (0.11), as libmuscle's own snapshot manager gets.
        pack_format: 1 (MUSCLE3 0.10) or 2 (MUSCLE3 0.11).
        catalog: Where to record; None for the default (see :mod:`catalog.instance`).
    """

    def __init__(
        self, instance_id: Any, manager: Any, peer: Any, pack_format: int, catalog: Any = None
    ) -> None:
        super().__init__(
            instance_id, manager, peer, catalog, payload_types=libmuscle_payload_types(pack_format)
        )
        self._pack_format = pack_format

    def load_snapshot(self) -> Any:
        """The message to resume from, as a ``libmuscle.Message`` holding libmuscle's Grids."""
        message = super().load_snapshot()
        return libmuscle.Message(
            message.timestamp, message.next_timestamp, message.data, message.settings
        )

    def save_snapshot(
        self,
        msg: Any,
        final: bool,
        triggers: list[str],
        wallclock_time: float,
        f_init_max_timestamp: float | None,
        settings_overlay: Settings,
        communicator_state: Any = None,
    ) -> float:
        """Save a snapshot as libmuscle's Instance asks (``communicator_state`` from 0.11 only).

        The communicator state is turned into its plain form at this moment,
        as libmuscle does when it writes the file: 0.11 hands over its live
        message cache, so a later conversion could store a different cache.

        Args:
            msg: A ``libmuscle.Message``, or None for an implicit snapshot.
            final: True for a final snapshot.
            triggers: What triggered it.
            wallclock_time: Seconds since the manager started.
            f_init_max_timestamp: For final snapshots, the largest timestamp
                of the pre-received F_INIT messages.
            settings_overlay: The current settings overlay.
            communicator_state: MUSCLE3 0.11's ``CommunicatorState``.

        Returns:
            What libmuscle's snapshot manager returns: the simulation time
            the snapshot stands for.

        Raises:
            SnapshotWriteError: The state cannot be stored or the file not
                written (disk full, read-only, permission denied; nothing is
                left behind), as libmuscle's own save raises on such errors.
            CatalogWriteError: Only with ``MUSCLE_CATALOG_ON_ERROR=raise``: the
                file was stored and the manager told, but the catalog could
                not record it (see ``docs/saving.md``).
        """
        state: dict[str, Any] | None = None
        if self._pack_format == FORMAT_V2:
            if communicator_state is None:
                raise SnapshotWriteError(
                    "MUSCLE3 0.11 passes the communicator state to save_snapshot, but none came"
                )
            state = communicator_state.asdict()
        message = (
            None
            if msg is None
            else Message(msg.timestamp, msg.next_timestamp, msg.data, msg.settings)
        )
        return super().save_snapshot(
            message, final, triggers, wallclock_time, f_init_max_timestamp, settings_overlay, state
        )

    def _restore(self, snapshot: Snapshot, path: Path) -> None:
        """Restore the counts (0.10) or the whole communicator state (0.11) of the snapshot.

        Raises:
            SnapshotFileError: The file is of the other format, which this
                MUSCLE3 release cannot resume from (format 1 has no timeline
                state or message cache for 0.11; 0.10 cannot read format 2).
        """
        if snapshot.format_version != self._pack_format:
            raise SnapshotFileError(
                path,
                f"it is a format {snapshot.format_version} snapshot, written by MUSCLE3 "
                f"{_MUSCLE3_OF_FORMAT.get(snapshot.format_version, '(unknown)')}, and this "
                f"instance runs MUSCLE3 {muscle3_version()}, which resumes only from format "
                f"{self._pack_format} snapshots. Resume with the MUSCLE3 release that wrote it.",
            )
        if self._pack_format == FORMAT_V1:
            super()._restore(snapshot, path)
            return
        from libmuscle.communicator_state import CommunicatorState

        self._communicator.restore_state(CommunicatorState.fromdict(snapshot.communicator_state))


class Instance(libmuscle.Instance):
    """``libmuscle.Instance`` whose snapshots are saved and recorded by the catalog.

    Use it exactly like ``libmuscle.Instance`` (same constructor and
    methods); see the module documentation for what changes underneath.
    Inside MUSCLE3 the files are byte-identical to libmuscle's, which
    includes two choices made for that reason: a final snapshot's count of a
    declared but unconnected F_INIT port is -1 under MUSCLE3 0.10 (as
    libmuscle writes it; harmless, since only connected ports are compared),
    and when not resuming the settings overlay is left alone (no empty
    overlay is applied), as libmuscle's own manager does.

    The catalog is ``$MUSCLE_SNAPSHOT_CATALOG`` if set, else the nearest
    ``snapshot_catalog.sqlite`` in the run directory or above it, else a new
    one in the run directory (see :mod:`catalog.location`).

    Args:
        ports: The ports of the component per operator, as for libmuscle.
        flags: The instance's flags, as for libmuscle.

    Raises:
        UnsupportedMuscle3Error: The installed MUSCLE3 is neither 0.10.x nor
            0.11.x; raised before anything is sent to the manager.
    """

    def __init__(
        self, ports: dict[Operator, list[str]] | None = None, flags: InstanceFlags = _NO_FLAGS
    ) -> None:
        self._catalog_pack_format = pack_format_of(muscle3_version())
        self._catalog_snapshots: Muscle3SnapshotManager | None = None
        super().__init__(ports, flags)

    def _setup_checkpointing(self) -> None:
        """Put our snapshot manager in place, then let libmuscle set up checkpointing with it.

        libmuscle calls this from ``__init__`` after connecting to the peers;
        it then calls ``prepare_resume`` on the manager. An error of ours
        there (a broken or changed resume file) shuts the instance down with
        that message first, so that the manager and the peers learn why.
        """
        # Ours gets what libmuscle gave its own: the MMP client that submits
        # metadata, and the PortManager (0.10) or Communicator (0.11).
        replaced = self._snapshot_manager
        peer = self._port_manager if self._catalog_pack_format == FORMAT_V1 else self._communicator
        try:
            # Constructing it reads the MUSCLE_CATALOG_* settings: a bad one stops here.
            manager = Muscle3SnapshotManager(
                self._instance_id, replaced._manager, peer, self._catalog_pack_format
            )
            self._catalog_snapshots = manager
            self._snapshot_manager = manager  # type: ignore[assignment]
            super()._setup_checkpointing()
        except CatalogError as exc:
            self.error_shutdown(str(exc))
            raise

    def _deregister(self) -> None:
        """Deregister from the manager as libmuscle does, then close our catalog connection."""
        try:
            super()._deregister()
        finally:
            if self._catalog_snapshots is not None:
                self._catalog_snapshots.close()
