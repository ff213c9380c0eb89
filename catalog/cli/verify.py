"""Commands that check and repair what the catalog records: ``verify`` and ``relocate``.

Both are thin: :mod:`catalog.maintenance.verify` and
:mod:`catalog.maintenance.relocate` do the work and return typed reports,
which these commands print (a line per kind of problem for people, one JSON
object per problem for scripts).
"""

from __future__ import annotations

from pathlib import Path

import click

from catalog.cli.group import cli, get_options
from catalog.cli.output import echo_json, progress_bar
from catalog.maintenance.relocate import relocate
from catalog.maintenance.verify import ProblemKind, VerifyReport, verify

#: Campaigns with at least this many recorded files get a progress bar.
PROGRESS_THRESHOLD = 200

_NOUNS = {
    ProblemKind.MISSING: "missing snapshot files",
    ProblemKind.CORRUPT: "corrupt snapshot files (size or sha256 differs)",
    ProblemKind.ORPHAN: "unrecorded .pack files (orphans)",
    ProblemKind.TEMPORARY: "leftover temporary files of unfinished saves",
    ProblemKind.UNRESUMABLE: "workflow snapshots that can no longer be resumed from",
    ProblemKind.DUPLICATE: "duplicate workflow snapshots",
    ProblemKind.UNRECORDED: "spill files of submissions the registry could not record",
}


@cli.command("verify")
@click.option("--run", "run", metavar="RUN", help="Only this run (name or id).")
@click.option("--quick", is_flag=True, help="Compare file sizes only, not sha256.")
@click.option(
    "--fix",
    is_flag=True,
    help="Mark missing and corrupt snapshots and unresumable workflow snapshots, record "
    "orphans and the registry's unrecorded submissions (spill files), remove old temporary "
    "files and duplicate workflow snapshots.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
@click.pass_context
def verify_command(
    ctx: click.Context, run: str | None, quick: bool, fix: bool, as_json: bool
) -> None:
    """Check recorded snapshot files, snapshot directories and workflow snapshots.

    Exit code 1 when anything new is wrong; problems the catalog already
    records (say, a snapshot marked missing by an earlier --fix) are listed
    but do not count.
    """
    catalog = get_options(ctx).open(ctx, create=False, read_only=not fix)
    with progress_bar("Verifying", PROGRESS_THRESHOLD) as progress:
        report = verify(catalog, run=run, quick=quick, fix=fix, progress=progress)
    if as_json:
        echo_json([problem.to_json() for problem in report.problems])
        _print_fixes(report, err=True)
    else:
        _print_report(report)
    if not report.ok:
        ctx.exit(1)


def _print_report(report: VerifyReport) -> None:
    how = "sizes" if report.quick else "sizes and sha256"
    click.echo(f"Checked {report.files_checked} recorded snapshot files ({how}).")
    for kind, count in report.counts().items():
        click.echo(f"{kind.value}: {count} {_NOUNS[kind]}")
    for kind, count in report.counts(known=True).items():
        click.echo(f"{kind.value}: {count} {_NOUNS[kind]}, already marked in the catalog")
    for problem in report.problems:
        parts = [problem.kind.value, f"[{problem.run}]"]
        if problem.workflow_snapshot_id is not None:
            parts.append(f"workflow snapshot {problem.workflow_snapshot_id}")
        if problem.snapshot_id is not None:
            parts.append(f"snapshot {problem.snapshot_id}")
        if problem.path is not None:
            parts.append(str(problem.path))
        click.echo(f"  {' '.join(parts)}: {problem.detail}")
    _print_fixes(report, err=False)
    if report.ok:
        click.echo("No problems found.")


def _print_fixes(report: VerifyReport, *, err: bool) -> None:
    for line in report.restored:
        click.echo(f"back: {line}", err=err)
    for line in report.fixed:
        click.echo(f"fixed: {line}", err=err)
    for line in report.not_fixed:
        click.echo(f"not fixed: {line}", err=err)


@cli.command("relocate")
@click.argument("old_dir", type=click.Path(path_type=Path))
@click.argument("new_dir", type=click.Path(path_type=Path))
@click.pass_context
def relocate_command(ctx: click.Context, old_dir: Path, new_dir: Path) -> None:
    """Rewrite every stored path under OLD_DIR to NEW_DIR (a moved or copied run or campaign)."""
    catalog = get_options(ctx).open(ctx, create=False)
    report = relocate(catalog, old_dir, new_dir)
    click.echo(
        f"Relocated {report.old} to {report.new}: {report.run_dirs} runs "
        f"({', '.join(report.runs) or 'none'}), {report.snapshot_paths} snapshot paths, "
        f"{report.resume_files} resume files."
    )
    if report.missing_files:
        click.echo(
            f"Warning: {len(report.missing_files)} recorded snapshot files are not in "
            f"{report.new} (first: {report.missing_files[0]}); 'muscle-catalog verify' lists them.",
            err=True,
        )
