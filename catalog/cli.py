"""The ``muscle-catalog`` command: import runs, list snapshots, pick resume points, upgrade.

Thin on purpose: each subcommand parses its options, calls the library
(:mod:`catalog.catalog`, :mod:`catalog.run_import`, :mod:`catalog.resume`, ...) and
prints the result, as a rich table for people or as JSON for scripts. All the
behaviour worth testing lives in the library, where notebooks get it too.

Errors a user can cause (a wrong path, an unreachable or outdated catalog, a
broken file) are printed as one ``Error: ...`` line on stderr with exit code 1,
never as a traceback: they are the user's to fix, and the message says how.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from catalog.catalog import Catalog, open_catalog
from catalog.db.versioning import upgrade_location
from catalog.errors import CatalogError
from catalog.location import (
    CATALOG_ENV,
    DEFAULT_CATALOG_NAME,
    display_location,
    sqlite_file,
    to_url,
)
from catalog.message import ClosePort, Grid, Message, Milestone
from catalog.records import RunRecord, SnapshotRecord, json_float
from catalog.replay import reindex_run, workflows_containing
from catalog.resume import resume_file_for, select_workflow_snapshot, simulation_time
from catalog.run_dir import check_run_directory
from catalog.run_import import ImportReport, ProgressCallback
from catalog.run_import import import_run_directory as _import_run_directory
from catalog.store import LoadedFile, load_pack

#: Directories with at least this many ``.pack`` files get a progress bar.
PROGRESS_THRESHOLD = 200

#: Console width when stdout is not a terminal: wide enough that no table row folds.
_PIPED_WIDTH = 10_000


@dataclass
class _Options:
    """The group's options, handed to every subcommand."""

    location: str

    @property
    def display(self) -> str:
        """The catalog's name for messages, without a password."""
        return display_location(to_url(self.location))

    def open(self, ctx: click.Context, *, create: bool) -> Catalog:
        """Open the catalog for the rest of the command (closed when it ends).

        Args:
            ctx: The command's context, which closes the catalog afterwards.
            create: Create the catalog if it does not exist (``import``);
                query commands refuse instead, so a typo in ``--catalog``
                does not leave an empty catalog behind.
        """
        db_file = sqlite_file(to_url(self.location))
        if not create and db_file is not None and not db_file.exists():
            raise CatalogError(
                f"There is no catalog at {db_file}. Import a run first "
                "(muscle-catalog import RUN_DIR) or choose the catalog with --catalog or "
                f"{CATALOG_ENV}."
            )
        catalog = open_catalog(self.location, create=create)
        ctx.call_on_close(catalog.close)
        return catalog


def _options(ctx: click.Context) -> _Options:
    """The group's options (always set: subcommands run inside the group)."""
    options = ctx.find_object(_Options)
    if options is None:  # pragma: no cover - a subcommand invoked without its group
        raise click.UsageError("Run this command through muscle-catalog.")
    return options


class _CatalogGroup(click.Group):
    """A click group that turns the errors users can cause into one ``Error:`` line."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand, reporting catalog, database and file errors without a traceback."""
        try:
            return super().invoke(ctx)
        except CatalogError as exc:
            raise click.ClickException(_one_line(str(exc))) from exc
        except SQLAlchemyError as exc:
            raise click.ClickException(_database_error(ctx, exc)) from exc
        except OSError as exc:
            raise click.ClickException(_one_line(str(exc))) from exc


def _database_error(ctx: click.Context, exc: SQLAlchemyError) -> str:
    """A database error as one line naming the catalog (psycopg's messages span lines)."""
    cause = _one_line(str(getattr(exc, "orig", None) or exc))
    options = ctx.find_object(_Options)
    where = options.display if options is not None else "the catalog"
    return (
        f"Cannot use the catalog {where} ({cause}). Check the --catalog path or URL "
        f"(or {CATALOG_ENV}) and that the database server is running."
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


@click.group(cls=_CatalogGroup)
@click.option(
    "--catalog",
    "location",
    metavar="PATH_OR_URL",
    envvar=CATALOG_ENV,
    show_envvar=True,
    default=DEFAULT_CATALOG_NAME,
    show_default=True,
    help="SQLite file or SQLAlchemy URL (postgresql+psycopg://user@host/db) of the catalog.",
)
@click.pass_context
def cli(ctx: click.Context, location: str) -> None:
    """Catalog of MUSCLE3 checkpoint snapshots: import runs, query snapshots."""
    ctx.obj = _Options(location=location)


# --------------------------------------------------------------------------- import


@cli.command("import")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def import_command(ctx: click.Context, run_dirs: tuple[Path, ...]) -> None:
    """Record existing MUSCLE3 run directories (any version); re-importing adds nothing."""
    checked = [check_run_directory(d) for d in run_dirs]
    catalog = _options(ctx).open(ctx, create=True)
    for run_dir in checked:
        with _progress_bar(run_dir) as progress:
            report = _import_run_directory(catalog, run_dir, progress=progress)
        _print_report(report)


@contextmanager
def _progress_bar(run_dir: Path) -> Iterator[ProgressCallback]:
    """A progress callback that shows a bar on stderr once a directory turns out to be large."""
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task: list[Any] = []

    def update(done: int, total: int) -> None:
        if total < PROGRESS_THRESHOLD:
            return
        if not task:
            progress.start()
            task.append(progress.add_task(f"Reading {run_dir.name}", total=total))
        progress.update(task[0], completed=done, total=total)

    try:
        yield update
    finally:
        if task:  # stopping a bar never started would print an empty line
            progress.stop()


def _print_report(report: ImportReport) -> None:
    click.echo(f"Imported {report.run_name} (run {report.run_id}) from {report.run_dir}")
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
    if report.resumed_from is not None:
        click.echo(f"  resumed from: {report.resumed_from.name} (run {report.resumed_from.id})")
    for linked in report.newly_linked:
        if linked.id != report.run_id:
            click.echo(f"  linked: {linked.name} was resumed from this run")
    for note in report.notes:
        click.echo(f"  note: {note}")
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)


# --------------------------------------------------------------------------- runs


@cli.command("runs")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def runs_command(ctx: click.Context, as_json: bool) -> None:
    """List the runs of the campaign."""
    catalog = _options(ctx).open(ctx, create=False)
    runs = catalog.runs()
    names = {run.id: run.name for run in runs}
    if as_json:
        _echo_json([_run_json(run, names) for run in runs])
        return
    table = _table(
        f"Runs in {catalog.location}",
        ("id", "name", "model", "snapshots", "source", "resumed from", "run directory"),
    )
    for run in runs:
        table.add_row(
            str(run.id),
            Text(run.name),
            Text(run.model_name or ""),
            str(run.num_snapshots),
            run.source,
            Text(names.get(run.resumed_from_run_id or -1, "")),
            Text(str(run.run_dir)),
        )
    _stdout().print(table)


def _run_json(run: RunRecord, names: Mapping[int, str]) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "run_dir": str(run.run_dir),
        "model_name": run.model_name,
        "source": run.source,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "resumed_from": names.get(run.resumed_from_run_id or -1),
        "num_snapshots": run.num_snapshots,
    }


# --------------------------------------------------------------------------- snapshots


@cli.command("snapshots")
@click.option("--run", "run", metavar="RUN", help="Only this run (name or id).")
@click.option("--instance", metavar="INSTANCE", help="Only this instance, e.g. micro[3].")
@click.option(
    "--final/--intermediate",
    "final",
    default=None,
    help="Only final or only intermediate snapshots (default: both).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def snapshots_command(
    ctx: click.Context, run: str | None, instance: str | None, final: bool | None, as_json: bool
) -> None:
    """List recorded snapshots, in run and recorded order."""
    catalog = _options(ctx).open(ctx, create=False)
    records = catalog.snapshots(run=run, instance=instance, final=final)
    if as_json:
        _echo_json([record.to_json() for record in records])
        return
    table = _table(
        f"{len(records)} snapshots in {catalog.location}",
        ("id", "run", "instance", "file", "t", "next t", "wallclock", "type", "triggers"),
    )
    for record in records:
        table.add_row(
            str(record.id),
            Text(record.run),
            Text(record.instance),
            Text(record.path.name),
            _float(record.timestamp),
            _float(record.next_timestamp),
            _float(record.wallclock_time),
            _kind(record),
            Text(", ".join(record.triggers)),
        )
    _stdout().print(table)


def _kind(record: SnapshotRecord) -> str:
    kind = "final" if record.is_final_snapshot else "intermediate"
    return f"{kind}, implicit" if record.is_implicit else kind


# --------------------------------------------------------------------------- show


@cli.command("show")
@click.argument("snapshot", metavar="PACK_FILE_OR_SNAPSHOT_ID")
@click.pass_context
def show_command(ctx: click.Context, snapshot: str) -> None:
    """Show one snapshot's metadata and message, read from its file.

    SNAPSHOT is a .pack file (recorded or not) or a snapshot id from
    `muscle-catalog snapshots`.
    """
    options = _options(ctx)
    path = Path(snapshot)
    if path.exists():
        loaded = load_pack(path)
        record = _record_of_file(ctx, options, path)
    elif snapshot.isdigit():
        record = options.open(ctx, create=False).snapshot(int(snapshot))
        loaded = load_pack(record.path)
    else:
        raise CatalogError(
            f"{snapshot} is neither an existing .pack file nor a snapshot id. Give a path to "
            "a snapshot file, or an id listed by `muscle-catalog snapshots`."
        )
    _stdout().print(_show_table(loaded, record))


def _record_of_file(ctx: click.Context, options: _Options, path: Path) -> SnapshotRecord | None:
    """The catalog's record of a file, if there is a catalog and the file is in it."""
    try:
        return options.open(ctx, create=False).snapshot_by_path(path)
    except (CatalogError, SQLAlchemyError):
        return None  # showing a file must not depend on having a catalog


def _show_table(loaded: LoadedFile, record: SnapshotRecord | None) -> Table:
    snapshot = loaded.snapshot
    table = Table(title=f"Snapshot {loaded.path}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows: list[tuple[str, str]] = []
    if record is not None:
        rows += [("catalog id", str(record.id)), ("run", record.run)]
        rows += [("instance", record.instance), ("recorded order", str(record.submission_order))]
    else:
        rows.append(("catalog", "not recorded in the catalog"))
    rows += [
        ("format version", str(snapshot.format_version)),
        ("size", f"{loaded.size_bytes} bytes"),
        ("sha256", loaded.sha256),
        ("triggers", ", ".join(snapshot.triggers)),
        ("wallclock time", _float(snapshot.wallclock_time)),
        ("final snapshot", str(snapshot.is_final_snapshot)),
        ("port message counts", json.dumps(snapshot.port_message_counts)),
        ("settings overlay", _settings(snapshot.settings_overlay)),
    ]
    rows += _message_rows(snapshot.message)
    for name, value in rows:
        table.add_row(name, Text(value))
    return table


def _message_rows(message: Message | None) -> list[tuple[str, str]]:
    if message is None:
        return [("message", "none (implicit snapshot of a stateless instance; timestamp NaN)")]
    return [
        ("timestamp", _float(message.timestamp)),
        ("next timestamp", _float(message.next_timestamp)),
        ("data", describe_data(message.data)),
        ("message settings", _settings(message.settings)),
    ]


def describe_data(data: Any) -> str:
    """A one-line summary of a message's data: its type and shape, not its values.

    Snapshot data can be large arrays; a summary tells what a snapshot holds
    without flooding the terminal.
    """
    if isinstance(data, Grid):
        indexes = f", indexes {data.indexes}" if data.indexes else ""
        return f"Grid of {data.array.dtype}, shape {data.array.shape}{indexes}"
    if isinstance(data, np.ndarray):
        return f"array of {data.dtype}, shape {data.shape}"
    if isinstance(data, dict):
        keys = ", ".join(f"{k}: {describe_data(v)}" for k, v in list(data.items())[:5])
        more = ", ..." if len(data) > 5 else ""
        return f"dict with {len(data)} keys {{{keys}{more}}}"
    if isinstance(data, list | tuple):
        return f"{type(data).__name__} of {len(data)} items"
    if isinstance(data, str | bytes):
        return f"{type(data).__name__} of length {len(data)}"
    if isinstance(data, bool | int | float) or data is None:
        return f"{type(data).__name__} {data!r}"
    if isinstance(data, ClosePort | Milestone):
        return repr(data)
    return type(data).__name__


def _settings(settings: Any) -> str:
    if settings is None:
        return "none"
    items = dict(settings.items()) if hasattr(settings, "items") else {}
    if not items:
        return "empty"
    return ", ".join(f"{k} = {v!r}" for k, v in items.items())


# --------------------------------------------------------------------------- workflow snapshots


@cli.command("workflows")
@click.option("--run", "run", metavar="RUN", help="Only this run (name or id).")
@click.option(
    "--containing",
    metavar="SNAPSHOT_ID",
    type=int,
    help="Instead: list workflow snapshots that contain this snapshot, among all of its "
    "run's snapshots (there can be very many; see --limit).",
)
@click.option("--limit", default=10, show_default=True, help="At most this many with --containing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def workflows_command(
    ctx: click.Context, run: str | None, containing: int | None, limit: int, as_json: bool
) -> None:
    """List workflow snapshots (resume points), in the order they were found."""
    catalog = _options(ctx).open(ctx, create=False)
    if containing is not None:
        _print_alternatives(workflows_containing(catalog, containing, limit=limit), as_json)
        return
    records = catalog.workflow_snapshots(run=run)
    if as_json:
        _echo_json([record.to_json() for record in records])
        return
    table = _table(
        f"{len(records)} workflow snapshots in {catalog.location}",
        ("id", "run", "#", "t", "resume", "restart", "completed by", "source", "file"),
    )
    for record in records:
        restarts = sum(1 for member in record.members.values() if member is None)
        table.add_row(
            str(record.id),
            Text(record.run),
            str(record.sequence),
            simulation_time(record),
            str(len(record.resume)),
            str(restarts),
            Text(Path(record.completed_by).name if record.completed_by else ""),
            record.source,
            Text(record.resume_file.name if record.resume_file else ""),
        )
    _stdout().print(table)


def _print_alternatives(found: list[dict[str, SnapshotRecord | None]], as_json: bool) -> None:
    if as_json:
        _echo_json(
            [{i: str(s.path) if s else None for i, s in workflow.items()} for workflow in found]
        )
        return
    table = Table(title=f"{len(found)} workflow snapshots (newest first)")
    table.add_column("#")
    table.add_column("members (snapshot id, '-' restarts from scratch)", overflow="fold")
    for number, workflow in enumerate(found, start=1):
        members = ", ".join(f"{i}={s.id if s else '-'}" for i, s in workflow.items())
        table.add_row(str(number), Text(members))
    _stdout().print(table)


@cli.command("resume")
@click.option("--latest", "choice", flag_value="latest", default=True, help="The newest (default).")
@click.option(
    "--before-time",
    type=float,
    metavar="T",
    help="The newest whose simulation time is at or before T.",
)
@click.option("--id", "workflow_id", type=int, metavar="N", help="Workflow snapshot N.")
@click.option("--run", "run", metavar="RUN", help="Only this run's workflow snapshots.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the resume file here (default: print it).",
)
@click.option(
    "--allow-missing",
    is_flag=True,
    help="Write the file even if snapshot files it names are missing here.",
)
@click.pass_context
def resume_command(
    ctx: click.Context,
    choice: str,
    before_time: float | None,
    workflow_id: int | None,
    run: str | None,
    output: Path | None,
    allow_missing: bool,
) -> None:
    """Write the resume yMMSL file of a workflow snapshot.

    Append it to the muscle_manager command line to resume, e.g.
    ``muscle_manager --start-all model.ymmsl resume.ymmsl``.
    """
    del choice  # --latest is what happens without --id or --before-time
    catalog = _options(ctx).open(ctx, create=False)
    record = select_workflow_snapshot(
        catalog, run=run, workflow_id=workflow_id, before_time=before_time
    )
    resume = resume_file_for(catalog, record)
    if resume.missing and not allow_missing:
        raise CatalogError(
            f"Workflow snapshot {record.id} needs {len(resume.missing)} snapshot files that are "
            f"not here: {', '.join(resume.missing[:3])}{' ...' if len(resume.missing) > 3 else ''}."
            " Restore them (or pass --allow-missing)."
        )
    err = Console(stderr=True)
    err.print(
        f"Workflow snapshot {record.id} of run {record.run!r} (#{record.sequence}), simulation "
        f"time {simulation_time(record)}: {len(resume.resume)} instances resume, "
        f"{len(record.members) - len(resume.resume)} restart from scratch.",
        highlight=False,
    )
    if output is None:
        click.echo(resume.text, nl=False)
        return
    output.write_text(resume.text)
    err.print(f"Wrote {output}; resume with: muscle_manager ... {output}", highlight=False)


@cli.command("reindex")
@click.option("--run", "run", metavar="RUN", help="Only this run (default: every run).")
@click.pass_context
def reindex_command(ctx: click.Context, run: str | None) -> None:
    """Recompute workflow snapshots from the recorded snapshots, in recorded order.

    Earlier reindex results are replaced; live and imported workflow
    snapshots are kept (see their 'source' in 'muscle-catalog workflows').
    """
    catalog = _options(ctx).open(ctx, create=False)
    runs = [catalog.run(run)] if run is not None else list(catalog.runs())
    notes: set[str] = set()
    for record in runs:
        report = reindex_run(catalog, record.id)
        click.echo(
            f"{report.run}: {report.workflow_snapshots} workflow snapshots from "
            f"{report.snapshots} snapshots"
            + (f" (replacing {report.replaced} from an earlier reindex)" if report.replaced else "")
        )
        notes.update(report.notes)
    for note in sorted(notes):
        click.echo(f"Note: {note}")


# --------------------------------------------------------------------------- upgrade


@cli.command("upgrade")
@click.pass_context
def upgrade_command(ctx: click.Context) -> None:
    """Upgrade the catalog's schema to this release (SQLite files are backed up first)."""
    options = _options(ctx)
    before, after, backup = upgrade_location(options.location)
    if before == after:
        click.echo(f"The catalog {options.display} is already at schema revision {after}.")
    elif before is None:
        click.echo(f"Created the catalog {options.display} at schema revision {after}.")
    else:
        click.echo(
            f"Upgraded the catalog {options.display} from schema revision {before} to {after}."
        )
    if backup is not None:
        click.echo(f"Backup of the old catalog: {backup}")


# --------------------------------------------------------------------------- output


def _table(title: str, columns: tuple[str, ...]) -> Table:
    """A listing table whose cells fold rather than being cut off."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _stdout() -> Console:
    """Rich output for stdout: folded to a terminal's width, but whole lines when piped.

    Piped output goes to grep, awk or a file, where a row folded over several
    lines is useless, so tables then take their natural width.
    """
    console = Console()
    return console if console.is_terminal else Console(width=_PIPED_WIDTH)


def _echo_json(value: Any) -> None:
    """Strict JSON (no bare NaN), as jq and JavaScript need; records already spell NaN out."""
    click.echo(json.dumps(value, indent=2, allow_nan=False))


def _float(value: float | None) -> str:
    if value is None:
        return ""
    if math.isnan(value) or math.isinf(value):
        return str(json_float(value))
    return f"{value:.6g}"


def main() -> None:
    """Entry point of the ``muscle-catalog`` console script."""
    cli(prog_name="muscle-catalog")
