"""The model the overhead benchmark runs: a macro with a vector of micros, exchanging grids.

``macro`` sends a grid of ``size`` floats to every micro each step and sums
what comes back; each ``micro`` relaxes the grid a little and returns it.
Both checkpoint through libmuscle's API (every simulation-time interval and at
the end), so a run saves many snapshots with real array payloads.

Which ``Instance`` the components use comes from ``MUSCLE_CATALOG_BENCH_INSTANCE``:
``libmuscle`` (plain MUSCLE3) or ``catalog`` (``catalog.muscle3.Instance``), so
the same code is timed both ways. Usage (as a yMMSL program)::

    python overhead_components.py macro|micro
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
from libmuscle import Grid, InstanceFlags, Message
from ymmsl import Operator


def _instance_class() -> Any:
    if os.environ.get("MUSCLE_CATALOG_BENCH_INSTANCE", "libmuscle") == "catalog":
        from catalog.muscle3 import Instance as CatalogInstance

        return CatalogInstance
    from libmuscle import Instance as PlainInstance

    return PlainInstance


FLAGS = InstanceFlags.USES_CHECKPOINT_API


def macro() -> None:
    """Send a grid to every micro each step; keep the sum of their answers as state."""
    instance = _instance_class()({Operator.O_I: ["o_i[]"], Operator.S: ["s[]"]}, FLAGS)
    while instance.reuse_instance():
        t_max = instance.get_setting("t_max", "float")
        dt = instance.get_setting("dt", "float")
        size = instance.get_setting("size", "int")
        if instance.resuming():
            message = instance.load_snapshot()
            t_cur, state = message.timestamp, message.data.array.copy()
        if instance.should_init():
            t_cur, state = 0.0, np.linspace(0.0, 1.0, size)
        while t_cur + dt <= t_max + 1e-9:
            for slot in range(instance.get_port_length("o_i")):
                instance.send("o_i", Message(t_cur, None, Grid(state)), slot)
            answers = [
                instance.receive("s", slot).data.array
                for slot in range(instance.get_port_length("s"))
            ]
            state = np.mean(answers, axis=0)
            t_cur += dt
            if instance.should_save_snapshot(t_cur):
                instance.save_snapshot(Message(t_cur, None, Grid(state)))
        if instance.should_save_final_snapshot():
            instance.save_final_snapshot(Message(t_cur, None, Grid(state)))


def micro() -> None:
    """Smooth the grid it receives and send it back (stateless between uses)."""
    instance = _instance_class()({Operator.F_INIT: ["f_i"], Operator.O_F: ["o_f"]}, FLAGS)
    while instance.reuse_instance():
        if instance.resuming():
            instance.load_snapshot()
        if instance.should_init():
            message = instance.receive("f_i")
            t_cur, grid = message.timestamp, message.data.array
        smoothed = np.convolve(grid, [0.25, 0.5, 0.25], mode="same")
        instance.send("o_f", Message(t_cur, None, Grid(smoothed)))
        if instance.should_save_final_snapshot():
            instance.save_final_snapshot(Message(t_cur, None, Grid(smoothed)))


if __name__ == "__main__":
    {"macro": macro, "micro": micro}[sys.argv[1]]()
