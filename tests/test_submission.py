"""The registry's door: every kind of malformed submission gets its own clear error."""

from __future__ import annotations

import math
from typing import Any

import pytest
import ymmsl

from catalog.snapshot import SnapshotMetadata
from catalog.submission import Submission, SubmissionChecker, SubmissionError
from catalog.topology import Topology
from tests.registry_streams import vector_model

GOOD: dict[str, Any] = {
    "triggers": ["simulation_time >= 0.1"],
    "wallclock_time": 1.5,
    "timestamp": 0.1,
    "next_timestamp": None,
    "port_message_counts": {"f_i": [1], "o_f": [0], "muscle_settings_in": [0]},
    "is_final_snapshot": False,
    "snapshot_filename": "instances/micro[1]/snapshots/micro-1_1.pack",
}


@pytest.fixture(scope="module")
def checker() -> SubmissionChecker:
    return SubmissionChecker(Topology.from_configuration(ymmsl.load(vector_model(2))))


def test_a_good_submission_is_copied_and_normalised(checker: SubmissionChecker) -> None:
    counts = {"f_i": [1], "o_f": [0]}
    submission = checker.check(
        ymmsl.v0_2.Reference("micro[1]"), GOOD | {"port_message_counts": counts, "timestamp": 1}
    )
    counts["f_i"].append(5)  # the caller changing its dict later reaches nothing
    assert submission.instance == "micro[1]"
    assert submission.metadata.port_message_counts == {"f_i": [1], "o_f": [0]}
    assert submission.metadata.timestamp == 1.0 and isinstance(submission.metadata.timestamp, float)


def test_our_metadata_objects_and_implicit_snapshots_are_accepted(
    checker: SubmissionChecker,
) -> None:
    metadata = SnapshotMetadata(**(GOOD | {"timestamp": math.nan, "next_timestamp": 0.2}))
    submission = checker.check("macro", metadata)
    assert math.isnan(submission.metadata.timestamp)
    assert submission.metadata.next_timestamp == 0.2


def test_counts_in_tuples_are_accepted_and_checked(checker: SubmissionChecker) -> None:
    submission = checker.check("macro", GOOD | {"port_message_counts": {"o_i": (1, 2)}})
    assert submission.metadata.port_message_counts == {"o_i": [1, 2]}
    with pytest.raises(SubmissionError, match="outside"):
        checker.check("macro", GOOD | {"port_message_counts": {"o_i": (1, 2**64)}})


def test_muscle3s_minus_one_count_is_accepted(checker: SubmissionChecker) -> None:
    """MUSCLE3 0.10 sends -1 for an unconnected F_INIT port (tests/data/runs/v0.10/dispatch)."""
    counts = {"f_i": [-1], "o_f": [1]}
    submission = checker.check("macro", GOOD | {"port_message_counts": counts})
    assert submission.metadata.port_message_counts == counts


MALFORMED: dict[str, tuple[str, dict[str, Any], str]] = {
    "count 2**70": ("macro", {"port_message_counts": {"o_i": [2**70]}}, "outside -1 .. 2**63-1"),
    "count 2**63": ("macro", {"port_message_counts": {"o_i": [2**63]}}, "outside -1 .. 2**63-1"),
    "count -2": ("macro", {"port_message_counts": {"o_i": [-2]}}, "outside -1 .. 2**63-1"),
    "count as text": ("macro", {"port_message_counts": {"o_i": ["3"]}}, "not a whole number"),
    "count as float": ("macro", {"port_message_counts": {"o_i": [1.5]}}, "not a whole number"),
    "count as bool": ("macro", {"port_message_counts": {"o_i": [True]}}, "not a whole number"),
    "counts not a list": ("macro", {"port_message_counts": {"o_i": 3}}, "not a list of counts"),
    "counts not a map": ("macro", {"port_message_counts": [1, 2]}, "not a map of ports"),
    "port name with NUL": ("macro", {"port_message_counts": {"o\x00i": [1]}}, "NUL byte"),
    "port name not a name": ("macro", {"port_message_counts": {"o i": [1]}}, "not a port name"),
    "port name not text": ("macro", {"port_message_counts": {3: [1]}}, "not text"),
    "file name with NUL": ("macro", {"snapshot_filename": "a\x00.pack"}, "NUL byte"),
    "file name not text": ("macro", {"snapshot_filename": 12}, "not a path"),
    "file name empty": ("macro", {"snapshot_filename": ""}, "empty"),
    "timestamp as text": ("macro", {"timestamp": "0.1"}, "timestamp is '0.1' (str), not a number"),
    "timestamp None": ("macro", {"timestamp": None}, "not a number"),
    "next timestamp as text": ("macro", {"next_timestamp": "x"}, "next_timestamp is 'x'"),
    "wallclock as text": ("macro", {"wallclock_time": "now"}, "wallclock_time is 'now'"),
    "wallclock NaN": ("macro", {"wallclock_time": math.nan}, "wallclock_time is NaN"),
    "triggers as text": ("macro", {"triggers": "at_end"}, "triggers is a str"),
    "trigger with NUL": ("macro", {"triggers": ["a\x00"]}, "NUL byte"),
    "final flag as text": ("macro", {"is_final_snapshot": "yes"}, "is_final_snapshot is 'yes'"),
    "unknown instance": ("nosuch", {}, "not part of model"),
    "instance out of range": ("micro[7]", {}, "not part of model"),
    "instance not a name": ("micro[", {}, "micro["),
    "instance with NUL": ("mac\x00ro", {}, "NUL byte"),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_submissions_get_a_clear_error(checker: SubmissionChecker, kind: str) -> None:
    instance, change, problem = MALFORMED[kind]
    filename = change.get("snapshot_filename", GOOD["snapshot_filename"])
    with pytest.raises(SubmissionError) as raised:
        checker.check(instance, GOOD | change)
    message = str(raised.value)
    assert problem in message
    assert "Rejected the snapshot submitted by" in message
    if isinstance(filename, str) and "\x00" not in filename:
        assert filename in message


def test_missing_fields_and_odd_objects_are_named() -> None:
    without = {k: v for k, v in GOOD.items() if k != "timestamp"}
    with pytest.raises(SubmissionError, match="the metadata has no 'timestamp'"):
        Submission.from_metadata("macro", without)
    with pytest.raises(SubmissionError, match=r"the metadata \(int\) has no 'triggers'"):
        Submission.from_metadata("macro", 42)
    with pytest.raises(SubmissionError, match="the instance name is a int, not text"):
        Submission.from_metadata(7, GOOD)
