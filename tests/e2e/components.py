"""A small macro-micro model on the real libmuscle, with checkpointing, for end-to-end tests.

``macro`` sends a counter to every micro (vector port) and collects their
answers; each ``micro`` adds one and reports back. Both use libmuscle's
checkpoint API so that a run makes snapshots and can be resumed.

Usage (as a yMMSL program): ``python components.py macro|micro``
"""

from __future__ import annotations

import sys

from libmuscle import Instance, InstanceFlags, Message
from ymmsl import Operator

USES_CHECKPOINT_API = InstanceFlags.USES_CHECKPOINT_API


def macro() -> None:
    """Step a counter; at every step send it to all micros and sum their answers."""
    instance = Instance({Operator.O_I: ["o_i[]"], Operator.S: ["s[]"]}, USES_CHECKPOINT_API)
    while instance.reuse_instance():
        t_max = instance.get_setting("t_max", "float")
        dt = instance.get_setting("dt", "float")
        if instance.resuming():
            message = instance.load_snapshot()
            t_cur, total = message.timestamp, message.data
        if instance.should_init():
            t_cur, total = 0.0, 0
        while t_cur + dt <= t_max + 1e-9:
            for slot in range(instance.get_port_length("o_i")):
                instance.send("o_i", Message(t_cur, None, total), slot)
            for slot in range(instance.get_port_length("s")):
                total += instance.receive("s", slot).data
            t_cur += dt
            if instance.should_save_snapshot(t_cur):
                instance.save_snapshot(Message(t_cur, None, total))
        if instance.should_save_final_snapshot():
            instance.save_final_snapshot(Message(t_cur, None, total))


def micro() -> None:
    """Answer each value received with that value plus one."""
    instance = Instance({Operator.F_INIT: ["f_i"], Operator.O_F: ["o_f"]}, USES_CHECKPOINT_API)
    while instance.reuse_instance():
        if instance.resuming():
            instance.load_snapshot()
        if instance.should_init():
            message = instance.receive("f_i")
            t_cur, value = message.timestamp, message.data
        instance.send("o_f", Message(t_cur, None, value + 1))
        if instance.should_save_final_snapshot():
            instance.save_final_snapshot(Message(t_cur, None, value))


if __name__ == "__main__":
    {"macro": macro, "micro": micro}[sys.argv[1]]()
