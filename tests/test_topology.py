"""Instances, peers and port pairs from real yMMSL files (v0.1 and v0.2)."""

from __future__ import annotations

import pytest
import ymmsl
from ymmsl import v0_2

from catalog.topology import SlotMapping, Topology, TopologyError, parse_instance
from tests.conftest import REGISTRY_CASES, RUNS


def _from_run(path: str) -> Topology:
    return Topology.from_configuration(
        ymmsl.load((RUNS / path / "configuration.ymmsl").read_text())
    )


def test_v02_vector_model() -> None:
    topology = _from_run("v0.10/mm_vector5")
    assert topology.instances() == ["macro"] + [f"micro[{i}]" for i in range(5)]
    assert topology.peers("macro") == tuple(f"micro[{i}]" for i in range(5))
    assert topology.peers("micro[3]") == ("macro",)
    pairs = topology.port_pairs("macro", "micro[3]")
    assert {(p.own_port, p.peer_port, p.own_sends, p.mapping, p.own_slot) for p in pairs} == {
        ("o_i", "f_i", True, SlotMapping.SELF_IS_VECTOR, 3),
        ("s", "o_f", False, SlotMapping.SELF_IS_VECTOR, 3),
    }
    back = topology.port_pairs("micro[3]", "macro")
    assert {(p.own_port, p.mapping, p.peer_slot) for p in back} == {
        ("f_i", SlotMapping.PEER_IS_VECTOR, 3),
        ("o_f", SlotMapping.PEER_IS_VECTOR, 3),
    }


def test_v01_configuration_from_muscle3_0_7() -> None:
    topology = _from_run("v0.7/mm_scalar")
    assert topology.model_name == "macro_micro"
    assert topology.instances() == ["macro", "micro"]
    assert {p.mapping for p in topology.port_pairs("macro", "micro")} == {SlotMapping.SAME}


def test_two_level_index_prefix_matching() -> None:
    import json

    text = json.loads((REGISTRY_CASES / "two_level_3x2.input.json").read_text())["ymmsl"]
    topology = Topology.from_configuration(ymmsl.load(text))
    assert topology.peers("meso[1]") == ("macro", "micro[1][0]", "micro[1][1]")
    assert topology.peers("micro[2][1]") == ("meso[2]",)
    pairs = topology.port_pairs("meso[1]", "micro[1][1]")
    assert {(p.own_port, p.mapping, p.own_slot) for p in pairs} == {
        ("o_i", SlotMapping.SELF_IS_VECTOR, 1),
        ("s", SlotMapping.SELF_IS_VECTOR, 1),
    }


def test_dispatch_chain_peers() -> None:
    topology = _from_run("v0.10/dispatch")
    assert topology.peers("comp1") == ("comp2",)
    assert topology.peers("comp3") == ("comp2", "comp4")


def test_unknown_instance_is_a_clear_error() -> None:
    topology = _from_run("v0.10/mm_vector5")
    with pytest.raises(TopologyError, match=r"micro\[7\].*not part of model"):
        topology.peers("micro[7]")


def test_a_resume_file_is_not_a_model() -> None:
    resume = next((RUNS / "v0.10/dispatch/snapshots").glob("snapshot_*.ymmsl"))
    with pytest.raises(TopologyError, match=r"no model|no usable model"):
        Topology.from_configuration(ymmsl.load(resume.read_text()))


def test_parse_instance() -> None:
    assert parse_instance("micro[3]") == ("micro", (3,))
    assert parse_instance("a.b[1][2]") == ("a.b", (1, 2))
    assert parse_instance("macro") == ("macro", ())


def _by_ymmsl(name: str) -> tuple[str, tuple[int, ...]]:
    parts = list(v0_2.Reference(name))
    split = len(parts)
    while split > 0 and isinstance(parts[split - 1], int):
        split -= 1
    return str(v0_2.Reference(parts[:split])), tuple(int(i) for i in parts[split:])


@pytest.mark.parametrize(
    "name",
    [
        "micro[3]",
        "a.b[1][2]",
        "macro",
        "_x.y_2[10][0][7]",
        "micro[03]",
        "a[1].b[2]",
        "a[1].b",
        "a[-1]",
        "a[+2]",
        "a[1_0]",
        "a..b",
        "a[",
        "a[1]b",
        "1a",
        "a.[1]",
        "",
        "é[1]",
        "a[\u0661]",  # an Arabic-Indic digit one
    ],
)
def test_parse_instance_is_ymmsls_reading(name: str) -> None:
    """The direct parse of plain names gives what ymmsl's Reference gives, errors included."""
    try:
        expected: object = _by_ymmsl(name)
    except ValueError as exc:
        expected = type(exc)
    try:
        got: object = parse_instance(name)
    except ValueError as exc:
        got = type(exc)
    assert got == expected
