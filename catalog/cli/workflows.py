"""Commands about resume points: list ``workflows``, write a ``resume`` file, ``reindex`` runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from catalog.cli.group import cli, get_options
from catalog.cli.output import echo_json, float_text, listing_table, stdout
from catalog.errors import CatalogError

if TYPE_CHECKING:  # imported by the commands that use them (see catalog.cli)
    from catalog.catalog import Catalog
    from catalog.records import AlternativeWorkflowSnapshot


@cli.command("workflows")
@click.option("--run", "run", metavar="RUN", help="Only this run (name or id).")
@click.option(
    "--containing",
    metavar="SNAPSHOT_ID",
    type=int,
    help="Instead: list workflow snapshots that contain this snapshot, among all of its "
    "run's snapshots (there can be very many; see --limit).",
)
@click.option(
    "--limit",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    help="At most this many with --containing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def workflows_command(
    ctx: click.Context, run: str | None, containing: int | None, limit: int, as_json: bool
) -> None:
    """List workflow snapshots (resume points), in the order they were found."""
    from catalog.replay import workflows_containing
    from catalog.resume import simulation_time

    if containing is not None and run is not None:
        raise click.UsageError("--containing lists across the snapshot's own run; drop --run.")
    catalog = get_options(ctx).open(ctx, create=False, read_only=True)
    if containing is not None:
        _print_alternatives(workflows_containing(catalog, containing, limit=limit), as_json)
        return
    records = catalog.workflow_snapshots(run=run)
    if as_json:
        echo_json([record.to_json() for record in records])
        return
    from rich.text import Text

    table = listing_table(
        f"{len(records)} workflow snapshots in {catalog.location}",
        ("id", "run", "#", "t", "resume", "restart", "completed by", "source", "file"),
        fixed=("id", "#", "t", "resume", "restart"),
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
    stdout().print(table)


def _print_alternatives(found: list[AlternativeWorkflowSnapshot], as_json: bool) -> None:
    from rich.text import Text

    if as_json:
        echo_json([alternative.to_json() for alternative in found])
        return
    table = listing_table(
        f"{len(found)} workflow snapshots (newest first)",
        ("#", "t", "recorded as", "members (snapshot id; '-' restarts from scratch)"),
        fixed=("#", "t", "recorded as"),
    )
    for alternative in found:
        members = ", ".join(f"{i}={sid or '-'}" for i, sid in alternative.member_ids.items())
        recorded = alternative.workflow_snapshot_id
        table.add_row(
            str(alternative.rank),
            float_text(alternative.timestamp),
            "" if recorded is None else f"workflow {recorded}",
            Text(members),
        )
    stdout().print(table)


@cli.command("resume")
@click.option("--latest", is_flag=True, help="The newest resumable one (the default).")
@click.option(
    "--before-time",
    type=float,
    metavar="T",
    help="The newest resumable one whose simulation time is at or before T.",
)
@click.option(
    "--id", "workflow_id", type=click.IntRange(min=1), metavar="N", help="Workflow snapshot N."
)
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
    latest: bool,
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
    from rich.console import Console

    from catalog.resume import choose_workflow_snapshot, resume_file_for, simulation_time

    _check_one_choice(latest=latest, before_time=before_time, workflow_id=workflow_id)
    catalog = get_options(ctx).open(ctx, create=False, read_only=True)
    if workflow_id is None and run is None:
        _check_one_model(catalog)
    chosen = choose_workflow_snapshot(
        catalog, run=run, workflow_id=workflow_id, before_time=before_time
    )
    record = chosen.record
    err = Console(stderr=True)
    for skipped in chosen.skipped:
        err.print(
            f"Skipped workflow snapshot {skipped.record.id} of run {skipped.record.run!r} "
            f"(simulation time {simulation_time(skipped.record)}): {skipped.reason}",
            highlight=False,
        )
    resume = resume_file_for(catalog, record)
    if resume.missing and not allow_missing:
        raise CatalogError(
            f"Workflow snapshot {record.id} needs {len(resume.missing)} snapshot files that are "
            f"not here: {', '.join(resume.missing[:3])}{' ...' if len(resume.missing) > 3 else ''}."
            " Restore them (or pass --allow-missing)."
        )
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


def _check_one_choice(*, latest: bool, before_time: float | None, workflow_id: int | None) -> None:
    """Refuse two ways of choosing at once: --latest, --before-time and --id each choose alone.

    Raises:
        click.UsageError: More than one was given.
    """
    given = [
        name
        for name, value in (
            ("--latest", latest),
            ("--before-time", before_time is not None),
            ("--id", workflow_id is not None),
        )
        if value
    ]
    if len(given) > 1:
        raise click.UsageError(
            f"{' and '.join(given)} choose a workflow snapshot in different ways; give one of them."
        )


def _check_one_model(catalog: Catalog) -> None:
    """Refuse to pick "the newest" across runs of different models: which model is meant?

    Runs of one model (a campaign and its resumed runs) share their
    workflow snapshots' timeline; the newest of two models' runs is an
    accident of when they ran.

    Raises:
        click.UsageError: The catalog holds runs of more than one model.
    """
    runs = catalog.runs()
    models = sorted({run.model_name for run in runs if run.model_name})
    if len(models) > 1:
        listed = "; ".join(
            f"{run.name} (run {run.id}, model {run.model_name or '?'})" for run in runs
        )
        raise click.UsageError(
            f"The catalog {catalog.location} holds runs of {len(models)} models "
            f"({', '.join(models)}); say which run to resume with --run RUN. Runs: {listed}."
        )


@cli.command("reindex")
@click.option("--run", "run", metavar="RUN", help="Only this run (default: every run).")
@click.pass_context
def reindex_command(ctx: click.Context, run: str | None) -> None:
    """Recompute workflow snapshots from the recorded snapshots, in recorded order.

    Earlier reindex results are replaced; live and imported workflow
    snapshots are kept (see their 'source' in 'muscle-catalog workflows').
    """
    from catalog.replay import reindex_run

    catalog = get_options(ctx).open(ctx, create=False)
    runs = [catalog.run(run)] if run is not None else list(catalog.runs())
    notes: set[str] = set()
    for record in runs:
        report = reindex_run(catalog, record.id)
        click.echo(
            f"{report.run}: {report.workflow_snapshots} workflow snapshots from "
            f"{report.snapshots} snapshots"
            + (f" (replacing {report.replaced} from an earlier reindex)" if report.replaced else "")
            + (
                f"; {report.already_recorded} of them were already recorded"
                if report.already_recorded
                else ""
            )
        )
        notes.update(report.notes)
    for note in sorted(notes):
        click.echo(f"Note: {note}")
