"""The values a snapshot carries: messages, grids and MUSCLE3's special markers.

These mirror libmuscle's public classes field for field, so that code written
for libmuscle (``msg.timestamp``, ``msg.data.array``, ...) works unchanged on
what this package loads, and so that everything libmuscle can put in a
snapshot survives a round trip through our ``.pack`` codec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ymmsl import Settings


class ClosePort:
    """The marker MUSCLE3 0.7-0.10 sends when a port is closed (ext type 0)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClosePort)

    def __hash__(self) -> int:
        return hash(ClosePort)

    def __repr__(self) -> str:
        return "ClosePort()"


@dataclass(eq=True)
class Milestone:
    """The marker MUSCLE3 0.11 sends in place of ClosePort (ext type 0).

    Attributes:
        iteration: The timeline iteration the milestone marks.
    """

    iteration: list[int] = field(default_factory=list)


class Grid:
    """A numpy array with optional index names, as libmuscle's ``Grid``.

    A bare numpy array stored by MUSCLE3 comes back as a ``Grid`` without
    indexes, exactly as libmuscle returns it, so that ``msg.data.array`` works
    the same on both sides.

    Attributes:
        array: The data. Kept as given; C or Fortran order is preserved.
        indexes: One name per dimension, or None.
    """

    def __init__(self, array: np.ndarray[Any, Any], indexes: list[str] | None = None) -> None:
        if indexes is not None and len(indexes) != array.ndim:
            raise ValueError(
                f"Grid has {array.ndim} dimensions but {len(indexes)} index names were given"
            )
        self.array = array
        self.indexes = indexes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Grid):
            return NotImplemented
        return (
            self.indexes == other.indexes
            and self.array.dtype == other.array.dtype
            and self.array.shape == other.array.shape
            and bool(np.array_equal(self.array, other.array))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Grid({self.array!r}, {self.indexes!r})"


@dataclass
class Message:
    """A message as libmuscle's ``Message``: what an instance saves as its state.

    Attributes:
        timestamp: Simulation time the message (state) belongs to.
        next_timestamp: Simulation time of the next message, if known.
        data: The payload: None, bool, int, float, str, bytes, lists, dicts,
            numpy arrays, :class:`Grid`, :class:`ClosePort` or Settings.
        settings: The settings overlay sent along with the message.
    """

    timestamp: float
    next_timestamp: float | None = None
    data: Any = None
    settings: Settings | None = None
