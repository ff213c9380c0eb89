"""When two instances' snapshots fit together: MUSCLE3's message-count rules, as pure functions.

Two snapshots of peer instances can be resumed together when, on every
conduit between them, what the sender had sent matches what the receiver
had received, slot by slot:

* *strongly*: ``sent == received``;
* *weakly*: ``sent + 1 == received``: the receiver already has one message
  the sender will send again after resuming; MUSCLE3 drops the duplicate on
  receive. Not allowed when the sender restarts from scratch (its null
  snapshot), because then the message would be sent with number 0 again and
  not be recognised as a duplicate.

Missing ports count as no messages (``[]``), missing slots as 0; the
``muscle_settings_in`` port, timestamps, triggers and final flags play no
part (MUSCLE3's rules; see ``docs/consistency.md``).

The module has two layers. :func:`counts_consistent` and
:func:`slot_lists_consistent` are the rule itself, used everywhere.
:func:`pair_consistent` and :func:`snapshots_consistent` state the whole
check readably and are the *reference*: nothing in the package calls them;
the registry uses :func:`compile_checker`, a fast equivalent, and the tests
hold the compiled checker to the reference on randomised counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import zip_longest

from catalog.topology import PortPair, SlotMapping

Counts = Mapping[str, Sequence[int]]


def counts_consistent(sent: int, received: int, *, weak_allowed: bool) -> bool:
    """Whether one slot's counts are consistent.

    Args:
        sent: Messages the sender had sent on the slot.
        received: Messages the receiver had received on it.
        weak_allowed: False when the sender restarts from scratch.
    """
    return sent == received or (weak_allowed and sent + 1 == received)


def slot_lists_consistent(
    sent: Sequence[int], received: Sequence[int], *, weak_allowed: bool
) -> bool:
    """Whether two ports' per-slot counts are consistent, slot by slot (missing slots are 0)."""
    return all(
        counts_consistent(s, r, weak_allowed=weak_allowed)
        for s, r in zip_longest(sent, received, fillvalue=0)
    )


# --------------------------------------------------------------------------- the reference


def _slot(counts: Sequence[int], slot: int) -> int:
    return counts[slot] if 0 <= slot < len(counts) else 0


def pair_consistent(
    pair: PortPair,
    own_counts: Counts,
    peer_counts: Counts,
    *,
    own_is_restart: bool,
    peer_is_restart: bool,
) -> bool:
    """Whether one conduit between an instance and its peer is consistent.

    Args:
        pair: The conduit, seen from the instance.
        own_counts: The instance's snapshot's counts (empty for a restart).
        peer_counts: The peer's snapshot's counts (empty for a restart).
        own_is_restart: The instance's snapshot is the null (restart) snapshot.
        peer_is_restart: The peer's snapshot is the null (restart) snapshot.
    """
    own = own_counts.get(pair.own_port, ())
    peer = peer_counts.get(pair.peer_port, ())
    if pair.mapping is SlotMapping.SELF_IS_VECTOR:
        own, peer = (_slot(own, pair.own_slot),), (_slot(peer, 0),)
    elif pair.mapping is SlotMapping.PEER_IS_VECTOR:
        own, peer = (_slot(own, 0),), (_slot(peer, pair.peer_slot),)
    if pair.own_sends:
        return slot_lists_consistent(own, peer, weak_allowed=not own_is_restart)
    return slot_lists_consistent(peer, own, weak_allowed=not peer_is_restart)


def snapshots_consistent(
    pairs: Sequence[PortPair],
    own_counts: Counts,
    peer_counts: Counts,
    *,
    own_is_restart: bool = False,
    peer_is_restart: bool = False,
) -> bool:
    """Whether two peer instances' snapshots are consistent on every conduit between them.

    The reference statement of the check: only tests call it, to hold
    :func:`compile_checker` (what the registry runs) to it.
    """
    return all(
        pair_consistent(
            pair,
            own_counts,
            peer_counts,
            own_is_restart=own_is_restart,
            peer_is_restart=peer_is_restart,
        )
        for pair in pairs
    )


# --------------------------------------------------------------------------- what the registry runs

PairChecker = Callable[[Counts, Counts, bool, bool], bool]


def compile_checker(pairs: Sequence[PortPair]) -> PairChecker:
    """A fast equivalent of :func:`snapshots_consistent` for one fixed pair of instances.

    The registry checks every new snapshot against every live snapshot of
    every peer (for a macro with a thousand micros, thousands of checks per
    submission), always over the same conduits; resolving ports, directions
    and slots once makes each check a few comparisons.

    Returns:
        ``check(own_counts, peer_counts, own_is_restart, peer_is_restart) -> bool``.
    """
    # One entry per conduit: (own port, peer port, own slot, peer slot, we send); the slots
    # are None for slot-by-slot comparison, else the one slot of each side that talks.
    specs: list[tuple[str, str, int | None, int | None, bool]] = []
    for p in pairs:
        if p.mapping is SlotMapping.SELF_IS_VECTOR:
            specs.append((p.own_port, p.peer_port, p.own_slot, 0, p.own_sends))
        elif p.mapping is SlotMapping.PEER_IS_VECTOR:
            specs.append((p.own_port, p.peer_port, 0, p.peer_slot, p.own_sends))
        else:
            specs.append((p.own_port, p.peer_port, None, None, p.own_sends))

    def check(own: Counts, peer: Counts, own_is_restart: bool, peer_is_restart: bool) -> bool:
        for own_port, peer_port, own_slot, peer_slot, own_sends in specs:
            mine = own.get(own_port, ())
            theirs = peer.get(peer_port, ())
            weak = not (own_is_restart if own_sends else peer_is_restart)
            if own_slot is not None and peer_slot is not None:
                a = mine[own_slot] if own_slot < len(mine) else 0
                b = theirs[peer_slot] if peer_slot < len(theirs) else 0
                sent, received = (a, b) if own_sends else (b, a)
                if sent != received and not (weak and sent + 1 == received):
                    return False
                continue
            sent_list, received_list = (mine, theirs) if own_sends else (theirs, mine)
            if not slot_lists_consistent(sent_list, received_list, weak_allowed=weak):
                return False
        return True

    return check
