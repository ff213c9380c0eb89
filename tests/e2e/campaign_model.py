"""A slow, deterministic macro-micro model for campaign tests: kill it midway, resume, compare.

``macro`` steps a counter; every step it sends it to each micro (vector port),
folds their answers (weighted by micro) into it and sleeps ``macro.step_sleep``
seconds, so that a run lasts long enough to be killed halfway. Both components save through
``catalog.muscle3.Instance``, the one-line change a user makes; the final
``total`` depends on every step, so a resumed run ends in the uninterrupted
run's state only if it resumed from a consistent point.

Usage (as a yMMSL program): ``python campaign_model.py macro|micro``
"""

from __future__ import annotations

import sys
import time

from libmuscle import InstanceFlags, Message
from ymmsl import Operator

from catalog.muscle3 import Instance

USES_CHECKPOINT_API = InstanceFlags.USES_CHECKPOINT_API


def macro() -> None:
    """Step a counter; send it to all micros, fold their answers into it."""
    instance = Instance({Operator.O_I: ["o_i[]"], Operator.S: ["s[]"]}, USES_CHECKPOINT_API)
    while instance.reuse_instance():
        t_max = instance.get_setting("t_max", "float")
        dt = instance.get_setting("dt", "float")
        pause = instance.get_setting("step_sleep", "float")
        if instance.resuming():
            message = instance.load_snapshot()
            t_cur, total = message.timestamp, message.data
        if instance.should_init():
            t_cur, total = 0.0, 1
        while t_cur + dt <= t_max + 1e-9:
            for slot in range(instance.get_port_length("o_i")):
                instance.send("o_i", Message(t_cur, None, total), slot)
            slots = range(instance.get_port_length("s"))
            answers = [(slot + 2) * instance.receive("s", slot).data for slot in slots]
            total = (total * 31 + sum(answers)) % 1_000_000_007
            t_cur += dt
            time.sleep(pause)
            if instance.should_save_snapshot(t_cur):
                instance.save_snapshot(Message(t_cur, None, total))
        if instance.should_save_final_snapshot():
            instance.save_final_snapshot(Message(t_cur, None, total))


def micro() -> None:
    """Answer each value with a function of it (the macro weighs the answers by micro)."""
    instance = Instance({Operator.F_INIT: ["f_i"], Operator.O_F: ["o_f"]}, USES_CHECKPOINT_API)
    while instance.reuse_instance():
        if instance.resuming():
            instance.load_snapshot()
        if instance.should_init():
            message = instance.receive("f_i")
            t_cur, value = message.timestamp, message.data
        instance.send("o_f", Message(t_cur, None, (value * 3 + 7) % 1_000_003))
        if instance.should_save_final_snapshot():
            instance.save_final_snapshot(Message(t_cur, None, value))


if __name__ == "__main__":
    {"macro": macro, "micro": micro}[sys.argv[1]]()
