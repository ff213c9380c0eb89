"""How the command line prints: tables for people, strict JSON for scripts, progress bars.

Tables fit a terminal's width (or ``$COLUMNS``) with one line per record:
long text (paths, triggers) is cut with an ellipsis rather than folded into
a tall row, and ``--json`` gives every value whole. Piped without
``$COLUMNS`` they take their natural width, because piped output goes to
grep, awk or a file where a cut or folded row is useless. JSON is strict (no
bare NaN), as jq and JavaScript need.

rich is imported by the functions that draw, so that importing this module
(every command does) stays cheap.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Protocol

import click

from catalog.records import RunRecord, json_float

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

#: Console width when stdout is not a terminal: wide enough that no table row folds.
_PIPED_WIDTH = 10_000


def listing_table(title: str, columns: tuple[str, ...], *, fixed: Collection[str] = ()) -> Table:
    """A listing table with one line per record, however narrow the terminal.

    Args:
        title: The table's title.
        columns: The column headers.
        fixed: Columns that keep their whole width (ids, counts, times);
            the others (names, paths, triggers) are cut with an ellipsis
            when the table does not fit.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    class _ListingTable(Table):
        def add_row(self, *renderables: Any, **kwargs: Any) -> None:
            super().add_row(*(_one_line(cell) for cell in renderables), **kwargs)

    def _one_line(cell: Any) -> Any:
        if isinstance(cell, str):
            return Text(cell, no_wrap=True, overflow="ellipsis")
        if isinstance(cell, Text):
            cell = cell.copy()
            cell.no_wrap, cell.overflow = True, "ellipsis"
        return cell

    table = _ListingTable(
        title=Text(title, no_wrap=True, overflow="ellipsis"),
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    for column in columns:
        if column in fixed:
            table.add_column(column, no_wrap=True, min_width=len(column))
        else:  # may shrink: rich only narrows columns that may wrap; cells stay one line
            table.add_column(column, overflow="ellipsis", min_width=min(len(column), 8))
    return table


def stdout() -> Console:
    """Rich output for stdout: a terminal's width, or ``$COLUMNS``; whole lines when piped.

    Piped output goes to grep, awk or a file, where a row cut to a width is
    useless, so tables then take their natural width, unless ``$COLUMNS``
    asks for a width.
    """
    from rich.console import Console

    console = Console()
    if console.is_terminal or os.environ.get("COLUMNS", "").strip().isdigit():
        return console
    return Console(width=_PIPED_WIDTH)


def echo_json(value: Any) -> None:
    """Strict JSON (no bare NaN), as jq and JavaScript need; records already spell NaN out."""
    click.echo(json.dumps(value, indent=2, allow_nan=False))


def echo_json_stream(objects: Iterable[dict[str, Any]]) -> None:
    """A JSON array written object by object, as ``echo_json`` would print the whole list."""
    first = True
    for value in objects:
        text = json.dumps(value, indent=2, allow_nan=False)
        click.echo(("[\n" if first else ",\n") + "  " + text.replace("\n", "\n  "), nl=False)
        first = False
    click.echo("[]" if first else "\n]")


def float_text(value: float | None) -> str:
    """A float for a table cell: 6 significant digits; NaN and infinities spelled out."""
    if value is None:
        return ""
    if math.isnan(value) or math.isinf(value):
        return str(json_float(value))
    return f"{value:.6g}"


@contextmanager
def progress_bar(description: str, threshold: int) -> Iterator[Callable[[int, int], None]]:
    """A ``(done, total)`` callback that shows a bar on stderr once the work turns out large.

    Small jobs print nothing: a bar that flashes for a second is noise.

    Args:
        description: What the bar says it is doing.
        threshold: The least ``total`` that gets a bar.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task: list[Any] = []

    def update(done: int, total: int) -> None:
        if total < threshold:
            return
        if not task:
            progress.start()
            task.append(progress.add_task(description, total=total))
        progress.update(task[0], completed=done, total=total)

    try:
        yield update
    finally:
        if task:  # stopping a bar never started would print an empty line
            progress.stop()


class RecordingReport(Protocol):
    """What import and watch both report about recording one run directory."""

    run_dir: Path
    snapshots_added: int
    snapshots_already_known: int
    workflow_snapshots_added: int
    workflow_snapshots_already_known: int
    relocated_paths: int
    original_run_dir: PurePath | None
    resumed_from: RunRecord | None
    newly_linked: list[RunRecord]
    notes: list[str]
    warnings: list[str]


def echo_recording(
    report: RecordingReport, run: RunRecord | None, names: Mapping[int, str]
) -> None:
    """The lines import and watch print under their heading: counts, relocation, lineage, notes.

    Each lineage link names both runs: the run linked and the run it resumed from.

    Args:
        report: What was recorded.
        run: The run recorded, refreshed (None if none appeared).
        names: Run id -> name, for the links.
    """
    if run is not None:
        click.echo(
            f"  snapshots: {report.snapshots_added} added, "
            f"{report.snapshots_already_known} already known"
        )
        click.echo(
            f"  workflow snapshots: {report.workflow_snapshots_added} added, "
            f"{report.workflow_snapshots_already_known} already known"
        )
    if report.relocated_paths:
        click.echo(
            f"  relocated: {report.relocated_paths} resume paths pointed to "
            f"{report.original_run_dir} and were resolved against {report.run_dir}"
        )
    if report.resumed_from is not None and run is not None:
        workflow = run.resumed_from_workflow_snapshot_id
        click.echo(
            f"  resumed from: {report.resumed_from.name} (run {report.resumed_from.id})"
            + (f", workflow snapshot {workflow}" if workflow is not None else "")
        )
    for linked in report.newly_linked:
        if run is None or linked.id != run.id:  # an earlier run whose origin this brought
            origin = names.get(linked.resumed_from_run_id or -1, "?")
            click.echo(
                f"  linked: {linked.name} (run {linked.id}) was resumed from {origin} "
                f"(run {linked.resumed_from_run_id})"
            )
    for note in report.notes:
        click.echo(f"  note: {note}")
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)
