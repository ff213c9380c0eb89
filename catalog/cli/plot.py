"""The ``plot`` command: write a timeline of runs' snapshots to a PNG, SVG or HTML file.

Thin: :func:`catalog.plot.timeline` draws the figure; this command picks the
runs, checks the output's extension before touching the catalog, and saves.
An ``.html`` file holds the SVG inline, so it opens in any browser without
scripts or other files beside it.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import TYPE_CHECKING

import click

from catalog.cli.group import cli, get_options
from catalog.plot import X_CHOICES, XAxis, timeline

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Output formats, by file extension.
FORMATS = (".png", ".svg", ".html")


@cli.command("plot")
@click.option(
    "--run",
    "runs",
    metavar="RUN",
    multiple=True,
    help="A run (name or id) to draw; repeat for several. Default: all runs.",
)
@click.option(
    "--x",
    "x",
    type=click.Choice(X_CHOICES),
    default="simulation_time",
    show_default=True,
    help="What the x axis shows: the snapshots' simulation time or the wall-clock time.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The file to write; its extension picks the format ({', '.join(FORMATS)}).",
)
@click.pass_context
def plot_command(ctx: click.Context, runs: tuple[str, ...], x: XAxis, output: Path) -> None:
    """Draw a timeline of the snapshots of runs, their workflow snapshots and resume points.

    One row per instance (a vector instance's members share one), a mark per
    snapshot, a line across each workflow snapshot's members; the workflow
    snapshots later runs resumed from stand out. Needs matplotlib
    (pip install 'muscle-snapshot-catalog[plot]').
    """
    suffix = output.suffix.lower()
    if suffix not in FORMATS:
        raise click.BadParameter(
            f"{output.name!r} has no known extension; use one of {', '.join(FORMATS)}.",
            param_hint="'-o' / '--output'",
        )
    options = get_options(ctx)
    catalog = options.open(ctx, create=False)
    figure = timeline(catalog, run=list(runs) or None, x=x)
    if suffix == ".html":
        title = f"Snapshot timeline of {options.display}"
        output.write_text(html_page(figure, title), encoding="utf-8")
    else:
        save(figure, output, suffix[1:])
    click.echo(f"Wrote {output}")


def save(figure: Figure, target: Path | io.StringIO, fmt: str) -> None:
    """Save the figure; the same catalog always gives the same SVG (no date, fixed ids).

    Reproducible files can be committed (the README's example) and diffed.
    """
    import matplotlib

    metadata = {"Date": None} if fmt == "svg" else {}
    with matplotlib.rc_context({"svg.hashsalt": "muscle-catalog"}):
        figure.savefig(target, format=fmt, dpi=150, metadata=metadata)


def html_page(figure: Figure, title: str) -> str:
    """A self-contained HTML page showing the figure as inline SVG (no scripts, no other files)."""
    buffer = io.StringIO()
    save(figure, buffer, "svg")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # the XML declaration and DOCTYPE do not belong in HTML
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        "</head>\n<body>\n"
        f"{svg}\n"
        "</body>\n</html>\n"
    )
