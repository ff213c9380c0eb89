"""Commands that clean up and move a campaign: ``gc``, ``forget``, ``du`` and ``copy``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from catalog.catalog import open_catalog
from catalog.cli.group import cli, get_options
from catalog.cli.output import echo_json, listing_table, stdout
from catalog.errors import CatalogError
from catalog.location import sqlite_file, to_url
from catalog.maintenance.copy import copy_catalog, relocation
from catalog.maintenance.du import disk_usage, total
from catalog.maintenance.forget import forget
from catalog.maintenance.gc import GcReport, gc
from catalog.maintenance.retention import (
    KeepEvery,
    KeepFinals,
    KeepLast,
    KeepWithin,
    RetentionPolicy,
    RetentionRule,
    format_bytes,
    parse_duration,
    parse_size,
)


@cli.command("gc")
@click.option(
    "--keep-last",
    type=click.IntRange(min=0),
    metavar="N",
    help="Keep the N newest workflow snapshots of each run.",
)
@click.option(
    "--keep-every",
    type=float,
    metavar="SIM_TIME",
    help="Keep one workflow snapshot per interval of simulation time (each interval's newest).",
)
@click.option(
    "--keep-finals", is_flag=True, help="Keep workflow snapshots whose members are all final."
)
@click.option(
    "--keep-within",
    metavar="DURATION",
    help="Keep workflow snapshots recorded within DURATION of now (2d, 12h, 30m).",
)
@click.option(
    "--max-size",
    metavar="BYTES",
    help="Delete oldest first, only until the campaign's snapshots take at most BYTES (10G, 500M).",
)
@click.option("--run", metavar="R", help="Only delete snapshots of this run (name or id).")
@click.option("--yes", is_flag=True, help="Delete; without it, only say what would be deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def gc_command(
    ctx: click.Context,
    keep_last: int | None,
    keep_every: float | None,
    keep_finals: bool,
    keep_within: str | None,
    max_size: str | None,
    run: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Delete the snapshot files a retention policy does not keep (a dry run without --yes).

    Policies combine: a workflow snapshot any --keep-* keeps is kept, with all
    of its members. Never deleted: the newest workflow snapshot of each run,
    whatever a recorded run resumed from, and anything of a running run.
    Deleted snapshots keep their rows, with status `deleted`.
    """
    rules: list[RetentionRule] = []
    if keep_last is not None:
        rules.append(KeepLast(keep_last))
    if keep_every is not None:
        rules.append(KeepEvery(keep_every))
    if keep_finals:
        rules.append(KeepFinals())
    if keep_within is not None:
        rules.append(KeepWithin(parse_duration(keep_within)))
    policy = RetentionPolicy(
        tuple(rules), max_size=parse_size(max_size) if max_size is not None else None
    )
    catalog = get_options(ctx).open(ctx, create=False, read_only=not yes)
    report = gc(catalog, policy, run=run, dry_run=not yes)
    if as_json:
        echo_json(_gc_json(report))
        return
    _print_gc(report)


def _print_gc(report: GcReport) -> None:
    if report.deleted:
        table = listing_table(
            ("Would delete" if report.dry_run else "Deleted") + f" ({report.policy})",
            ("id", "run", "instance", "size", "path"),
            fixed=("id", "size"),
        )
        for item in report.deleted:
            table.add_row(
                str(item.id),
                Text(item.run),
                Text(item.instance),
                format_bytes(item.size_bytes or 0),
                Text(str(item.path)),
            )
        stdout().print(table)
    verb = "Would delete" if report.dry_run else "Deleted"
    freed = "would free" if report.dry_run else "freed"
    click.echo(
        f"{verb} {len(report.deleted)} snapshots: {freed} {format_bytes(report.bytes_freed)} "
        f"({report.bytes_freed} bytes) in {report.files_removed} files"
    )
    if report.pending_files:
        click.echo(
            f"  of which {report.pending_files} files of snapshots an interrupted gc had "
            "already marked deleted"
        )
    state = "would become" if report.dry_run else "are now"
    click.echo(
        f"  workflow snapshots: {report.kept_workflow_snapshots} kept, "
        f"{len(report.unresumable)} {state} unresumable"
    )
    if report.max_size is not None:
        click.echo(
            f"  campaign: {format_bytes(report.size_before)} before, "
            f"{format_bytes(report.size_after)} after (limit {format_bytes(report.max_size)})"
        )
        if not report.fits:
            click.echo(
                "Warning: the campaign does not fit --max-size: everything else is kept by "
                "the policy or protected.",
                err=True,
            )
    if report.dry_run and (report.deleted or report.files_removed):
        click.echo("Dry run: nothing was deleted. Run again with --yes to delete.")


def _gc_json(report: GcReport) -> dict[str, Any]:
    return {
        "dry_run": report.dry_run,
        "policy": report.policy,
        "run": report.run,
        "deleted": [
            {
                "id": item.id,
                "run": item.run,
                "instance": item.instance,
                "path": str(item.path),
                "size_bytes": item.size_bytes,
            }
            for item in report.deleted
        ],
        "unresumable_workflow_snapshots": list(report.unresumable),
        "kept_workflow_snapshots": report.kept_workflow_snapshots,
        "files_removed": report.files_removed,
        "bytes_freed": report.bytes_freed,
        "pending_files": report.pending_files,
        "size_before": report.size_before,
        "size_after": report.size_after,
        "max_size": report.max_size,
    }


@cli.command("forget")
@click.argument("run", metavar="RUN")
@click.option("--force", is_flag=True, help="Forget it even if other runs resumed from it.")
@click.pass_context
def forget_command(ctx: click.Context, run: str, force: bool) -> None:
    """Remove RUN (name or id) and its snapshots from the catalog; its files stay."""
    catalog = get_options(ctx).open(ctx, create=False)
    report = forget(catalog, run, force=force)
    click.echo(
        f"Forgot {report.name} (run {report.run_id}): {report.snapshots} snapshots, "
        f"{report.workflow_snapshots} workflow snapshots; its files are untouched"
    )
    if report.unlinked_runs:
        click.echo(f"  no longer linked to it: {', '.join(report.unlinked_runs)}")
    if report.unresumable:
        ids = ", ".join(str(w) for w in report.unresumable)
        click.echo(f"  other runs' workflow snapshots now unresumable: {ids}")


@cli.command("du")
@click.option(
    "--by",
    type=click.Choice(["run", "instance"]),
    default="run",
    show_default=True,
    help="Group by run or by instance.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def du_command(ctx: click.Context, by: str, as_json: bool) -> None:
    """Show the snapshots' counts and recorded bytes, present and deleted."""
    catalog = get_options(ctx).open(ctx, create=False, read_only=True)
    usages = disk_usage(catalog, by="instance" if by == "instance" else "run")
    whole = total(usages)
    if as_json:
        echo_json({"by": by, "groups": [u.to_json() for u in usages], "total": whole.to_json()})
        return
    table = listing_table(
        f"Disk usage of {catalog.location}",
        (by, "present", "bytes", "deleted", "bytes freed", "missing/corrupt"),
        fixed=("present", "bytes", "deleted", "bytes freed", "missing/corrupt"),
    )
    for usage in [*usages, whole]:
        table.add_row(
            Text(usage.key),
            str(usage.present),
            format_bytes(usage.present_bytes),
            str(usage.deleted),
            format_bytes(usage.deleted_bytes),
            str(usage.other),
        )
    stdout().print(table)


@cli.command("copy")
@click.argument("source", metavar="SOURCE")
@click.argument("target", metavar="TARGET")
@click.option(
    "--relocate",
    nargs=2,
    metavar="OLD NEW",
    default=None,
    help="Store paths under OLD under NEW instead (a campaign moved meanwhile).",
)
@click.pass_context
def copy_command(
    ctx: click.Context, source: str, target: str, relocate: tuple[str, str] | None
) -> None:
    """Copy every record of the catalog SOURCE into TARGET (paths or URLs), merging.

    TARGET is created when empty; what it already holds (runs by run
    directory, snapshots by path, workflow snapshots by run and members) is
    not copied twice. Files are not copied: paths are made to name the same
    files from TARGET.
    """
    source_file = sqlite_file(to_url(source))
    if source_file is not None and not source_file.exists():
        raise CatalogError(f"There is no catalog at {source_file}")
    target_file = sqlite_file(to_url(target))
    if target_file is not None:
        os.makedirs(Path(target_file).parent, exist_ok=True)
    source_catalog = open_catalog(source, read_only=True)
    ctx.call_on_close(source_catalog.close)
    target_catalog = open_catalog(target, create=True)
    ctx.call_on_close(target_catalog.close)
    report = copy_catalog(source_catalog, target_catalog, relocation(relocate))
    click.echo(f"Copied {report.source} into {report.target}")
    click.echo(f"  runs: {report.runs_added} added, {report.runs_known} already there")
    click.echo(
        f"  snapshots: {report.snapshots_added} added, {report.snapshots_known} already there"
    )
    click.echo(
        f"  workflow snapshots: {report.workflow_snapshots_added} added, "
        f"{report.workflow_snapshots_known} already there"
    )
    if report.links_added:
        click.echo(f"  lineage links set: {report.links_added}")
