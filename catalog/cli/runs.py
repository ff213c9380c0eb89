"""Commands about runs: ``import`` run directories, list ``runs``, show a run's ``lineage``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from catalog.cli.group import Options, cli, get_options
from catalog.location import sqlite_path
from catalog.records import RecordList, RunRecord, json_float

if TYPE_CHECKING:  # imported by the commands that use them, to keep `runs` light
    from catalog.lineage import LineageStep
    from catalog.run_import import ImportReport

#: Directories with at least this many ``.pack`` files get a progress bar.
PROGRESS_THRESHOLD = 200


@cli.command("import")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def import_command(ctx: click.Context, run_dirs: tuple[Path, ...]) -> None:
    """Record existing MUSCLE3 run directories (any version); re-importing adds nothing."""
    from catalog.cli.output import progress_bar
    from catalog.run_dir import check_run_directory
    from catalog.run_import import import_run_directory

    checked = [check_run_directory(d) for d in run_dirs]
    catalog = get_options(ctx).open(ctx, create=True)
    for run_dir in checked:
        with progress_bar(f"Reading {run_dir.name}", PROGRESS_THRESHOLD) as progress:
            report = import_run_directory(catalog, run_dir, progress=progress)
        _print_report(report, {run.id: run.name for run in catalog.runs()})


def _print_report(report: ImportReport, names: Mapping[int, str]) -> None:
    from catalog.cli.output import echo_recording

    click.echo(f"Imported {report.run_name} (run {report.run_id}) from {report.run_dir}")
    echo_recording(report, report.run, names)


@cli.command("runs")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def runs_command(ctx: click.Context, as_json: bool) -> None:
    """List the runs of the campaign: status, counts, and which run each resumed from."""
    from catalog.cli.output import echo_json, listing_table, stdout
    from catalog.maintenance.retention import format_bytes

    options = get_options(ctx)
    runs, location = _runs_without_sqlalchemy(options)
    if runs is None:
        catalog = options.open(ctx, create=False, read_only=True)
        runs, location = catalog.runs(), catalog.location
    names = {run.id: run.name for run in runs}
    if as_json:
        echo_json([_run_json(run, names) for run in runs])
        return
    from rich.text import Text

    console = stdout()
    # Narrow terminals drop the model, end time and directory (``--json`` has every field).
    wide = console.width >= 110
    columns = ["id", "name", "model", "status", "started", "finished", "sim. time"]
    columns += ["snaps", "wfs", "size", "resumed from", "run dir"]
    if not wide:
        columns = [c for c in columns if c not in ("model", "finished", "run dir")]
    table = listing_table(
        f"Runs in {location}", tuple(columns), fixed=("id", "status", "snaps", "wfs", "size")
    )
    for run in runs:
        origin = names.get(run.resumed_from_run_id or -1, "")
        if origin and run.resumed_from_workflow_snapshot_id is not None:
            origin += f" (workflow {run.resumed_from_workflow_snapshot_id})"
        cells: dict[str, str | Text] = {
            "id": str(run.id),
            "name": Text(run.name),
            "model": Text(run.model_name or ""),
            "status": run.status,
            "started": _when(run.created_at),
            "finished": _when(run.finished_at),
            "sim. time": _span(run.first_timestamp, run.last_timestamp),
            "snaps": str(run.num_snapshots),
            "wfs": str(run.num_workflow_snapshots),
            "size": format_bytes(run.size_bytes),
            "resumed from": Text(origin),
            "run dir": Text(str(run.run_dir)),
        }
        table.add_row(*(cells[c] for c in columns))
    console.print(table)


def _runs_without_sqlalchemy(options: Options) -> tuple[RecordList[RunRecord] | None, str]:
    """The runs of a SQLite catalog at this revision, read with sqlite3 alone (see its module).

    Returns:
        The runs and the catalog's name, or None when the full catalog must
        answer (PostgreSQL, another revision): it then opens, refuses or
        explains as every command does.

    Raises:
        CatalogError: There is no catalog, or the file is not one (the same
            errors, from the same checks, as opening the catalog gives).
    """
    from catalog.db.sqlite_file import check_sqlite_file
    from catalog.db.sqlite_reader import sqlite_runs

    options.require_existing()
    db_file = sqlite_path(options.location)
    if db_file is None:
        return None, ""
    check_sqlite_file(db_file, create=False, read_only=True)
    return sqlite_runs(db_file), str(db_file)


def _run_json(run: RunRecord, names: Mapping[int, str]) -> dict[str, Any]:
    """A run as ``runs --json`` prints it; ``resumed_from_run`` is the origin's name."""
    return {
        "id": run.id,
        "name": run.name,
        "run_dir": str(run.run_dir),
        "model": run.model_name,
        "source": run.source,
        "status": run.status,
        "started_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "resumed_from_run": names.get(run.resumed_from_run_id or -1),
        "resumed_from_workflow_snapshot": run.resumed_from_workflow_snapshot_id,
        "num_snapshots": run.num_snapshots,
        "num_workflow_snapshots": run.num_workflow_snapshots,
        "first_timestamp": json_float(run.first_timestamp),
        "last_timestamp": json_float(run.last_timestamp),
        "size_bytes": run.size_bytes,
    }


def _when(moment: dt.datetime | None) -> str:
    """A time for a table cell: UTC month, day and minute (``--json`` has the full ISO time)."""
    return "" if moment is None else moment.astimezone(dt.UTC).strftime("%m-%d %H:%M")


def _span(first: float | None, last: float | None) -> str:
    """A run's simulation-time span for a table cell."""
    if first is None or last is None:
        return ""
    return f"{first:.4g}..{last:.4g}"


@cli.command("lineage")
@click.argument("run", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def lineage_command(ctx: click.Context, run: str, as_json: bool) -> None:
    """Show the chain of runs RUN (name or id) resumed from, back to the first.

    Each step names the workflow snapshot the run started from and its
    simulation time.
    """
    from catalog.cli.output import echo_json
    from catalog.lineage import lineage_of

    catalog = get_options(ctx).open(ctx, create=False, read_only=True)
    chain = lineage_of(catalog, run)
    if as_json:
        echo_json([_step_json(step) for step in chain])
        return
    for step in chain:
        click.echo(f"{step.run.name} (run {step.run.id}, {step.run.status}): {_started(step)}")


def _started(step: LineageStep) -> str:
    from catalog.resume import simulation_time

    if step.origin_run is None:
        return "no recorded origin: started from scratch, or from snapshots not in this catalog"
    origin = f"{step.origin_run.name} (run {step.origin_run.id})"
    workflow = step.workflow_snapshot
    if workflow is None:
        return f"resumed from {origin}, from snapshots that form no recorded workflow snapshot"
    return (
        f"resumed from workflow snapshot {workflow.id} of {origin}, "
        f"simulation time {simulation_time(workflow)}"
    )


def _step_json(step: LineageStep) -> dict[str, Any]:
    workflow = step.workflow_snapshot
    return {
        "run": step.run.name,
        "id": step.run.id,
        "status": step.run.status,
        "resumed_from_run": step.origin_run.name if step.origin_run else None,
        "resumed_from_workflow_snapshot": workflow.id if workflow else None,
        "simulation_time": json_float(workflow.timestamp) if workflow else None,
    }
