"""Side by side with MUSCLE3 0.10's own SnapshotRegistry on generated submission streams.

The recorded streams (``test_workflow_search``) are a few dozen; here a
seeded generator makes many more, with the patterns that matter: several
snapshots of an instance with equal counts (MUSCLE3's combinatorial
blow-up), weakly consistent pairs, implicit and final snapshots, and random
interleavings of the instances' submissions. Each stream goes through the
real registry (driven synchronously, its resume-file writer replaced by a
recorder) and through ours; the same submissions must complete a workflow
snapshot, ours must be MUSCLE3's newest, and the same snapshots must remain.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import ymmsl

from catalog.topology import Topology
from catalog.workflow_search import SnapshotGraph, payloads
from tests.registry_streams import vector_model

pytest.importorskip("libmuscle", reason="side-by-side tests need the 'test' extra (muscle3)")
from libmuscle.manager.snapshot_registry import SnapshotRegistry as Muscle3Registry
from libmuscle.manager.topology_store import TopologyStore
from libmuscle.snapshot import SnapshotMetadata as Muscle3Metadata
from ymmsl.v0_2 import Configuration, Reference

pytestmark = pytest.mark.interop

Stream = list[tuple[str, dict[str, list[int]]]]


def _stream(rng: random.Random, micros: int, steps: int) -> Stream:
    """Per-instance snapshot sequences from a macro-micro exchange, randomly interleaved.

    Step k: the macro sends k to every micro and receives k back. The macro
    may snapshot before or after receiving (weak pairs); a micro makes
    final snapshots (counts after MUSCLE3's F_INIT decrement), sometimes
    twice with the same counts, and sometimes intermediate ones.
    """
    per_instance: dict[str, list[dict[str, list[int]]]] = {"macro": []}
    for k in range(1, steps + 1):
        if rng.random() < 0.4:  # sent step k, not yet received: weakly consistent with micros
            per_instance["macro"].append({"o_i": [k] * micros, "s": [k - 1] * micros})
        if rng.random() < 0.6:
            per_instance["macro"].append({"o_i": [k] * micros, "s": [k] * micros})
    for j in range(micros):
        snapshots: list[dict[str, list[int]]] = []
        for k in range(1, steps + 1):
            if rng.random() < 0.3:
                snapshots.append({"f_i": [k], "o_f": [k - 1]})  # intermediate, mid-step
            for _ in range(rng.choice([0, 1, 1, 2])):  # final, possibly repeated (blow-up)
                snapshots.append({"f_i": [k], "o_f": [k]})
        per_instance[f"micro[{j}]"] = snapshots
    queues = {name: list(items) for name, items in per_instance.items() if items}
    stream: Stream = []
    while queues:
        name = rng.choice(sorted(queues))
        stream.append((name, queues[name].pop(0)))
        if not queues[name]:
            del queues[name]
    return stream


def _muscle3(text: str, stream: Stream) -> tuple[dict[int, list[dict[str, int | None]]], Any]:
    configuration = ymmsl.load_as(Configuration, text)
    registry = Muscle3Registry(configuration, None, TopologyStore(configuration))  # type: ignore[arg-type]
    found: dict[int, list[dict[str, int | None]]] = {}
    current = [0]

    def record(selected: list[Any]) -> None:
        found.setdefault(current[0], []).append(
            {
                str(node.instance): None
                if node.snapshot.snapshot_filename == ""
                else int(node.snapshot.snapshot_filename)
                for node in selected
            }
        )

    registry._write_snapshot_ymmsl = record  # type: ignore[method-assign,assignment]
    while not registry._queue.empty():  # the restart nodes the constructor queued
        queued = registry._queue.get()
        assert queued is not None
        registry._add_snapshot(*queued)
    for index, (instance, counts) in enumerate(stream):
        current[0] = index
        metadata = Muscle3Metadata(["t"], 0.0, 0.0, None, counts, False, str(index))
        registry._add_snapshot(Reference(instance), metadata)
    remaining = {
        str(instance): [
            None if n.snapshot.snapshot_filename == "" else int(n.snapshot.snapshot_filename)
            for n in nodes
        ]
        for instance, nodes in registry._snapshots.items()
    }
    return found, remaining


def _ours(text: str, stream: Stream) -> tuple[dict[int, dict[str, int | None]], Any]:
    graph = SnapshotGraph(Topology.from_configuration(ymmsl.load(text)))
    found: dict[int, dict[str, int | None]] = {}
    for index, (instance, counts) in enumerate(stream):
        _node, workflow = graph.register(instance, counts, index)
        if workflow is not None:
            found[index] = payloads(workflow)
    remaining = {
        instance: [None if n.is_restart else n.payload for n in graph.live_nodes(instance)]
        for instance in graph.instances()
    }
    return found, remaining


@pytest.mark.parametrize("seed", range(40))
def test_generated_streams_agree_with_muscle3(seed: int) -> None:
    rng = random.Random(seed)
    micros, steps = rng.randint(1, 4), rng.randint(1, 6)
    text = vector_model(micros)
    stream = _stream(rng, micros, steps)
    theirs, their_remaining = _muscle3(text, stream)
    ours, our_remaining = _ours(text, stream)

    assert sorted(ours) == sorted(theirs)
    for index, sets in theirs.items():
        assert ours[index] in sets
        for other in sets:
            for instance, member in other.items():
                mine = ours[index][instance]
                assert (-1 if mine is None else mine) >= (-1 if member is None else member)
    assert our_remaining == their_remaining
