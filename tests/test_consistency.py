"""The message-count rules, slot mapping and the restart rule, as pure functions."""

from __future__ import annotations

import random

import pytest

from catalog.consistency import (
    compile_checker,
    counts_consistent,
    pair_consistent,
    slot_lists_consistent,
    snapshots_consistent,
)
from catalog.topology import PortPair, SlotMapping


@pytest.mark.parametrize(
    ("sent", "received", "weak_allowed", "expected"),
    [
        (3, 3, True, True),  # strong
        (3, 4, True, True),  # weak: the receiver has the message the sender will resend
        (3, 4, False, False),  # ... not when the sender restarts from scratch
        (4, 3, True, False),  # the receiver can never be behind
        (3, 5, True, False),
        (0, 0, False, True),
    ],
)
def test_slot_rule(sent: int, received: int, weak_allowed: bool, expected: bool) -> None:
    assert counts_consistent(sent, received, weak_allowed=weak_allowed) is expected


def test_missing_slots_count_as_zero() -> None:
    assert slot_lists_consistent([1, 0], [1], weak_allowed=True)
    assert slot_lists_consistent([], [0, 1], weak_allowed=True)
    assert not slot_lists_consistent([], [0, 2], weak_allowed=True)


SCALAR = PortPair("o_i", "f_i", own_sends=True, mapping=SlotMapping.SAME)


def test_direction_decides_who_may_be_ahead() -> None:
    receiving = PortPair("s", "o_f", own_sends=False, mapping=SlotMapping.SAME)
    assert pair_consistent(receiving, {"s": [2]}, {"o_f": [1]}, own_is_restart=False,
                           peer_is_restart=False)  # fmt: skip
    assert not pair_consistent(receiving, {"s": [1]}, {"o_f": [2]}, own_is_restart=False,
                               peer_is_restart=False)  # fmt: skip
    # a restarting sender forbids the weak case
    assert not pair_consistent(receiving, {"s": [1]}, {}, own_is_restart=False,
                               peer_is_restart=True)  # fmt: skip


def test_vector_to_scalar_slot_mapping() -> None:
    # macro (vector port o_i) talks to micro[2]: macro slot 2 vs micro slot 0
    macro_side = PortPair("o_i", "f_i", True, SlotMapping.SELF_IS_VECTOR, own_slot=2)
    assert pair_consistent(macro_side, {"o_i": [9, 9, 4]}, {"f_i": [4]}, own_is_restart=False,
                           peer_is_restart=False)  # fmt: skip
    assert not pair_consistent(macro_side, {"o_i": [4, 4, 9]}, {"f_i": [4]},
                               own_is_restart=False, peer_is_restart=False)  # fmt: skip
    # micro[2] side: its slot 0 against the macro's slot 2
    micro_side = PortPair("f_i", "o_i", False, SlotMapping.PEER_IS_VECTOR, peer_slot=2)
    assert pair_consistent(micro_side, {"f_i": [5]}, {"o_i": [0, 0, 4]}, own_is_restart=False,
                           peer_is_restart=False)  # fmt: skip


def test_settings_port_timestamps_and_flags_are_ignored() -> None:
    own = {"o_i": [1], "muscle_settings_in": [7]}
    assert snapshots_consistent([SCALAR], own, {"f_i": [1], "muscle_settings_in": [0]})


def test_compiled_checker_agrees_with_the_rules() -> None:
    rng = random.Random(1234)
    mappings = [
        PortPair("a", "b", True, SlotMapping.SAME),
        PortPair("c", "d", False, SlotMapping.SAME),
        PortPair("a", "b", True, SlotMapping.SELF_IS_VECTOR, own_slot=1),
        PortPair("c", "d", False, SlotMapping.PEER_IS_VECTOR, peer_slot=2),
    ]

    def counts(ports: tuple[str, str]) -> dict[str, list[int]]:
        return {p: [rng.randint(0, 3) for _ in range(rng.randint(0, 3))] for p in ports
                if rng.random() < 0.9}  # fmt: skip

    for _ in range(3000):
        pairs = rng.sample(mappings, rng.randint(1, 3))
        own, peer = counts(("a", "c")), counts(("b", "d"))
        own_restart, peer_restart = rng.random() < 0.2, rng.random() < 0.2
        expected = snapshots_consistent(pairs, own, peer, own_is_restart=own_restart,
                                        peer_is_restart=peer_restart)  # fmt: skip
        assert compile_checker(pairs)(own, peer, own_restart, peer_restart) is expected
