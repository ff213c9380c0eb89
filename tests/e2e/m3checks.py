"""Checks of ``catalog.muscle3`` against the libmuscle installed beside it (0.10 or 0.11).

Each check drives our snapshot manager and libmuscle's own with identical
inputs and compares what comes out: the bytes of every file, its name, the
metadata sent to the manager, the return values, and on resume what each
restores and hands back. They import only what the environment has, so the
same code runs in-process in the project's environment (MUSCLE3 0.10) and as
a subprocess with the Python of the MUSCLE3 0.11 environment::

    python m3checks.py byte_identity|cross_resume WORKDIR
    python m3checks.py reencode RUN_DIR...

A failed check raises AssertionError (exit code 1 from the command line).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libmuscle
import msgpack
import numpy as np
from libmuscle import Grid, Message
from libmuscle import mpp_message as lm_mpp
from libmuscle.snapshot_manager import SnapshotManager
from ymmsl import Operator, Settings
from ymmsl.v0_2 import Reference

from catalog.errors import SnapshotFileError
from catalog.muscle3.instance import Muscle3SnapshotManager, muscle3_version, pack_format_of

FORMATS = Path(__file__).resolve().parent.parent / "data" / "formats"
#: The ``.pack`` format of the installed MUSCLE3: 1 (0.10) or 2 (0.11).
PACK_FORMAT = pack_format_of(muscle3_version())

# libmuscle's own classes, untyped: their signatures differ between 0.10 and
# 0.11, and the type checker only sees the release of the project's environment.
TheirManager: Any = SnapshotManager
their_mpp: Any = lm_mpp


class _Colour(enum.IntEnum):
    RED = 1


# --------------------------------------------------------------------------- fakes


class _Manager:
    """Stands for libmuscle's MMP client: collects the submitted metadata."""

    def __init__(self) -> None:
        self.metadata: list[Any] = []

    def submit_snapshot_metadata(self, metadata: Any) -> None:
        self.metadata.append(metadata)


class _Peer:
    """Stands for 0.10's PortManager and 0.11's Communicator, recording what is restored."""

    def __init__(
        self,
        counts: dict[str, list[int]] | None = None,
        ports: dict[Operator, list[str]] | None = None,
        settings_in_connected: bool = False,
    ) -> None:
        self._counts = counts or {}
        self._ports = ports or {}
        self._settings_in = settings_in_connected
        self.restored: Any = None

    def get_message_counts(self) -> dict[str, list[int]]:
        return {port: list(slots) for port, slots in self._counts.items()}

    def list_ports(self) -> dict[Operator, list[str]]:
        return {operator: list(names) for operator, names in self._ports.items()}

    def settings_in_connected(self) -> bool:
        return self._settings_in

    def restore_message_counts(self, counts: dict[str, list[int]]) -> None:
        self.restored = counts

    def restore_state(self, state: Any) -> None:
        self.restored = state


# --------------------------------------------------------------------------- inputs


def _communicator_state(counts: dict[str, list[int]], with_cache: bool) -> Any:
    """A real MUSCLE3 0.11 CommunicatorState: timeline state, and a cached F_INIT message."""
    from libmuscle.communicator_state import CommunicatorState
    from libmuscle.timeline_manager import TimelineState

    timeline = TimelineState(
        iteration=[3],
        send_participated=[("o_f", None)],
        subtimeline_states={
            "": {
                "iteration": [0],
                "first_operator": "O_I",
                "send_participated": [("o_i", 1)],
                "receive_participated": [("s", None)],
            }
        },
    )
    cache: dict[tuple[str, int | None], Any] = {}
    if with_cache:
        cached = their_mpp.MPPMessage(
            Reference("macro.o_i"), Reference("micro.f_i"), None, 0.75, None,
            Settings({"micro.dt": 0.01}), 3, Grid(np.arange(3.0), ["x"]), [3],
        )  # fmt: skip
        cache[("f_i", None)] = cached
    return CommunicatorState(counts, timeline, cache)


def _payloads() -> dict[str, Any]:
    """Every kind of value libmuscle stores, in libmuscle's own classes."""
    matrix = np.arange(12, dtype=np.float64).reshape(3, 4) / 4
    payloads: dict[str, Any] = {
        "none": None,
        "scalars": [True, False, 0, -1, 2**63 - 1, 2**64 - 1, -(2**63), 1.5, math.inf, "t", b"b"],
        "containers": {"t": (1, (2, 3)), "od": OrderedDict([("b", 1), ("a", 2)]), 7: "int key"},
        "odd_builtins": [bytearray(b"ab"), memoryview(b"cd"), _Colour.RED, np.float64(2.5)],
        "msgpack_types": [msgpack.ExtType(42, b"xy"), msgpack.Timestamp(1, 2)],
        "grid_c_indexes": Grid(np.arange(6, dtype=np.float64).reshape(2, 3), ["x", "y"]),
        "grid_fortran": Grid(np.asfortranarray(matrix), ["i", "j"]),
        "grid_fortran_int32": Grid(np.asfortranarray(np.arange(6, dtype=np.int32).reshape(3, 2))),
        "array_top_level": matrix,
        "arrays": [
            np.arange(5, dtype=np.int32), np.arange(4, dtype=np.int64).reshape(2, 2),
            np.linspace(0, 1, 3, dtype=np.float32), np.array([[True, False], [False, True]]),
            np.asfortranarray(matrix), matrix[:, ::2], np.array(5.0), np.zeros((0, 3)),
        ],
        "nested": {
            "state": Grid(np.linspace(0.0, 1.0, 8), ["x"]),
            "history": [{"t": 0.1, "g": Grid(np.ones((2, 2), dtype=np.float32))}, None],
            "params": Settings({"alpha": 0.5, "beta": [1.0, 2.0], "gamma": [[1.0], [2.0]]}),
        },
        "settings": Settings({"a": 1, "name": "x", "flag": True}),
    }  # fmt: skip
    if PACK_FORMAT == 1:
        payloads["close_port"] = [their_mpp.ClosePort(), {"end": their_mpp.ClosePort()}]
    else:
        payloads["milestone"] = [their_mpp.Milestone([2, 1]), {"end": their_mpp.Milestone([])}]
    return payloads


@dataclasses.dataclass
class Save:
    """One call of ``save_snapshot``, and the peer state around it."""

    name: str
    instance: str
    message: Any
    final: bool = False
    counts: dict[str, list[int]] = dataclasses.field(default_factory=lambda: {"o_i": [2]})
    ports: dict[Operator, list[str]] = dataclasses.field(default_factory=dict)
    settings_in_connected: bool = False
    overlay: Settings = dataclasses.field(default_factory=Settings)
    f_init_max_timestamp: float | None = None
    with_cache: bool = False

    def arguments(self) -> list[Any]:
        arguments = [
            self.message, self.final, ["simulation_time >= 0.5", "at_end"], 12.25,
            self.f_init_max_timestamp, self.overlay,
        ]  # fmt: skip
        if PACK_FORMAT == 2:
            arguments.append(_communicator_state(self.counts, self.with_cache))
        return arguments

    def peer(self) -> _Peer:
        return _Peer(self.counts, self.ports, self.settings_in_connected)


def saves() -> list[Save]:
    """The calls compared: every payload, final snapshots, implicit ones, odd counts."""
    calls = [
        Save(f"payload-{name}", "macro", Message(0.5, 0.75, data, Settings({"k": -1.5})))
        for name, data in _payloads().items()
    ]
    f_init = {Operator.F_INIT: ["f_i", "unconnected"], Operator.O_F: ["o_f"]}
    final_counts = {"f_i": [4], "unconnected": [0], "o_f": [3], "muscle_settings_in": [4]}
    calls += [
        Save("int-timestamps", "micro[2]", Message(1, 2, [1, 2])),
        Save("infinite-timestamps", "a.b[1][2]", Message(-math.inf, math.inf, None)),
        Save("vector-counts", "macro", Message(0.3, None, 1), counts={"o_i": [3, 4], "s": [3, 3]}),
        Save(
            "final-unconnected-f-init-and-settings-in", "micro[0]",
            Message(0.65, None, Grid(np.ones(3), ["x"])), final=True, counts=final_counts,
            ports=f_init, settings_in_connected=True, f_init_max_timestamp=0.82, with_cache=True,
        ),
        Save(
            "implicit-final", "micro[1]", None, final=True, counts=final_counts, ports=f_init,
            overlay=Settings({"micro.dt": 0.5}), f_init_max_timestamp=0.7,
        ),
        Save("implicit-no-f-init-timestamp", "micro", None, final=True, counts={"f_i": [1]}),
        Save("overlay", "macro", Message(0.1, 0.2, "x"), overlay=Settings({"dt": 0.1, "v": [1.0]})),
    ]  # fmt: skip
    return calls


# --------------------------------------------------------------------------- comparison


def _metadata(metadata: Any) -> dict[str, Any]:
    """Submitted metadata as a dict, with the file's name only and NaN made comparable."""
    fields = dataclasses.asdict(metadata)
    fields["snapshot_filename"] = Path(fields["snapshot_filename"]).name
    if isinstance(fields["timestamp"], float) and math.isnan(fields["timestamp"]):
        fields["timestamp"] = "NaN"
    return fields


def same_value(ours: Any, theirs: Any, where: str = "data") -> None:
    """Assert that two loaded values are equal and of the same (libmuscle) classes."""
    assert type(ours) is type(theirs), f"{where}: {type(ours)} != {type(theirs)}"
    if isinstance(ours, Grid):
        assert ours.indexes == theirs.indexes, where
        assert ours.array.dtype == theirs.array.dtype, where
        np.testing.assert_array_equal(ours.array, theirs.array)
        assert ours.array.flags.f_contiguous == theirs.array.flags.f_contiguous, where
    elif isinstance(ours, dict):
        assert list(ours) == list(theirs), where
        for key in ours:
            same_value(ours[key], theirs[key], f"{where}[{key!r}]")
    elif isinstance(ours, list):
        assert len(ours) == len(theirs), where
        for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            same_value(a, b, f"{where}[{index}]")
    elif isinstance(ours, Settings):
        assert ours.as_ordered_dict() == theirs.as_ordered_dict(), where
    elif type(ours).__name__ in ("ClosePort", "Milestone"):
        assert getattr(ours, "iteration", None) == getattr(theirs, "iteration", None), where
    else:
        assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"


def _only_file(directory: Path) -> Path:
    (path,) = sorted(directory.glob("*.pack"))
    return path


# --------------------------------------------------------------------------- checks


def byte_identity(workdir: Path) -> int:
    """Every save writes the bytes, name and metadata libmuscle's own manager does.

    Returns:
        How many saves were compared.
    """
    calls = saves()
    for number, call in enumerate(calls):
        theirs_dir, ours_dir = workdir / "theirs" / str(number), workdir / "ours" / str(number)
        their_manager, our_manager = _Manager(), _Manager()
        theirs = TheirManager(Reference(call.instance), their_manager, call.peer())
        ours = Muscle3SnapshotManager(
            Reference(call.instance), our_manager, call.peer(), PACK_FORMAT,
            catalog=workdir / "catalog.sqlite",
        )  # fmt: skip
        for manager, directory in ((theirs, theirs_dir), (ours, ours_dir)):
            directory.mkdir(parents=True)  # MUSCLE3's manager makes it; libmuscle does not
            assert manager.prepare_resume(None, directory) is None
        returned_theirs = theirs.save_snapshot(*call.arguments())
        returned_ours = ours.save_snapshot(*call.arguments())
        ours.close()
        expected, written = _only_file(theirs_dir), _only_file(ours_dir)
        assert written.name == expected.name, call.name
        assert written.read_bytes() == expected.read_bytes(), f"{call.name}: bytes differ"
        assert returned_ours == returned_theirs, call.name
        (their_metadata,), (our_metadata,) = their_manager.metadata, our_manager.metadata
        assert _metadata(our_metadata) == _metadata(their_metadata), call.name
    return len(calls)


def _resume_both(path: Path, workdir: Path) -> None:
    """Resume libmuscle's manager and ours from one file; both must do the same."""
    their_manager, our_manager = _Manager(), _Manager()
    their_peer, our_peer = _Peer(), _Peer()
    theirs = TheirManager(Reference("macro"), their_manager, their_peer)
    ours = Muscle3SnapshotManager(
        Reference("macro"), our_manager, our_peer, PACK_FORMAT, catalog=workdir / "catalog.sqlite"
    )
    (workdir / "resumed-theirs").mkdir()
    returned_theirs = theirs.prepare_resume(path, workdir / "resumed-theirs")
    returned_ours = ours.prepare_resume(path, workdir / "resumed-ours")
    ours.close()
    assert returned_ours == returned_theirs
    if PACK_FORMAT == 1:
        assert our_peer.restored == their_peer.restored
    else:
        assert our_peer.restored.asdict() == their_peer.restored.asdict()
    assert our_peer.restored is not None
    assert ours.resume_overlay is not None and theirs.resume_overlay is not None
    assert ours.resume_overlay.as_ordered_dict() == theirs.resume_overlay.as_ordered_dict()
    assert ours.resuming_from_final() == theirs.resuming_from_final()
    assert ours.resuming_from_intermediate() == theirs.resuming_from_intermediate()
    if ours.resuming_from_final() or ours.resuming_from_intermediate():
        loaded_ours, loaded_theirs = ours.load_snapshot(), theirs.load_snapshot()
        assert type(loaded_ours) is Message
        assert loaded_ours.timestamp == loaded_theirs.timestamp
        assert loaded_ours.next_timestamp == loaded_theirs.next_timestamp
        same_value(loaded_ours.settings, loaded_theirs.settings, "settings")
        same_value(loaded_ours.data, loaded_theirs.data)
    copy_theirs = _only_file(workdir / "resumed-theirs")
    copy_ours = _only_file(workdir / "resumed-ours")
    assert copy_ours.name == copy_theirs.name
    assert copy_ours.read_bytes() == copy_theirs.read_bytes() == path.read_bytes()
    (their_metadata,), (our_metadata,) = their_manager.metadata, our_manager.metadata
    assert _metadata(our_metadata) == _metadata(their_metadata)


def cross_resume(workdir: Path) -> int:
    """Files libmuscle wrote resume in ours and files we wrote resume in libmuscle, alike.

    For each writer and each kind of snapshot (intermediate with every
    payload, final, implicit), libmuscle's manager and ours resume from the
    same file and must restore the same state, hand back equal messages of
    libmuscle's classes and store byte-identical copies. A file of the other
    format is refused with a clear error.

    Returns:
        How many files were resumed from.
    """
    calls = [c for c in saves() if c.name in ("payload-nested", "payload-grid_fortran")]
    calls += [c for c in saves() if c.final]
    resumed = 0
    for number, call in enumerate(calls):
        for writer in ("theirs", "ours"):
            directory = workdir / f"{writer}-{number}"
            if writer == "theirs":
                manager: Any = TheirManager(Reference("macro"), _Manager(), call.peer())
            else:
                manager = Muscle3SnapshotManager(
                    Reference("macro"), _Manager(), call.peer(), PACK_FORMAT,
                    catalog=workdir / "catalog.sqlite",
                )  # fmt: skip
            (directory / "saved").mkdir(parents=True)
            manager.prepare_resume(None, directory / "saved")
            manager.save_snapshot(*call.arguments())
            _resume_both(_only_file(directory / "saved"), directory)
            resumed += 1

    other = FORMATS / ("v2" if PACK_FORMAT == 1 else "v1") / "msg_dict.pack"
    refusing = Muscle3SnapshotManager(
        Reference("macro"), _Manager(), _Peer(), PACK_FORMAT, catalog=workdir / "catalog.sqlite"
    )
    try:
        refusing.prepare_resume(other, workdir / "other-format")
    except SnapshotFileError as exc:
        assert str(other) in str(exc) and f"resumes only from format {PACK_FORMAT}" in str(exc)
    else:
        raise AssertionError(f"resuming from {other} (the other format) was not refused")
    finally:
        refusing.close()
    return resumed


def reencode(*run_dirs: Path) -> int:
    """Every ``.pack`` of the runs is what libmuscle writes again after loading it.

    Returns:
        How many files were checked.
    """
    checked = 0
    for run_dir in run_dirs:
        packs = sorted(run_dir.glob("instances/*/snapshots/*.pack"))
        assert packs, f"no snapshots in {run_dir}"
        for pack in packs:
            snapshot = TheirManager.load_snapshot_from_file(pack)
            again = snapshot.SNAPSHOT_VERSION_BYTE + snapshot.to_bytes()
            assert again == pack.read_bytes(), f"{pack}: libmuscle would write other bytes"
            checked += 1
    return checked


CHECKS: dict[str, Callable[..., int]] = {
    "byte_identity": byte_identity,
    "cross_resume": cross_resume,
    "reencode": reencode,
}


if __name__ == "__main__":
    check, *paths = sys.argv[1:]
    count = CHECKS[check](*map(Path, paths))
    print(f"{check}: {count} compared, libmuscle {libmuscle.__version__}")
