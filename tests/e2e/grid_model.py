"""A checkpointed macro-micro model exchanging Grids, to test ``catalog.muscle3.Instance`` with.

``macro`` holds a 1-D state; at every step it sends it to ``micro`` as a
``libmuscle.Grid`` with indexes and takes back micro's answer, which decays
the state in smaller steps. The macro's snapshots hold every kind of value
libmuscle stores (Grids with indexes, bare arrays of each dtype in C and
Fortran order, nested lists and dicts, bytes, None, booleans, Settings);
micro's intermediate snapshots hold a Grid and its final ones nothing, so
that resuming from a final micro snapshot re-receives its F_INIT message.

The environment variable ``CATALOG_E2E_INSTANCE`` picks the Instance class:
``catalog`` (default) for ``catalog.muscle3.Instance``, ``libmuscle`` for
plain ``libmuscle.Instance``. Nothing else in the program differs, which is
the point: the one-line change. Runs unchanged on MUSCLE3 0.10 and 0.11.

Usage (as a yMMSL program): ``python grid_model.py macro|micro``
"""

from __future__ import annotations

import os
import sys
from typing import Any

import libmuscle
import numpy as np
from libmuscle import Grid, InstanceFlags, Message
from ymmsl import Operator, Settings

#: Environment variable choosing the Instance class (``catalog`` or ``libmuscle``).
IMPLEMENTATION = "CATALOG_E2E_INSTANCE"
USES_CHECKPOINT_API = InstanceFlags.USES_CHECKPOINT_API


def _instance_class() -> type[libmuscle.Instance]:
    if os.environ.get(IMPLEMENTATION, "catalog") == "libmuscle":
        return libmuscle.Instance
    from catalog.muscle3 import Instance

    return Instance


def _macro_state(t_cur: float, state: np.ndarray[Any, Any], step: int) -> Message:
    return Message(
        t_cur,
        None,
        {
            "state": Grid(state, ["x"]),
            "step": step,
            "i32_fortran": np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3) * step),
            "flags": np.array([True, False, step % 2 == 0]),
            "f32": np.arange(4, dtype=np.float32).reshape(2, 2),
            "i64": np.array([1, 2, step], dtype=np.int64),
            "nested": [1, 2.5, "s", b"raw", None, True, {"k": [1, 2]}],
            "config": Settings({"alpha": 1.5, "name": "x", "vec": [1.0, 2.0]}),
        },
    )


def macro() -> None:
    """Step the state; every step, have micro work on it."""
    instance = _instance_class()({Operator.O_I: ["o_i"], Operator.S: ["s"]}, USES_CHECKPOINT_API)
    while instance.reuse_instance():
        t_max = instance.get_setting("t_max", "float")
        dt = instance.get_setting("dt", "float")
        if instance.resuming():
            message = instance.load_snapshot()
            # libmuscle's own classes come back, whichever Instance saved them
            assert type(message) is Message and type(message.data["state"]) is Grid
            t_cur, step = message.timestamp, message.data["step"]
            state = message.data["state"].array.copy()
        if instance.should_init():
            t_cur, step, state = 0.0, 0, np.linspace(0.0, 1.0, 8)
        while t_cur + dt <= t_max + 1e-9:
            instance.send("o_i", Message(t_cur, t_cur + dt, Grid(state, ["x"])))
            state = instance.receive("s").data.array.copy()
            t_cur += dt
            step += 1
            if instance.should_save_snapshot(t_cur):
                instance.save_snapshot(_macro_state(t_cur, state, step))
        if instance.should_save_final_snapshot():
            instance.save_final_snapshot(_macro_state(t_cur, state, step))


def micro() -> None:
    """Decay the state received in small steps until the macro's next time, and send it back."""
    instance = _instance_class()(
        {Operator.F_INIT: ["f_i"], Operator.O_F: ["o_f"]}, USES_CHECKPOINT_API
    )
    while instance.reuse_instance():
        dt = instance.get_setting("dt", "float")
        if instance.resuming():
            message = instance.load_snapshot()
            if message.data is not None:  # intermediate: carry on inside the iteration
                t_cur, t_stop = message.timestamp, message.data["t_stop"]
                state = message.data["state"].array.copy()
        if instance.should_init():
            message = instance.receive("f_i")
            t_cur, t_stop = message.timestamp, message.next_timestamp
            state = message.data.array.copy()
        while t_cur + dt <= t_stop + 1e-9:
            state = state * 0.99
            t_cur += dt
            if instance.should_save_snapshot(t_cur):
                data = {"state": Grid(state, ["x"]), "t_stop": t_stop}
                instance.save_snapshot(Message(t_cur, None, data))
        instance.send("o_f", Message(t_cur, None, Grid(state, ["x"])))
        if instance.should_save_final_snapshot():
            instance.save_final_snapshot(Message(t_cur, None, None))


if __name__ == "__main__":
    {"macro": macro, "micro": micro}[sys.argv[1]]()
