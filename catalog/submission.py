"""What an instance submits to the manager, checked at the registry's door.

The registry runs inside MUSCLE3's manager and takes whatever the instances
send. One bad submission (a count beyond what the database can store, a NUL
byte PostgreSQL refuses, an instance the model does not have, a timestamp that is
a string) must be turned away on its own, with a message that names the
instance, the file and the problem, and never reach the database or the
workflow-snapshot search, where it would fail a whole batch or raise a bare
KeyError far from its cause. :class:`SubmissionChecker` does that check once,
as the submission arrives, and gives back a normalised :class:`Submission`
(a copy: nothing the caller changes later reaches the registry's thread).

:func:`new_snapshot` turns an accepted submission into the catalog record the
registry writes when the instance did not record it itself; the spill-file
replay (:mod:`catalog.spill`) builds the same record, so both agree.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import numbers
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.enums import SnapshotStatus
from catalog.errors import CatalogError, SnapshotFileError
from catalog.naming import parse_pack_name, validate_instance
from catalog.records import MetadataSnapshot, NewSnapshot
from catalog.snapshot import SnapshotMetadata
from catalog.topology import Topology

_logger = logging.getLogger(__name__)

#: Message counts must be below this: the database stores them as signed 64-bit integers.
COUNT_LIMIT = 2**63
#: The lowest count MUSCLE3 sends: -1 for a component's unconnected F_INIT port after the
#: first reuse (a real MUSCLE3 0.10 run does, see tests/data/runs/v0.10/dispatch).
LOWEST_COUNT = -1

#: What a port name looks like (a yMMSL identifier).
_PORT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: The fields a submission's metadata must have: MUSCLE3's, as our dataclass mirrors them.
_FIELDS = tuple(field.name for field in dataclasses.fields(SnapshotMetadata))


class SubmissionError(CatalogError):
    """A submission the registry cannot take; the message names instance, file and problem."""


@dataclass(frozen=True)
class Submission:
    """One snapshot as the manager received it, checked and normalised.

    Attributes:
        instance: Who saved it.
        metadata: What it said about it, as our SnapshotMetadata.
    """

    instance: str
    metadata: SnapshotMetadata

    @staticmethod
    def from_metadata(instance: object, metadata: Any) -> Submission:
        """Accept our SnapshotMetadata, MUSCLE3's, or a dict of its fields, without a model.

        Checks everything :class:`SubmissionChecker` checks except membership
        of a model (instances and ports).

        Raises:
            SubmissionError: The submission is malformed.
        """
        return SubmissionChecker(None).check(instance, metadata)


class SubmissionChecker:
    """Checks submissions against the model's instances and ports."""

    def __init__(self, topology: Topology | None) -> None:
        """Prepare the checks for a model.

        Port names are checked for their form only, not against the
        configuration: instances declare their ports in their code, and the
        configuration lists only some (a real MUSCLE3 0.10 run,
        tests/data/runs/v0.10/rd_python, submits counts for a port that
        neither its ``ports`` section nor a conduit names). Turning such a
        submission away would lose a good snapshot; a port nobody connects
        plays no part in the search.

        Args:
            topology: The model's instances; None to skip the instance check.
        """
        self._topology = topology
        self._known: set[str] = set()  # instance names checked already

    def check(self, instance: object, metadata: Any) -> Submission:
        """Check one submission and return its normalised copy.

        Args:
            instance: The instance (a ymmsl Reference or its string).
            metadata: Its SnapshotMetadata (ours or MUSCLE3's) or a dict of the fields.

        Raises:
            SubmissionError: What is wrong, naming the instance and the file.
        """
        try:
            checked_instance = self._instance(instance)
            checked = _metadata(metadata)
        except _ProblemError as problem:
            name = _text_or_none(instance)
            filename = _filename_for_message(metadata)
            raise SubmissionError(
                f"Rejected the snapshot submitted by {name or 'an unnamed instance'!r} "
                f"({filename}): {problem}. The instance sent metadata the registry cannot "
                "record; the rest of the run is not affected."
            ) from None
        return Submission(checked_instance, checked)

    def _instance(self, instance: object) -> str:
        text = _text_or_none(instance)
        if text is None:
            raise _ProblemError(f"the instance name is a {type(instance).__name__}, not text")
        if text in self._known:
            return text
        _no_nul(text, "the instance name")
        try:
            name = _valid_instance(text)
            if self._topology is not None:
                self._topology.component_of(name)
        except CatalogError as exc:
            raise _ProblemError(str(exc).rstrip(".")) from None
        self._known.add(name)
        return name


class _ProblemError(Exception):
    """One thing wrong with a submission, phrased for the user."""


@functools.lru_cache(maxsize=65536)
def _valid_instance(name: str) -> str:
    """Instance names repeat with every submission; check each once."""
    return validate_instance(name)


def _text_or_none(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if type(value).__name__ == "Reference":  # ymmsl's; not imported to keep start-up light
        return str(value)
    return None


def _filename_for_message(metadata: Any) -> str:
    try:
        value = _get(metadata, "snapshot_filename")
    except _ProblemError:
        return "no file name"
    if isinstance(value, (str, os.PathLike)):
        return repr(os.fspath(value)).replace("\\x00", "\\0")
    return "no usable file name"


def _get(metadata: Any, name: str) -> Any:
    if type(metadata) is dict or isinstance(metadata, Mapping):  # a dict skips the ABC check
        if name not in metadata:
            raise _ProblemError(f"the metadata has no {name!r}")
        return metadata[name]
    if not hasattr(metadata, name):
        raise _ProblemError(f"the metadata ({type(metadata).__name__}) has no {name!r}")
    return getattr(metadata, name)


def _metadata(metadata: Any) -> SnapshotMetadata:
    values = {name: _get(metadata, name) for name in _FIELDS}
    next_timestamp = values["next_timestamp"]
    return SnapshotMetadata(
        triggers=_triggers(values["triggers"]),
        wallclock_time=_number(values["wallclock_time"], "wallclock_time"),
        timestamp=_number(values["timestamp"], "timestamp"),
        next_timestamp=(
            None if next_timestamp is None else _number(next_timestamp, "next_timestamp")
        ),
        port_message_counts=_counts(values["port_message_counts"]),
        is_final_snapshot=_flag(values["is_final_snapshot"]),
        snapshot_filename=_filename(values["snapshot_filename"]),
    )


def _no_nul(text: str, what: str) -> None:
    if "\x00" in text:
        raise _ProblemError(f"{what} contains a NUL byte, which no catalog can store")


def _triggers(value: Any) -> list[str]:
    if type(value) is not list and (
        isinstance(value, (str, bytes)) or not isinstance(value, Sequence)
    ):
        raise _ProblemError(f"triggers is a {type(value).__name__}, not a list of text")
    for trigger in value:
        if not isinstance(trigger, str):
            raise _ProblemError(f"trigger {trigger!r} is a {type(trigger).__name__}, not text")
        _no_nul(trigger, "a trigger")
    return list(value)


def _number(value: Any, name: str) -> float:
    if type(value) is not float and (
        isinstance(value, bool) or not isinstance(value, numbers.Real)
    ):
        raise _ProblemError(f"{name} is {value!r} ({type(value).__name__}), not a number")
    result = float(value)
    if name == "wallclock_time" and math.isnan(result):
        raise _ProblemError("wallclock_time is NaN")
    return result


def _counts(value: Any) -> dict[str, list[int]]:
    if type(value) is not dict and not isinstance(value, Mapping):
        raise _ProblemError(f"port_message_counts is a {type(value).__name__}, not a map of ports")
    counts: dict[str, list[int]] = {}
    for port, slots in value.items():
        if not isinstance(port, str):
            raise _ProblemError(f"port name {port!r} is a {type(port).__name__}, not text")
        _check_port_name(port)
        # the common cases, checked fast: a port with one slot; a vector port, with a
        # count per slot, in every submission
        if type(slots) is list and len(slots) == 1:
            count = slots[0]
            if type(count) is int and LOWEST_COUNT <= count < COUNT_LIMIT:
                counts[port] = [count]
                continue
        if type(slots) is list and all(type(c) is int for c in slots):
            if slots and not (min(slots) >= LOWEST_COUNT and max(slots) < COUNT_LIMIT):
                _check_count(port, min(slots) if min(slots) < LOWEST_COUNT else max(slots))
            counts[port] = list(slots)
            continue
        if isinstance(slots, (str, bytes)) or not isinstance(slots, Sequence):
            raise _ProblemError(
                f"the counts of port {port!r} are a {type(slots).__name__}, not a list of counts"
            )
        counts[port] = [_check_count(port, count) for count in slots]
    return counts


@functools.lru_cache(maxsize=4096)
def _check_port_name(port: str) -> None:
    """Port names repeat with every submission; check each once."""
    _no_nul(port, "a port name")
    if not _PORT_RE.fullmatch(port):
        raise _ProblemError(f"{port!r} is not a port name (letters, digits and _)")


def _check_count(port: str, count: Any) -> int:
    if isinstance(count, bool) or not isinstance(count, numbers.Integral):
        raise _ProblemError(f"port {port!r} has count {count!r}, which is not a whole number")
    number = int(count)
    if not LOWEST_COUNT <= number < COUNT_LIMIT:
        raise _ProblemError(
            f"port {port!r} has count {number}, outside -1 .. 2**63-1 (message counts "
            "are never below MUSCLE3's -1, and the catalog stores 64-bit counts)"
        )
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise _ProblemError(f"is_final_snapshot is {value!r}, not true or false")


def _filename(value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise _ProblemError(f"snapshot_filename is a {type(value).__name__}, not a path")
    text = os.fspath(value)
    if not isinstance(text, str) or not text:
        raise _ProblemError("snapshot_filename is empty")
    _no_nul(text, "the file name")
    return text


def new_snapshot(submission: Submission, path: Path) -> NewSnapshot:
    """A catalog record for a submission the instance did not record itself.

    The file is read when it is there, so the row holds what the file holds;
    otherwise (or if it cannot be read) the row is built from the metadata
    and marked missing, so that the workflow snapshot can still name it.
    """
    parsed = parse_pack_name(os.path.basename(path))
    sequence = parsed[1] if parsed else None
    filename = submission.metadata.snapshot_filename
    if os.path.isfile(path):  # a cheap check first: replays submit files that are not there
        loaded = _loaded(submission, path, sequence)
        if loaded is not None:
            return loaded
    # A Submission is the checker's own copy, never changed: the record may share its lists.
    return NewSnapshot(
        submission.instance, path, filename, submission.metadata.to_snapshot(copy=False),
        None, None, sequence, status=SnapshotStatus.MISSING,
    )  # fmt: skip


def snapshot_to_record(submission: Submission, path: str) -> NewSnapshot | MetadataSnapshot:
    """What the registry records for a submission the instance did not record itself.

    :func:`new_snapshot`'s record, except that a submission whose file is not
    there is described by its metadata alone (:class:`MetadataSnapshot`),
    which the catalog stores exactly as :func:`new_snapshot`'s missing
    record, without building a snapshot object (and a ``Path``) per
    submission: a replay, or a run whose instances use plain libmuscle,
    submits thousands.

    Args:
        submission: The checked submission.
        path: Where its file is (absolute).
    """
    if os.path.isfile(path):
        return new_snapshot(submission, Path(path))
    parsed = parse_pack_name(os.path.basename(path))
    return MetadataSnapshot(
        submission.instance,
        path,
        submission.metadata.snapshot_filename,
        submission.metadata,
        parsed[1] if parsed else None,
    )


def _loaded(submission: Submission, path: Path, sequence: int | None) -> NewSnapshot | None:
    """The record of a file that is there, from its content; None if it cannot be read."""
    from catalog.store import load_pack  # only now: it imports the payload codecs

    try:
        loaded = load_pack(path)
    except SnapshotFileError as exc:
        _logger.warning("Recording %s from its metadata only: %s", path, exc)
        return None
    return NewSnapshot(
        submission.instance, path, submission.metadata.snapshot_filename, loaded.snapshot,
        loaded.size_bytes, loaded.sha256, sequence,
    )  # fmt: skip
