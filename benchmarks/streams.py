"""Submission streams for benchmarking the registry: a vector macro with N micros.

The model is MUSCLE3's classic macro-micro coupling through vector ports:
``macro.o_i -> micro.f_i`` and ``micro.o_f -> macro.s`` with ``micro``
having multiplicity N. In step ``k`` the macro has sent and received ``k``
messages per slot when it saves its snapshot; each micro's final snapshot
of reuse iteration ``k`` has (after MUSCLE3's F_INIT decrement) received
``k`` and sent ``k`` messages, so it is consistent with macro snapshot
``k``, and every step completes exactly one workflow snapshot when its last
micro submits.
"""

from __future__ import annotations

from typing import Any


def macro_micro_ymmsl(num_micros: int) -> str:
    """The yMMSL (v0.2) configuration text of the benchmark model."""
    return f"""ymmsl_version: v0.2
models:
  bench:
    description: registry benchmark model
    components:
      macro:
        description: macro model
        ports:
          o_i: [o_i]
          s: [s]
        implementation: macro
      micro:
        description: micro model
        ports:
          f_init: [f_i]
          o_f: [o_f]
        implementation: micro
        multiplicity: [{num_micros}]
    conduits:
      macro.o_i: micro.f_i
      micro.o_f: macro.s
programs:
  macro:
    executable: /bin/true
  micro:
    executable: /bin/true
"""


def _metadata(
    triggers: list[str],
    timestamp: float,
    counts: dict[str, list[int]],
    final: bool,
    filename: str,
) -> dict[str, Any]:
    return {
        "triggers": triggers,
        "wallclock_time": timestamp * 10.0,
        "timestamp": timestamp,
        "next_timestamp": None,
        "port_message_counts": counts,
        "is_final_snapshot": final,
        "snapshot_filename": filename,
    }


def macro_micro_stream(num_micros: int, num_steps: int) -> list[tuple[str, dict[str, Any]]]:
    """The submissions (instance, metadata fields) of the benchmark model, in order.

    Args:
        num_micros: N, the number of micro instances.
        num_steps: K, the number of snapshots each instance makes.

    Returns:
        ``(instance, metadata as a dict of SnapshotMetadata fields)`` pairs;
        file names are relative to the run directory.
    """
    stream: list[tuple[str, dict[str, Any]]] = []
    for k in range(1, num_steps + 1):
        t = k / 10
        stream.append(
            (
                "macro",
                _metadata(
                    [f"simulation_time >= {t}"],
                    t,
                    {
                        "o_i": [k] * num_micros,
                        "s": [k] * num_micros,
                        "muscle_settings_in": [0],
                    },
                    False,
                    f"instances/macro/snapshots/macro_{k}.pack",
                ),
            )
        )
        for i in range(num_micros):
            stream.append(
                (
                    f"micro[{i}]",
                    _metadata(
                        [f"simulation_time >= {t}"],
                        t,
                        {"f_i": [k], "o_f": [k], "muscle_settings_in": [0]},
                        True,
                        f"instances/micro[{i}]/snapshots/micro-{i}_{k}.pack",
                    ),
                )
            )
    return stream
