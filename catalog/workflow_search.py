"""Finding workflow snapshots: one snapshot per instance, every peer pair consistent.

The manager keeps, per instance, the snapshots that may still be part of a
future workflow snapshot (starting with a *restart* node: "start this
instance from scratch"), links every pair of peer snapshots that are
consistent (:mod:`catalog.consistency`), and after each submission asks:
which workflow snapshots contain the new snapshot?

MUSCLE3 answers by enumerating all of them, depth first. Their number can be
exponential (30 micros with two interchangeable snapshots each: 2**30), which
hangs the manager, and each becomes its own resume file. We answer with the
one users want, the *newest*, without enumerating:

Message counts only grow during a run, and the consistency relation between
two peers' counts is closed under taking the newer of two snapshots
(componentwise maximum): if ``(a1, b1)`` and ``(a2, b2)`` are consistent, so
is ``(max(a1, a2), max(b1, b2))``. So the workflow snapshots containing the
new snapshot form a lattice with a unique newest element, and it is found by
lowering per-instance upper bounds until every peer pair is consistent
("bounds propagation", as for max-closed constraints in general; every step
only removes snapshots that cannot be in any workflow snapshot). That costs
a few passes over the peer pairs, whatever the number of workflow snapshots.

MUSCLE3's clean-up (drop, per instance, every snapshot older than the newest
one used in any workflow snapshot just found) then drops exactly the
snapshots older than the newest workflow snapshot's members: the same ones.

If counts are not monotone (a hand-edited catalog, say), the propagated
bounds may not form a workflow snapshot; we then fall back to a bounded
depth-first search, newest first, and say so in the log.

Enumerating all workflow snapshots that contain a snapshot is still
available, lazily and with a limit (:meth:`SnapshotGraph.workflows_containing`).
"""

from __future__ import annotations

import bisect
import logging
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog.consistency import PairChecker, compile_checker
from catalog.topology import Topology

_logger = logging.getLogger(__name__)

#: Nodes the fallback search may visit before giving up on one submission.
FALLBACK_SEARCH_BUDGET = 200_000


@dataclass(eq=False)
class SnapshotNode:
    """One instance's snapshot in the search graph.

    Attributes:
        num: Position among the instance's snapshots (1 = restart node);
            newer snapshots have higher numbers.
        instance: The instance.
        counts: Its per-port message counts (empty for the restart node).
        is_restart: True for the "start from scratch" node.
        payload: What the caller attaches (a catalog row, metadata, ...).
        links: Per peer instance, the consistent peer nodes by number.
        missing_peers: How many peers have no consistent node linked yet.
    """

    num: int
    instance: str
    counts: Mapping[str, Sequence[int]]
    is_restart: bool
    payload: Any = None
    links: dict[str, dict[int, SnapshotNode]] = field(default_factory=dict, repr=False)
    missing_peers: int = 0

    @property
    def consistent(self) -> bool:
        """True if every peer has at least one snapshot consistent with this one."""
        return self.missing_peers == 0


WorkflowSnapshot = dict[str, SnapshotNode]


def payloads(workflow: WorkflowSnapshot) -> dict[str, Any]:
    """Instance -> the payload of its member, None where it restarts from scratch."""
    return {i: None if node.is_restart else node.payload for i, node in workflow.items()}


class SnapshotGraph:
    """The live snapshots of every instance, with consistency links between peers."""

    def __init__(self, topology: Topology) -> None:
        """Create the graph with a restart node for every instance.

        Args:
            topology: The model's instances and conduits.
        """
        self.topology = topology
        self._instances = topology.instances()
        self._peers = {instance: topology.peers(instance) for instance in self._instances}
        self._nodes: dict[str, list[SnapshotNode]] = {i: [] for i in self._instances}
        self._consistent_count = dict.fromkeys(self._instances, 0)
        self._without_consistent = len(self._instances)
        self._checkers: dict[tuple[str, str], PairChecker] = {}
        self._peer_checkers: dict[str, list[tuple[str, PairChecker]]] = {}
        for instance in self._instances:
            self.add(instance, {}, None, is_restart=True)

    def instances(self) -> list[str]:
        """All instances of the model."""
        return list(self._instances)

    def live_nodes(self, instance: str) -> list[SnapshotNode]:
        """The instance's snapshots still in the graph, oldest first."""
        return list(self._nodes[instance])

    def add(
        self,
        instance: str,
        counts: Mapping[str, Sequence[int]],
        payload: Any,
        *,
        is_restart: bool = False,
    ) -> SnapshotNode:
        """Add an instance's new snapshot and link it to every consistent peer snapshot.

        Args:
            instance: Who took it; must be an instance of the model.
            counts: Its per-port message counts.
            payload: Anything to carry along (returned in found workflow snapshots).
            is_restart: True only for the restart node.

        Returns:
            The new node.
        """
        nodes = self._nodes[self._known(instance)]
        num = nodes[-1].num + 1 if nodes else 1
        peers = self._peers[instance]
        node = SnapshotNode(num, instance, counts, is_restart, payload, missing_peers=len(peers))
        nodes.append(node)
        if node.consistent:
            self._became_consistent(node)
        checkers = self._peer_checkers.get(instance)
        if checkers is None:  # once per instance: every new snapshot is checked the same way
            checkers = [(peer, self._checker(instance, peer)) for peer in peers]
            self._peer_checkers[instance] = checkers
        for peer, check in checkers:
            for other in self._nodes[peer]:
                if check(counts, other.counts, is_restart, other.is_restart):
                    self._link(node, other)
        return node

    def register(
        self, instance: str, counts: Mapping[str, Sequence[int]], payload: Any
    ) -> tuple[SnapshotNode, WorkflowSnapshot | None]:
        """Handle one submission as MUSCLE3's registry does, but finding only the newest.

        Adds the snapshot, looks for the newest workflow snapshot containing
        it and, if there is one, drops the snapshots it makes stale.

        Returns:
            The new node and the workflow snapshot it completed, if any.
        """
        node = self.add(instance, counts, payload)
        workflow = self.newest_workflow(node)
        if workflow is not None:
            self.drop_older_than(workflow)
        return node, workflow

    def _checker(self, instance: str, peer: str) -> PairChecker:
        key = (instance, peer)
        checker = self._checkers.get(key)
        if checker is None:
            checker = compile_checker(self.topology.port_pairs(instance, peer))
            self._checkers[key] = checker
        return checker

    def _known(self, instance: str) -> str:
        if instance not in self._nodes:
            self.topology.component_of(instance)  # raises TopologyError with the reason
        return instance

    def _link(self, a: SnapshotNode, b: SnapshotNode) -> None:
        for x, y in ((a, b), (b, a)):
            peer_links = x.links.setdefault(y.instance, {})
            if not peer_links:
                x.missing_peers -= 1
                if x.consistent:
                    self._became_consistent(x)
            peer_links[y.num] = y

    def _unlink(self, gone: SnapshotNode, other: SnapshotNode) -> None:
        peer_links = other.links.get(gone.instance)
        if not peer_links or peer_links.pop(gone.num, None) is None:
            return
        if not peer_links:
            if other.consistent:
                self._became_inconsistent(other)
            other.missing_peers += 1

    def _became_consistent(self, node: SnapshotNode) -> None:
        self._consistent_count[node.instance] += 1
        if self._consistent_count[node.instance] == 1:
            self._without_consistent -= 1

    def _became_inconsistent(self, node: SnapshotNode) -> None:
        self._consistent_count[node.instance] -= 1
        if self._consistent_count[node.instance] == 0:
            self._without_consistent += 1

    # ------------------------------------------------------------------ search

    def newest_workflow(self, node: SnapshotNode) -> WorkflowSnapshot | None:
        """The newest workflow snapshot containing ``node``, or None if there is none.

        A workflow snapshot exists here exactly when MUSCLE3's exhaustive
        search finds at least one, and the one returned is the newest of
        those: no member can be replaced by a newer snapshot of its instance.

        Args:
            node: A live node (normally the one just added).
        """
        if not node.consistent or self._without_consistent > 0:
            return None
        for peer in self._peers[node.instance]:
            if not any(other.consistent for other in node.links.get(peer, {}).values()):
                return None
        bounds = self._propagate_bounds(node)
        if bounds is None:
            return None
        if self._is_workflow(bounds):
            return bounds
        _logger.warning(
            "Message counts of %s are not monotone; searching workflow snapshots depth-first",
            node.instance,
        )
        return next(self.workflows_containing(node, limit=1), None)

    def _propagate_bounds(self, fixed: SnapshotNode) -> WorkflowSnapshot | None:
        """Lower per-instance upper bounds until every peer pair has support below the bounds.

        Every snapshot removed from consideration is in no workflow snapshot
        containing ``fixed``, so a bound that empties means there is none.
        """
        bounds: WorkflowSnapshot = {}
        for instance in self._instances:
            newest = self._newest_consistent(instance)
            if newest is None:
                return None
            bounds[instance] = newest
        bounds[fixed.instance] = fixed
        queue = deque(self._instances)
        queued = set(self._instances)
        while queue:
            instance = queue.popleft()
            queued.discard(instance)
            bound = bounds[instance]
            for peer in self._peers[instance]:
                current = bounds[peer]
                lowered = self._highest_supported(peer, current, instance, bound.num)
                if lowered is current:
                    continue
                if lowered is None or peer == fixed.instance:
                    return None
                bounds[peer] = lowered
                if peer not in queued:
                    queue.append(peer)
                    queued.add(peer)
        return bounds

    def _newest_consistent(self, instance: str) -> SnapshotNode | None:
        return next((n for n in reversed(self._nodes[instance]) if n.consistent), None)

    def _index(self, node: SnapshotNode) -> int:
        return bisect.bisect_left(self._nodes[node.instance], node.num, key=lambda n: n.num)

    def _highest_supported(
        self, instance: str, start: SnapshotNode, peer: str, peer_bound: int
    ) -> SnapshotNode | None:
        """The newest consistent node up to ``start`` with a linked peer node within the bound."""
        nodes = self._nodes[instance]
        for index in range(self._index(start), -1, -1):
            candidate = nodes[index]
            if not candidate.consistent:
                continue
            linked = candidate.links.get(peer)
            if linked and min(linked) <= peer_bound:
                return candidate
        return None

    def _is_workflow(self, selection: WorkflowSnapshot) -> bool:
        return all(
            selection[peer].num in node.links.get(peer, {})
            for node in selection.values()
            for peer in self._peers[node.instance]
        )

    def workflows_containing(
        self, node: SnapshotNode, *, limit: int, budget: int = FALLBACK_SEARCH_BUDGET
    ) -> Iterator[WorkflowSnapshot]:
        """Enumerate workflow snapshots containing ``node``, newest choices first.

        Lazy and bounded: at most ``limit`` results, and the search stops
        after visiting ``budget`` candidate nodes (it logs when it does).

        Args:
            node: The snapshot every result must contain.
            limit: Maximum number of workflow snapshots to give.
            budget: Maximum number of candidate nodes to try.
        """
        domains: dict[str, list[SnapshotNode]] = {
            instance: [n for n in reversed(self._nodes[instance]) if n.consistent]
            for instance in self._instances
        }
        domains[node.instance] = [node]
        yield from _depth_first(domains, self._peers, limit, budget)

    # ------------------------------------------------------------------ clean-up

    def drop_older_than(self, workflow: WorkflowSnapshot) -> None:
        """Remove, per instance, every node older than the workflow snapshot's member.

        Older nodes can never be part of a later workflow snapshot (MUSCLE3's
        clean-up); dropping them keeps the graph small.
        """
        removed: list[SnapshotNode] = []
        for instance, keep in workflow.items():
            nodes = self._nodes[instance]
            cut = self._index(keep)
            if cut == 0:
                continue
            gone, self._nodes[instance] = nodes[:cut], nodes[cut:]
            removed.extend(gone)
        gone_ids = {id(n) for n in removed}
        for old in removed:
            if old.consistent:
                self._became_inconsistent(old)
            for peer_nodes in old.links.values():
                for other in peer_nodes.values():
                    if id(other) not in gone_ids:
                        self._unlink(old, other)
            old.links.clear()


def _depth_first(
    domains: dict[str, list[SnapshotNode]],
    peers: Mapping[str, Sequence[str]],
    limit: int,
    budget: int,
) -> Iterator[WorkflowSnapshot]:
    """Forward-checking depth-first search over explicit domains, newest candidates first."""
    if limit <= 0 or any(not d for d in domains.values()):
        return
    # Each stack frame: (domains at this depth, chosen instance, its remaining candidates)
    chosen: WorkflowSnapshot = {}
    visits = 0
    start = _restrict_by_singletons(domains, peers)
    if start is None:
        return
    stack: list[tuple[dict[str, list[SnapshotNode]], str, list[SnapshotNode]]] = []
    current = start
    found = 0
    while True:
        unassigned = [i for i in current if i not in chosen]
        if not unassigned:
            yield dict(chosen)
            found += 1
            if found >= limit:
                return
        else:
            instance = min(unassigned, key=lambda i: len(current[i]))
            stack.append((current, instance, list(current[instance])))
        # advance: try the next candidate of the deepest frame with candidates left
        while stack:
            frame_domains, instance, candidates = stack[-1]
            chosen.pop(instance, None)
            if not candidates:
                stack.pop()
                continue
            candidate = candidates.pop(0)
            visits += 1
            if visits > budget:
                _logger.warning(
                    "Workflow snapshot search stopped after %d candidates (budget)", budget
                )
                return
            narrowed = _narrow(frame_domains, peers, chosen, instance, candidate)
            if narrowed is not None:
                chosen[instance] = candidate
                current = narrowed
                break
        else:
            return


def _restrict_by_singletons(
    domains: dict[str, list[SnapshotNode]], peers: Mapping[str, Sequence[str]]
) -> dict[str, list[SnapshotNode]] | None:
    """Narrow the peers of every instance that has only one candidate, before searching."""
    result: dict[str, list[SnapshotNode]] | None = domains
    for instance, domain in domains.items():
        if len(domain) == 1 and result is not None:
            result = _narrow(result, peers, {}, instance, domain[0])
    return result


def _narrow(
    domains: dict[str, list[SnapshotNode]],
    peers: Mapping[str, Sequence[str]],
    chosen: WorkflowSnapshot,
    instance: str,
    candidate: SnapshotNode,
) -> dict[str, list[SnapshotNode]] | None:
    narrowed = dict(domains)
    narrowed[instance] = [candidate]
    for peer in peers[instance]:
        allowed = candidate.links.get(peer, {})
        if peer in chosen:
            if chosen[peer].num not in allowed:
                return None
            continue
        kept = [n for n in narrowed[peer] if n.num in allowed]
        if not kept:
            return None
        narrowed[peer] = kept
    return narrowed
