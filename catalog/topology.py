"""Who talks to whom: instances, peers and the port pairs between them, from a yMMSL configuration.

The manager decides whether two snapshots fit together by comparing the
message counts on the ports of every conduit between the two instances. This
module turns a configuration into exactly that information, with MUSCLE3's
rules (see ``docs/consistency.md``):

* every component with multiplicity ``[3, 2]`` has instances ``c[0][0]`` ...
  ``c[2][1]``;
* two instances are peers when their components share a conduit, matched on
  the common index prefix (same dimensions: same index; the peer has more
  dimensions: all its instances under our index; fewer: our index cut short);
* between a vector and a scalar port, the vector side's slot is the scalar
  side's last index.

It reads yMMSL v0.1 files (``config.model``) and v0.2 files
(``config.root_model()``), as ymmsl 0.17 and 0.18 load them.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ymmsl import v0_2

from catalog.errors import CatalogError
from catalog.run_dir import NoModelError, root_model


class TopologyError(CatalogError):
    """The configuration cannot be turned into a topology (no model, unknown component)."""


class SlotMapping(Enum):
    """How the slots of the two ports of a conduit correspond."""

    #: Scalar to scalar or vector to vector: slot by slot.
    SAME = "same"
    #: Our port is a vector port, the peer's is scalar: our slot = peer's last index.
    SELF_IS_VECTOR = "self_is_vector"
    #: The peer's port is a vector port, ours is scalar: peer's slot = our last index.
    PEER_IS_VECTOR = "peer_is_vector"


@dataclass(frozen=True)
class PortPair:
    """One conduit between an instance and a peer instance, seen from the instance.

    Attributes:
        own_port: The instance's port name, as in its message counts.
        peer_port: The peer's port name.
        own_sends: True if the instance sends on this conduit.
        mapping: How slots correspond.
        own_slot: With SELF_IS_VECTOR, our slot that talks to the peer.
        peer_slot: With PEER_IS_VECTOR, the peer's slot that talks to us.
    """

    own_port: str
    peer_port: str
    own_sends: bool
    mapping: SlotMapping
    own_slot: int = 0
    peer_slot: int = 0


@dataclass(frozen=True)
class _Conduit:
    sender: str
    sending_port: str
    receiver: str
    receiving_port: str


#: The usual instance name: dotted identifiers, then indices (``micro[3]``, ``a.b[1][2]``).
#: Parsed directly (a topology of a thousand instances parses names thousands of
#: times); anything else goes through ymmsl's Reference, which a test holds it to.
_SIMPLE_INSTANCE = re.compile(
    r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)((?:\[[0-9]+\])*)"
)


def parse_instance(name: str) -> tuple[str, tuple[int, ...]]:
    """Split an instance name into its component and indices.

    Args:
        name: For example ``"micro[3]"`` or ``"a.b[1][2]"``.

    Returns:
        The component name and the indices, e.g. ``("micro", (3,))``.
    """
    simple = _SIMPLE_INSTANCE.fullmatch(name)
    if simple is not None:  # what ymmsl's Reference gives for it, without building one
        component, indices = simple.groups()
        return component, tuple(int(i) for i in indices[1:-1].split("][")) if indices else ()
    reference = v0_2.Reference(name)
    parts = list(reference)
    split = len(parts)
    while split > 0 and isinstance(parts[split - 1], int):
        split -= 1
    component = str(v0_2.Reference(parts[:split]))
    return component, tuple(int(index) for index in parts[split:])


def instance_name(component: str, indices: tuple[int, ...] | list[int]) -> str:
    """The canonical name of one instance of a component, e.g. ``micro[3]``."""
    return component + "".join(f"[{index}]" for index in indices)


class Topology:
    """The instances of a model and, for each pair of peers, the conduits between them.

    Attributes:
        model_name: The model's name, used in workflow snapshot descriptions.
    """

    def __init__(
        self,
        model_name: str,
        multiplicities: dict[str, list[int]],
        conduits: list[tuple[str, str, str, str]],
    ) -> None:
        """Build a topology from plain data.

        Args:
            model_name: The model's name.
            multiplicities: Component name to multiplicity (``[]`` for one instance).
            conduits: ``(sender component, sending port, receiver component,
                receiving port)`` for every conduit.

        Raises:
            TopologyError: A conduit names a component that is not in the model.
        """
        self.model_name = model_name
        self._dims = {name: list(dims) for name, dims in multiplicities.items()}
        self._conduits = [_Conduit(*conduit) for conduit in conduits]
        for conduit in self._conduits:
            for component in (conduit.sender, conduit.receiver):
                if component not in self._dims:
                    raise TopologyError(
                        f"A conduit connects to component {component!r}, which is not in model "
                        f"{model_name!r}. Check the conduits section of the configuration."
                    )
        self._instances = [
            instance_name(name, indices)
            for name, dims in self._dims.items()
            for indices in itertools.product(*(range(n) for n in dims))
        ]
        self._peers: dict[str, tuple[str, ...]] = {}
        self._pairs: dict[tuple[str, str], tuple[PortPair, ...]] = {}
        self._parsed: dict[str, tuple[str, tuple[int, ...]]] = {}

    @staticmethod
    def from_configuration(configuration: Any) -> Topology:
        """Read the topology of a configuration as ``ymmsl.load`` returns it.

        Args:
            configuration: A yMMSL v0.1 or v0.2 configuration.

        Raises:
            TopologyError: It has no model, or its model refers to other models
                (nested models must be flattened first, as the MUSCLE3 manager does).
        """
        try:
            model = root_model(configuration)
        except NoModelError as exc:
            raise TopologyError(str(exc)) from exc
        components = model.components
        component_list = list(components.values()) if isinstance(components, dict) else components
        multiplicities = {str(c.name): [int(n) for n in c.multiplicity] for c in component_list}
        _refuse_nested_models(configuration, model, component_list)
        conduits = [
            (
                str(c.sending_component()),
                str(c.sending_port()),
                str(c.receiving_component()),
                str(c.receiving_port()),
            )
            for c in model.conduits
        ]
        return Topology(str(model.name), multiplicities, conduits)

    def instances(self) -> list[str]:
        """Every instance of every component, components in declaration order."""
        return list(self._instances)

    def component_of(self, instance: str) -> str:
        """The component an instance belongs to.

        Raises:
            TopologyError: The instance is not part of the model.
        """
        component, indices = self._parse(instance)
        dims = self._dims.get(component)
        if (
            dims is None
            or len(indices) != len(dims)
            or any(not 0 <= i < n for i, n in zip(indices, dims, strict=True))
        ):
            raise TopologyError(
                f"Instance {instance!r} is not part of model {self.model_name!r}; its "
                f"instances are components {sorted(self._dims)} with their multiplicities."
            )
        return component

    def peers(self, instance: str) -> tuple[str, ...]:
        """The instances this instance shares a conduit with, each once."""
        cached = self._peers.get(instance)
        if cached is None:
            cached = self._compute_peers(instance)
            self._peers[instance] = cached
        return cached

    def port_pairs(self, instance: str, peer: str) -> tuple[PortPair, ...]:
        """All conduits between two peer instances, seen from ``instance``."""
        key = (instance, peer)
        cached = self._pairs.get(key)
        if cached is None:
            cached = self._compute_pairs(instance, peer)
            self._pairs[key] = cached
        return cached

    def _parse(self, instance: str) -> tuple[str, tuple[int, ...]]:
        """:func:`parse_instance`, once per name (peers and pairs ask for each many times)."""
        parsed = self._parsed.get(instance)
        if parsed is None:
            parsed = self._parsed[instance] = parse_instance(instance)
        return parsed

    def _compute_peers(self, instance: str) -> tuple[str, ...]:
        component = self.component_of(instance)
        _, indices = self._parse(instance)
        dims = self._dims[component]
        peers: list[str] = []
        for peer_component in self._peer_components(component):
            peer_dims = self._dims[peer_component]
            common = indices[: min(len(dims), len(peer_dims))]
            if len(peer_dims) <= len(dims):
                candidates = [instance_name(peer_component, common)]
            else:
                extra = itertools.product(*(range(n) for n in peer_dims[len(dims) :]))
                candidates = [instance_name(peer_component, common + rest) for rest in extra]
            peers.extend(p for p in candidates if p not in peers)
        return tuple(peers)

    def _peer_components(self, component: str) -> list[str]:
        found: list[str] = []
        for conduit in self._conduits:
            for mine, theirs in (
                (conduit.sender, conduit.receiver),
                (conduit.receiver, conduit.sender),
            ):
                if mine == component and theirs not in found:
                    found.append(theirs)
        return found

    def _compute_pairs(self, instance: str, peer: str) -> tuple[PortPair, ...]:
        component, indices = self._parse(instance)
        peer_component, peer_indices = self._parse(peer)
        pairs: list[PortPair] = []
        for conduit in self._conduits:
            if conduit.sender == component and conduit.receiver == peer_component:
                own_port, peer_port, own_sends = conduit.sending_port, conduit.receiving_port, True
            elif conduit.receiver == component and conduit.sender == peer_component:
                own_port, peer_port, own_sends = conduit.receiving_port, conduit.sending_port, False
            else:
                continue
            if len(indices) < len(peer_indices):
                pairs.append(
                    PortPair(
                        own_port,
                        peer_port,
                        own_sends,
                        SlotMapping.SELF_IS_VECTOR,
                        own_slot=peer_indices[-1],
                    )
                )
            elif len(indices) > len(peer_indices):
                pairs.append(
                    PortPair(
                        own_port,
                        peer_port,
                        own_sends,
                        SlotMapping.PEER_IS_VECTOR,
                        peer_slot=indices[-1],
                    )
                )
            else:
                pairs.append(PortPair(own_port, peer_port, own_sends, SlotMapping.SAME))
        return tuple(pairs)


def _refuse_nested_models(configuration: Any, model: Any, components: list[Any]) -> None:
    models = getattr(configuration, "models", None)
    if not isinstance(models, dict):
        return
    submodels = {str(name) for name in models if str(name) != str(model.name)}
    nested = [str(c.name) for c in components if str(getattr(c, "implementation", "")) in submodels]
    if nested:
        raise TopologyError(
            f"Components {nested} of model {model.name!s} are themselves models; flatten the "
            "configuration first (the MUSCLE3 manager does so before it starts)."
        )
