"""Submission streams the real MUSCLE3 registry saw, with what it found, for parity tests."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ymmsl

from catalog.catalog import Catalog
from catalog.registry import SnapshotRegistry
from tests.conftest import REGISTRY_CASES, RUNS

#: The date the oracle's descriptions carry.
FIXED_DATE = dt.datetime(2000, 1, 1)


@dataclass(frozen=True)
class Stream:
    """One replayable case.

    Attributes:
        name: Case name.
        ymmsl_text: The model configuration.
        submissions: ``(instance, metadata dict)`` in the order the registry got them.
        expected: The oracle's output (``registry_output.json`` / ``.output.json``).
    """

    name: str
    ymmsl_text: str
    submissions: list[tuple[str, dict[str, Any]]]
    expected: dict[str, Any]

    def configuration(self) -> Any:
        return ymmsl.load(self.ymmsl_text)

    def sets_by_submission(self) -> dict[int, list[dict[str, int | None]]]:
        """Submission index -> the workflow snapshots MUSCLE3 found for it (member submissions)."""
        found: dict[int, list[dict[str, int | None]]] = {}
        for workflow in self.expected["workflow_snapshots"]:
            found.setdefault(workflow["after_submission"], []).append(
                workflow["selected_submission"]
            )
        return found


def _metadata(raw: dict[str, Any]) -> dict[str, Any]:
    def number(value: Any) -> Any:
        if isinstance(value, str):
            return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[value]
        return value

    fixed = dict(raw)
    fixed["timestamp"] = number(raw["timestamp"])
    fixed["next_timestamp"] = number(raw["next_timestamp"])
    fixed["wallclock_time"] = number(raw["wallclock_time"])
    return fixed


def _load(name: str, data: dict[str, Any], expected: dict[str, Any]) -> Stream:
    return Stream(
        name=name,
        ymmsl_text=data["ymmsl"],
        submissions=[(s["instance"], _metadata(s["metadata"])) for s in data["submissions"]],
        expected=expected,
    )


def registry_cases() -> list[Stream]:
    """The synthetic streams under ``registry_cases/``."""
    streams = []
    for path in sorted(REGISTRY_CASES.glob("*.input.json")):
        name = path.name.removesuffix(".input.json")
        output = path.with_name(f"{name}.output.json")
        streams.append(_load(name, json.loads(path.read_text()), json.loads(output.read_text())))
    return streams


def run_streams() -> list[Stream]:
    """The live orders recorded from real runs (``runs/<version>/<run>/registry_input.json``)."""
    streams = []
    for path in sorted(RUNS.glob("*/*/registry_input.json")):
        run = path.parent
        streams.append(
            _load(
                f"{run.parent.name}/{run.name}",
                json.loads(path.read_text()),
                json.loads((run / "registry_output.json").read_text()),
            )
        )
    return streams


def all_streams() -> list[Stream]:
    return registry_cases() + run_streams()


def vector_model(micros: int) -> str:
    """YMMSL text of the classic macro-micro model: ``macro`` with ``micro[0..micros-1]``."""
    return f"""ymmsl_version: v0.2
models:
  mm:
    description: macro with {micros} micros through vector ports
    components:
      macro: {{ports: {{o_i: [o_i], s: [s]}}, description: m, implementation: m}}
      micro:
        ports: {{f_init: [f_i], o_f: [o_f]}}
        description: u
        implementation: u
        multiplicity: [{micros}]
    conduits:
      macro.o_i: micro.f_i
      micro.o_f: macro.s
programs:
  m: {{executable: x}}
  u: {{executable: x}}
"""


def replay_registry(stream: Stream, catalog: Catalog, run_dir: Path) -> SnapshotRegistry:
    """Send a stream through a SnapshotRegistry (dates fixed to 2000-01-01, as the oracle's)."""
    registry = SnapshotRegistry(
        stream.configuration(), run_dir / "snapshots", catalog, clock=lambda: FIXED_DATE
    )
    for instance, metadata in stream.submissions:
        registry.register_snapshot(instance, metadata)
    registry.shutdown()
    return registry


def run_dir_of(stream: Stream) -> Path | None:
    """The run directory a run stream came from, if it is one."""
    if "/" not in stream.name:
        return None
    return RUNS / stream.name
