"""Workflow snapshot search: parity with MUSCLE3 0.10's registry on every recorded stream."""

from __future__ import annotations

import time
from typing import Any

import pytest
import ymmsl

from catalog.topology import Topology
from catalog.workflow_search import SnapshotGraph, SnapshotNode, payloads
from tests.registry_streams import Stream, all_streams, vector_model

STREAMS = all_streams()


def _replay(stream: Stream) -> tuple[dict[int, dict[str, int | None]], SnapshotGraph]:
    """Replay a stream; returns submission index -> our workflow (member submission indices)."""
    graph = SnapshotGraph(Topology.from_configuration(stream.configuration()))
    ours: dict[int, dict[str, int | None]] = {}
    for index, (instance, metadata) in enumerate(stream.submissions):
        _node, workflow = graph.register(instance, metadata["port_message_counts"], index)
        if workflow is not None:
            ours[index] = payloads(workflow)
    return ours, graph


def _muscle3_died(stream: Stream) -> bool:
    return bool(stream.expected.get("error"))


@pytest.mark.parametrize(
    "stream", [s for s in STREAMS if not _muscle3_died(s)], ids=lambda s: s.name
)
def test_same_submissions_complete_a_workflow_snapshot(stream: Stream) -> None:
    ours, _ = _replay(stream)
    theirs = stream.sets_by_submission()
    assert sorted(ours) == sorted(theirs)


@pytest.mark.parametrize(
    "stream", [s for s in STREAMS if not _muscle3_died(s)], ids=lambda s: s.name
)
def test_recorded_workflow_is_muscle3s_newest(stream: Stream) -> None:
    """Ours is one of MUSCLE3's sets, and no member of it has a newer one in MUSCLE3's sets."""
    ours, _ = _replay(stream)
    for index, sets in stream.sets_by_submission().items():
        mine = ours[index]
        assert mine in sets, f"submission {index}: {mine} is not among MUSCLE3's sets"
        for other in sets:
            for instance, member in other.items():
                assert _age(mine[instance]) >= _age(member), (index, instance)


def _age(submission: int | None) -> int:
    return -1 if submission is None else submission


@pytest.mark.parametrize(
    "stream", [s for s in STREAMS if not _muscle3_died(s)], ids=lambda s: s.name
)
def test_clean_up_keeps_what_muscle3_keeps(stream: Stream) -> None:
    """After the whole stream, the snapshots still in play are MUSCLE3's, so later ones agree."""
    _, graph = _replay(stream)
    remaining: dict[str, list[str]] = {}
    for instance in graph.instances():
        remaining[instance] = [
            "<null>" if n.is_restart else stream.submissions[n.payload][1]["snapshot_filename"]
            for n in graph.live_nodes(instance)
        ]
    assert remaining == stream.expected["remaining_after_cleanup"]


def test_single_instance_model_gets_a_workflow_snapshot_per_submission() -> None:
    """MUSCLE3's registry dies with IndexError here; every snapshot of a solo model is resumable."""
    (stream,) = [s for s in STREAMS if s.name == "single_component"]
    ours, graph = _replay(stream)
    assert sorted(ours) == list(range(len(stream.submissions)))
    assert [n.payload for n in graph.live_nodes("solo")] == [len(stream.submissions) - 1]


def _vector_model(n: int) -> Any:
    return ymmsl.load(vector_model(n))


def test_thirty_micros_with_two_candidates_each_does_not_hang() -> None:
    """The mm_vector30_large shape: 2**30 workflow snapshots for MUSCLE3, one search for us.

    Every micro makes two snapshots (f_i [1], o_f [0]) consistent with the
    macro's first snapshot (o_i = s = 1 per slot: o_f 0 vs s 1 is weak).
    """
    n = 30
    graph = SnapshotGraph(Topology.from_configuration(_vector_model(n)))
    started = time.perf_counter()
    for i in range(n):
        for k in range(2):
            node = graph.add(f"micro[{i}]", {"f_i": [1], "o_f": [0]}, (i, k))
            assert graph.newest_workflow(node) is None
    macro = graph.add("macro", {"o_i": [1] * n, "s": [1] * n}, "macro")
    workflow = graph.newest_workflow(macro)
    assert workflow is not None
    # the newest: every micro's second snapshot
    assert all(workflow[f"micro[{i}]"].payload == (i, 1) for i in range(n))
    graph.drop_older_than(workflow)
    # enumerating the others is possible, lazily and limited
    others = list(graph.workflows_containing(macro, limit=5))
    assert len(others) == 1  # after clean-up only the newest remain
    assert time.perf_counter() - started < 60  # a hang guard, not a benchmark


def test_enumeration_is_lazy_and_limited() -> None:
    n = 30
    graph = SnapshotGraph(Topology.from_configuration(_vector_model(n)))
    for i in range(n):
        for k in range(2):
            graph.add(f"micro[{i}]", {"f_i": [1], "o_f": [0]}, (i, k))
    macro = graph.add("macro", {"o_i": [1] * n, "s": [1] * n}, "macro")
    found = list(graph.workflows_containing(macro, limit=7))
    assert len(found) == 7
    assert len({tuple(n.payload for n in w.values()) for w in found}) == 7
    # the first enumerated one is the newest
    assert all(found[0][f"micro[{i}]"].payload == (i, 1) for i in range(n))


def test_restart_sender_forbids_weak_consistency() -> None:
    """A receiver one message ahead of a sender that restarts from scratch cannot be resumed."""
    graph = SnapshotGraph(Topology.from_configuration(_vector_model(1)))
    micro = graph.add("micro[0]", {"f_i": [1], "o_f": [0]}, "micro")
    assert graph.newest_workflow(micro) is None  # macro null node has o_i 0: 0 + 1 == 1 is weak
    macro = graph.add("macro", {"o_i": [1], "s": [0]}, "macro")
    workflow = graph.newest_workflow(macro)
    assert workflow is not None
    assert {i: n.payload for i, n in workflow.items()} == {"macro": "macro", "micro[0]": "micro"}


def test_non_monotone_counts_fall_back_to_search() -> None:
    """Counts that go down (not from MUSCLE3) still give a correct answer, via the fallback."""
    graph = SnapshotGraph(Topology.from_configuration(_vector_model(1)))
    graph.add("macro", {"o_i": [1], "s": [1]}, "m1")
    graph.add("macro", {"o_i": [5], "s": [5]}, "m2")
    graph.add("macro", {"o_i": [2], "s": [2]}, "m3")
    node: SnapshotNode = graph.add("micro[0]", {"f_i": [1], "o_f": [1]}, "u")
    workflow = graph.newest_workflow(node)
    assert workflow is not None
    assert workflow["macro"].payload == "m1"
