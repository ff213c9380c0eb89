"""The ``watch`` command: record run directories while plain ``muscle_manager`` runs them.

The work is :func:`catalog.watch.watch_run_directories`; this module shows
its progress on stderr (a live line per run on a terminal, a line per change
otherwise, so that a batch job's log shows it too), prints what was recorded
on stdout as ``import`` does, and turns the outcome into an exit code that
scripts can act on without parsing text.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from catalog.cli.group import cli, get_options
from catalog.cli.output import echo_recording
from catalog.watch import (
    DEFAULT_INTERVAL,
    WatchOutcome,
    WatchProgress,
    WatchProgressCallback,
    WatchReport,
    check_watch_directory,
    watch_run_directories,
)

#: Exit code when a run's manager log reports a failure (``muscle_manager`` exits 1 then,
#: but 1 is this command's own errors).
EXIT_FAILED = 3

#: Exit code when ``--timeout`` stopped watching before every run ended.
EXIT_TIMEOUT = 4

#: Exit code when Ctrl-C or SIGTERM stopped watching (128 + SIGINT, as shells report Ctrl-C).
EXIT_INTERRUPTED = 130

_POSITIVE = click.FloatRange(min=0, min_open=True)


@cli.command("watch")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--timeout",
    type=_POSITIVE,
    metavar="SECONDS",
    help="Stop after this long, even if a run has not ended (a final pass records what it can).",
)
@click.option(
    "--interval",
    type=_POSITIVE,
    default=DEFAULT_INTERVAL,
    show_default=True,
    metavar="SECONDS",
    help="Time between looks at the run directories.",
)
@click.pass_context
def watch_command(
    ctx: click.Context, run_dirs: tuple[Path, ...], timeout: float | None, interval: float
) -> None:
    """Record run directories while muscle_manager runs them; exits when the runs end.

    Snapshots and workflow snapshots appear in the catalog within seconds of
    being written; half-written files are retried. Exit code 0 when every
    run finished, 3 when one failed, 4 at --timeout, 130 when interrupted.
    """
    checked = [check_watch_directory(d) for d in run_dirs]
    catalog = get_options(ctx).open(ctx, create=True)
    with _progress_line() as show:
        reports = watch_run_directories(
            catalog, checked, interval=interval, timeout=timeout, progress=show
        )
    names = {run.id: run.name for run in catalog.runs()}
    for report in reports:
        _print_report(report, names)
    ctx.exit(exit_code(reports))


def exit_code(reports: Sequence[WatchReport]) -> int:
    """The command's exit code: the most pressing outcome among the runs."""
    outcomes = {report.outcome for report in reports}
    for outcome, code in (
        (WatchOutcome.INTERRUPTED, EXIT_INTERRUPTED),
        (WatchOutcome.TIMEOUT, EXIT_TIMEOUT),
        (WatchOutcome.FAILED, EXIT_FAILED),
    ):
        if outcome in outcomes:
            return code
    return 0


@contextmanager
def _progress_line() -> Iterator[WatchProgressCallback]:
    """A progress callback: a live line per run on a terminal, else a line whenever one changes.

    A log file or a pipe cannot take the cursor movements of a live display,
    so there each change is printed once instead of redrawn.
    """
    console = Console(stderr=True)
    if console.is_terminal:
        live = Live(console=console, auto_refresh=False, transient=False)
        live.start()

        def redraw(items: Sequence[WatchProgress]) -> None:
            live.update(Group(*map(progress_text, items)), refresh=True)

        try:
            yield redraw
        finally:
            live.stop()
        return
    shown: dict[Path, Text] = {}

    def print_changes(items: Sequence[WatchProgress]) -> None:
        for item in items:
            text = progress_text(item)
            if shown.get(item.run_dir) != text:
                shown[item.run_dir] = text
                console.print(text, soft_wrap=True)

    yield print_changes


def progress_text(item: WatchProgress) -> Text:
    """One run's progress: what is recorded so far and what is still pending."""
    name = item.run_name or str(item.run_dir)
    if item.phase == "waiting":
        return Text(f"{name}: waiting for MUSCLE3 to start the run")
    return Text(
        f"{name}: {item.snapshots} snapshots, {item.workflow_snapshots} workflow snapshots, "
        f"{item.pending} pending ({item.phase})"
    )


def _print_report(report: WatchReport, names: Mapping[int, str]) -> None:
    if report.run is None:
        click.echo(f"Watched {report.run_dir}: {report.outcome}; no MUSCLE3 run appeared there")
    else:
        click.echo(
            f"Watched {report.run.name} (run {report.run.id}) in {report.run_dir}: "
            f"{report.outcome}, status {report.run.status}"
        )
    echo_recording(report, report.run, names)
