"""How the command line prints: tables for people, strict JSON for scripts, progress bars.

Tables fold to a terminal's width but take their natural width when piped,
because piped output goes to grep, awk or a file where a row folded over
several lines is useless. JSON is strict (no bare NaN), as jq and
JavaScript need.
"""

from __future__ import annotations

import json
import math
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from catalog.records import json_float

#: Console width when stdout is not a terminal: wide enough that no table row folds.
_PIPED_WIDTH = 10_000


def listing_table(title: str, columns: tuple[str, ...]) -> Table:
    """A listing table whose cells fold rather than being cut off."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def stdout() -> Console:
    """Rich output for stdout: folded to a terminal's width, but whole lines when piped.

    Piped output goes to grep, awk or a file, where a row folded over several
    lines is useless, so tables then take their natural width.
    """
    console = Console()
    return console if console.is_terminal else Console(width=_PIPED_WIDTH)


def echo_json(value: Any) -> None:
    """Strict JSON (no bare NaN), as jq and JavaScript need; records already spell NaN out."""
    click.echo(json.dumps(value, indent=2, allow_nan=False))


def float_text(value: float | None) -> str:
    """A float for a table cell: 6 significant digits; NaN and infinities spelled out."""
    if value is None:
        return ""
    if math.isnan(value) or math.isinf(value):
        return str(json_float(value))
    return f"{value:.6g}"
