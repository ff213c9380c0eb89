"""A timeline of a campaign's snapshots: which instance saved what, when, and where runs resumed.

:func:`timeline` draws one row per instance (the members of a vector
instance such as ``micro[0]`` ... ``micro[99]`` share a row, each a little
higher than the one before), a mark per snapshot, and a line across the
members of every workflow snapshot. The workflow snapshots a later run
resumed from stand out, and a resumed run continues from its resume point
with a dashed link, so a kill/resume campaign reads left to right.

It only reads the catalog, through the query API notebooks use too
(:meth:`Catalog.runs`, :meth:`Catalog.snapshots`,
:meth:`Catalog.workflow_snapshots`). matplotlib is the optional ``plot``
extra: it is imported when a timeline is drawn, never when this module is
(the command line imports this module on start-up).

The figure is a standalone :class:`matplotlib.figure.Figure`, not one of
pyplot's: drawing it never selects, changes or needs a backend (saving it
renders with Agg, so no display is needed), and in a notebook whatever
backend the user chose stays as it was.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from catalog.enums import SnapshotStatus
from catalog.errors import CatalogError
from catalog.naming import vector_element

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from catalog.catalog import Catalog
    from catalog.records import RunRecord, SnapshotRecord, WorkflowSnapshotRecord

#: The x axes :func:`timeline` can draw.
XAxis = Literal["simulation_time", "wallclock_time"]
X_CHOICES: tuple[XAxis, ...] = ("simulation_time", "wallclock_time")

#: How to get matplotlib, for the error raised without it.
INSTALL_HINT = "pip install 'muscle-snapshot-catalog[plot]'"

#: Artist ids (``Artist.get_gid()``, also ``id=`` in SVG output) that name what
#: each part of the figure shows, so tests and scripts can find them.
GID_SNAPSHOTS = "snapshots"
GID_WORKFLOWS = "workflows"
GID_RESUMED_FROM = "resumed-from"
GID_RESUME_LINK = "resume-link"
GID_NOTE = "note"

_FINAL_MARKER = "D"
_INTERMEDIATE_MARKER = "o"
_PROBLEM_COLOUR = "0.55"
_HIGHLIGHT_COLOUR = "black"
#: Vertical space a row gets (in row units): 1 for a single instance, more for
#: a vector, up to this much, so that up to ~100 members stay apart.
_MAX_ROW_HEIGHT = 5.0
_INCHES_PER_ROW_UNIT = 0.4


class PlotUnavailableError(CatalogError, ImportError):
    """matplotlib, which drawing needs, is not installed.

    An :class:`ImportError` (as a missing optional dependency usually is) and
    a :class:`CatalogError` (so the command line reports it in one line).
    """


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Row:
    """One row of the timeline: an instance, or all members of a vector instance.

    A row has a lane per run (of the runs drawn together), so that a resumed
    run's marks never hide those of the run it resumed from, which reached
    the same simulation times; the members of a vector are spread over each
    lane in index order.

    Attributes:
        label: What the y axis says: ``macro``, ``micro[0-7]``, or
            ``micro[*]`` when the indices have gaps or several dimensions.
        members: The instances, in index order.
        bottom: Where the row starts on the y axis (it grows downwards).
        height: How much of the y axis it takes.
        lanes: How many runs share it.
    """

    label: str
    members: tuple[str, ...]
    bottom: float = 0.0
    height: float = 1.0
    lanes: int = 1

    @property
    def centre(self) -> float:
        """The y of the row's label."""
        return self.bottom + self.height / 2

    def y(self, instance: str, lane: int = 0) -> float:
        """The y of a member's marks in a run's lane."""
        lane_height = self.height / self.lanes
        top = self.bottom + lane_height * lane
        n = len(self.members)
        if n == 1:
            return top + lane_height / 2
        margin = min(0.175, lane_height * 0.15)
        band = lane_height - 2 * margin
        return top + margin + band * self.members.index(instance) / (n - 1)


def group_instances(instances: Iterable[str], lanes: int = 1) -> list[Row]:
    """The rows for these instances, in the order each row's first instance comes.

    ``micro[0]`` ... ``micro[7]`` share one row labelled ``micro[0-7]``;
    ``macro`` has a row of its own. The rows are stacked top to bottom with
    heights that grow with the number of members and of lanes.

    Args:
        instances: Instance names, in the order the rows should have.
        lanes: How many runs the rows are shared by (a lane each).
    """
    groups: dict[tuple[str, bool], list[tuple[tuple[int, ...], str]]] = {}
    for name in dict.fromkeys(instances):
        element = vector_element(name)
        if element is None:
            groups.setdefault((name, False), []).append(((), name))
        else:
            base, index = element
            groups.setdefault((base, True), []).append((index, name))
    rows: list[Row] = []
    bottom = 0.0
    for (base, indexed), members in groups.items():
        members.sort()
        one_lane = 1.0 if len(members) == 1 else min(1.0 + 0.04 * len(members), _MAX_ROW_HEIGHT)
        height = one_lane * (1 + 0.5 * (lanes - 1))
        label = _label(base, [index for index, _ in members]) if indexed else base
        rows.append(Row(label, tuple(name for _, name in members), bottom, height, lanes))
        bottom += height
    return rows


def _label(base: str, indices: Sequence[tuple[int, ...]]) -> str:
    if len(indices) == 1:
        return base + "".join(f"[{i}]" for i in indices[0])
    flat = [index[0] for index in indices if len(index) == 1]
    if len(flat) == len(indices) and flat == list(range(flat[0], flat[0] + len(flat))):
        return f"{base}[{flat[0]}-{flat[-1]}]"
    return f"{base}[*]"


# --------------------------------------------------------------------------- data


@dataclass
class _RunData:
    """What the timeline needs of one run, with an x for each snapshot it can place."""

    run: RunRecord
    snapshots: list[SnapshotRecord]
    workflows: list[WorkflowSnapshotRecord]
    colour: str = ""
    x: dict[int, float] = field(default_factory=dict)


@dataclass
class _Notes:
    placed: int = 0
    left_out: int = 0

    def text(self) -> str | None:
        parts = []
        if self.placed:
            parts.append(
                f"{self.placed} snapshots without a simulation time (implicit) are drawn at "
                "the time of their workflow snapshot, or else the run's latest time before them"
            )
        if self.left_out:
            parts.append(f"{self.left_out} snapshots without a simulation time are left out")
        return "; ".join(parts) or None


def _runs_to_plot(catalog: Catalog, run: int | str | Sequence[int | str] | None) -> list[RunRecord]:
    if run is None:
        return list(catalog.runs())
    wanted = [run] if isinstance(run, int | str) else list(run)
    found = {record.id: record for record in (catalog.run(r) for r in wanted)}
    return sorted(found.values(), key=lambda record: record.id)


def _lineages(runs: Sequence[RunRecord]) -> list[list[RunRecord]]:
    """The runs split into lineages (runs linked by resuming), each with origins first.

    Within a lineage, runs come by generation (a run after the one it resumed
    from, whatever order they were recorded in), then by id.
    """
    by_id = {run.id: run for run in runs}
    parent = {run.id: run.id for run in runs}

    def root(run_id: int) -> int:
        while parent[run_id] != run_id:
            run_id = parent[run_id]
        return run_id

    def generation(run: RunRecord) -> int:
        seen = {run.id}
        origin = by_id.get(run.resumed_from_run_id or -1)
        while origin is not None and origin.id not in seen:
            seen.add(origin.id)
            origin = by_id.get(origin.resumed_from_run_id or -1)
        return len(seen)

    for run in runs:
        origin = run.resumed_from_run_id
        if origin is not None and origin in parent:
            parent[root(run.id)] = root(origin)
    groups: dict[int, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(root(run.id), []).append(run)
    return [sorted(group, key=lambda r: (generation(r), r.id)) for group in groups.values()]


def _place_simulation_time(data: _RunData, origin_time: float | None, notes: _Notes) -> None:
    """Place snapshots at their simulation time, implicit ones (without one) where it stood.

    That is the time of the first workflow snapshot they belong to (its
    members' largest finite time), else the run's latest simulation time
    among the snapshots taken before them (or its resume point's).
    """
    workflow_time: dict[int, float] = {}
    for workflow in data.workflows:
        if workflow.timestamp is None or math.isnan(workflow.timestamp):
            continue
        for sid in workflow.member_ids.values():
            if sid is not None:
                workflow_time[sid] = min(workflow_time.get(sid, math.inf), workflow.timestamp)
    timed = sorted(
        (s.wallclock_time, s.timestamp) for s in data.snapshots if math.isfinite(s.timestamp)
    )
    for snapshot in data.snapshots:
        if math.isfinite(snapshot.timestamp):
            data.x[snapshot.id] = snapshot.timestamp
            continue
        before = [t for wallclock, t in timed if wallclock <= snapshot.wallclock_time]
        place = workflow_time.get(snapshot.id)
        if place is None and before:
            place = max(before)
        if place is None:
            place = origin_time
        if place is None:
            notes.left_out += 1
        else:
            data.x[snapshot.id] = place
            notes.placed += 1


def _collect(
    catalog: Catalog, runs: Sequence[RunRecord], x: XAxis, notes: _Notes
) -> dict[int, _RunData]:
    """Each run's snapshots and workflow snapshots, with the x of every snapshot it can place.

    On the wall-clock axis each run's clock starts at zero, so a resumed run
    (oldest first, its origin already placed) is shifted to start where its
    resume point was: the latest wall-clock time of its members.
    """
    datas: dict[int, _RunData] = {}
    workflow_by_id: dict[int, WorkflowSnapshotRecord] = {}
    for run in runs:  # origins first, so a resumed run is placed after its origin
        data = _RunData(
            run, list(catalog.snapshots(run=run.id)), list(catalog.workflow_snapshots(run=run.id))
        )
        workflow_by_id.update((w.id, w) for w in data.workflows)
        resumed_from = workflow_by_id.get(run.resumed_from_workflow_snapshot_id or -1)
        if resumed_from is None and run.resumed_from_workflow_snapshot_id is not None:
            resumed_from = catalog.workflow_snapshot(run.resumed_from_workflow_snapshot_id)
        origin = datas.get(run.resumed_from_run_id or -1)
        if x == "simulation_time":
            origin_time = resumed_from.timestamp if resumed_from is not None else None
            _place_simulation_time(data, origin_time, notes)
        else:
            offset = 0.0
            if origin is not None:
                ids = (
                    [i for i in resumed_from.member_ids.values() if i is not None]
                    if resumed_from is not None
                    else list(origin.x)
                )
                offset = max((origin.x[i] for i in ids if i in origin.x), default=0.0)
            data.x = {s.id: s.wallclock_time + offset for s in data.snapshots}
        datas[run.id] = data
    return datas


def _instance_order(datas: Iterable[_RunData]) -> list[str]:
    """MUSCLE3's instance order (that of workflow snapshot members), then any others."""
    order: dict[str, None] = {}
    for data in datas:
        for workflow in data.workflows:
            order.update(dict.fromkeys(workflow.member_ids))
        order.update(dict.fromkeys(s.instance for s in data.snapshots))
    return list(order)


# --------------------------------------------------------------------------- drawing


def _import_matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure  # noqa: F401 - fails here, not halfway through
    except ImportError as exc:
        raise PlotUnavailableError(
            f"Plotting needs matplotlib, which is not installed: {INSTALL_HINT}"
        ) from exc
    return matplotlib


def timeline(
    catalog: Catalog,
    run: int | str | Sequence[int | str] | None = None,
    x: XAxis = "simulation_time",
) -> Figure:
    """Draw the snapshot history of runs: one row per instance, one mark per snapshot.

    * Marks: intermediate snapshots are circles, final ones (end of a reuse
      iteration) diamonds, each run in its own colour; snapshots whose file
      is missing, corrupt or deleted are hollow and grey.
    * Each workflow snapshot is a thin line through its members' marks; the
      ones a later run resumed from (any run of the catalog) are thick and
      named after that run.
    * A resumed run plotted with its origin continues from its resume point,
      with a dashed link from the workflow snapshot it resumed from.
    * Runs that do not resume from one another (separate lineages) get
      separate axes, one above the other.

    Args:
        catalog: The catalog to read (only read).
        run: A run (id or name), a list of runs, or None for all runs.
        x: ``"simulation_time"`` (the snapshots' timestamps; snapshots
            without one are placed at their workflow snapshot's time, and a
            note says so) or ``"wallclock_time"`` (seconds since each run's
            manager started, a resumed run shifted to start at its resume
            point).

    Returns:
        The figure (standalone: show it in a notebook, or ``savefig`` it).

    Raises:
        PlotUnavailableError: matplotlib is not installed.
        CatalogError: A run is unknown, or there are no snapshots to draw.
        ValueError: ``x`` is not one of :data:`X_CHOICES`.
    """
    if x not in X_CHOICES:
        raise ValueError(f"x must be one of {', '.join(X_CHOICES)}, not {x!r}")
    matplotlib = _import_matplotlib()
    from matplotlib.figure import Figure

    runs = _runs_to_plot(catalog, run)
    resumed_from: dict[int, list[str]] = {}  # workflow snapshot -> the runs resumed from it
    for r in catalog.runs():
        if r.resumed_from_workflow_snapshot_id is not None:
            resumed_from.setdefault(r.resumed_from_workflow_snapshot_id, []).append(r.name)
    notes = _Notes()
    lineages = [_collect(catalog, lineage, x, notes) for lineage in _lineages(runs)]
    lineages = [datas for datas in lineages if any(d.snapshots for d in datas.values())]
    if not lineages:
        names = ", ".join(r.name for r in runs) or "none"
        raise CatalogError(
            f"Nothing to plot: the catalog {catalog.location} holds no snapshots of the "
            f"runs asked for (runs: {names}). Record some with `muscle-catalog import RUN_DIR`."
        )
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    for i, data in enumerate(d for datas in lineages for d in datas.values()):
        data.colour = colours[i % len(colours)]

    rows_per_lineage = [
        group_instances(_instance_order(datas.values()), lanes=len(datas)) for datas in lineages
    ]
    heights = [sum(row.height for row in rows) for rows in rows_per_lineage]
    figure = Figure(
        figsize=(11, sum(h * _INCHES_PER_ROW_UNIT + 1.4 for h in heights) + 0.6),
        layout="constrained",
    )
    axes_list = figure.subplots(len(lineages), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, datas, rows in zip(axes_list, lineages, rows_per_lineage, strict=True):
        _draw_lineage(ax, list(datas.values()), rows, resumed_from)
        ax.set_xlabel(
            "simulation time"
            if x == "simulation_time"
            else "wall-clock time [s] since the manager started "
            "(a resumed run continues from its resume point)"
        )
    _legend(axes_list[0], [d for datas in lineages for d in datas.values()])
    note = notes.text()
    if note is not None:
        figure.supxlabel(note, fontsize="small", color="0.3").set_gid(GID_NOTE)
    _show_in_notebooks(figure)
    return figure


def _draw_lineage(
    ax: Axes, datas: list[_RunData], rows: list[Row], resumed_from: dict[int, list[str]]
) -> None:
    from matplotlib.collections import LineCollection

    row_of = {member: row for row in rows for member in row.members}
    size = {row.label: _marker_size(len(row.members)) for row in rows}
    points: dict[int, tuple[float, float]] = {}
    for lane, data in enumerate(datas):
        for s in data.snapshots:
            if s.id in data.x:
                points[s.id] = (data.x[s.id], row_of[s.instance].y(s.instance, lane))
    highlighted: list[list[tuple[float, float]]] = []
    for data in datas:
        _draw_marks(ax, data, points, row_of, size)
        lines = []
        for workflow in data.workflows:
            line = _connector(workflow, points)
            if line is None:
                continue
            lines.append(line)
            if workflow.id in resumed_from:
                highlighted.append(line)
                top = min(line, key=lambda p: p[1])
                ax.annotate(
                    f"resumed by {', '.join(resumed_from[workflow.id])}",
                    top,
                    xytext=(0, 6),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize="x-small",
                    color=_HIGHLIGHT_COLOUR,
                    annotation_clip=False,
                )
        ax.add_collection(
            LineCollection(
                lines,
                colors=data.colour,
                linewidths=0.8,
                alpha=0.5,
                zorder=1,
                gid=_gid(GID_WORKFLOWS, data.run.id),
            )
        )
        link = _resume_link(data, points, datas)
        if link:
            ax.add_collection(
                LineCollection(
                    link,
                    colors=data.colour,
                    linestyles="--",
                    linewidths=1.2,
                    zorder=1.5,
                    gid=_gid(GID_RESUME_LINK, data.run.id),
                )
            )
    if highlighted:
        ax.add_collection(
            LineCollection(
                highlighted,
                colors=_HIGHLIGHT_COLOUR,
                linewidths=2.5,
                alpha=0.85,
                zorder=2,
                gid=_gid(GID_RESUMED_FROM, datas[0].run.id),
            )
        )
    ax.set_yticks([row.centre for row in rows], [row.label for row in rows])
    ax.set_ylim(sum(row.height for row in rows), 0)  # first instance on top
    ax.set_title(" → ".join(data.run.name for data in datas), loc="left", fontsize="medium")
    ax.grid(axis="x", color="0.9", linewidth=0.6)
    ax.set_axisbelow(True)
    for row in rows[1:]:
        ax.axhline(row.bottom, color="0.85", linewidth=0.6, zorder=0)
    ax.autoscale(axis="x")
    ax.margins(x=0.03)


def _marker_size(members: int) -> float:
    """Marker area (points²): smaller as more members share a row."""
    diameter = 6.0 if members == 1 else max(2.5, 6.0 - members / 20)
    return diameter**2


def _gid(kind: str, run_id: int, *parts: str) -> str:
    return ":".join([kind, str(run_id), *parts])


def _draw_marks(
    ax: Axes,
    data: _RunData,
    points: dict[int, tuple[float, float]],
    row_of: dict[str, Row],
    size: dict[str, float],
) -> None:
    """One scatter per kind of mark: final or intermediate, file fine or not."""
    for final in (False, True):
        for fine in (True, False):
            chosen = [
                s
                for s in data.snapshots
                if s.id in points
                and s.is_final_snapshot == final
                and (s.status == SnapshotStatus.PRESENT) == fine
            ]
            if not chosen:
                continue
            marker = _FINAL_MARKER if final else _INTERMEDIATE_MARKER
            ax.scatter(
                [points[s.id][0] for s in chosen],
                [points[s.id][1] for s in chosen],
                s=[size[row_of[s.instance].label] * (0.8 if final else 1.0) for s in chosen],
                marker=marker,
                facecolors=data.colour if fine else "none",
                edgecolors=data.colour if fine else _PROBLEM_COLOUR,
                linewidths=0.4 if fine else 1.0,
                zorder=3,
                gid=_gid(
                    GID_SNAPSHOTS,
                    data.run.id,
                    "final" if final else "intermediate",
                    "present" if fine else "problem",
                ),
            )


def _connector(
    workflow: WorkflowSnapshotRecord, points: dict[int, tuple[float, float]]
) -> list[tuple[float, float]] | None:
    """A workflow snapshot's line: through its members' marks, top to bottom."""
    line = sorted(
        (points[sid] for sid in workflow.member_ids.values() if sid is not None and sid in points),
        key=lambda p: p[1],
    )
    if not line:
        return None
    if len(line) == 1:  # one member: a short tick across its mark
        x, y = line[0]
        return [(x, y - 0.2), (x, y + 0.2)]
    return line


def _resume_link(
    data: _RunData, points: dict[int, tuple[float, float]], datas: Sequence[_RunData]
) -> list[list[tuple[float, float]]]:
    """Dashed segments from each member of the resume point to the resumed run's first mark."""
    workflow_id = data.run.resumed_from_workflow_snapshot_id
    origin = next((d for d in datas if d.run.id == data.run.resumed_from_run_id), None)
    if workflow_id is None or origin is None:
        return []
    workflow = next((w for w in origin.workflows if w.id == workflow_id), None)
    if workflow is None:
        return []
    first: dict[str, tuple[float, float]] = {}
    for s in data.snapshots:
        if s.id in points and (s.instance not in first or points[s.id][0] < first[s.instance][0]):
            first[s.instance] = points[s.id]
    return [
        [points[sid], first[instance]]
        for instance, sid in workflow.member_ids.items()
        if sid is not None and sid in points and instance in first
    ]


def _legend(ax: Axes, datas: Sequence[_RunData]) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", linestyle="", color=d.colour, label=d.run.name) for d in datas
    ]
    handles += [
        Line2D(
            [],
            [],
            marker=_INTERMEDIATE_MARKER,
            linestyle="",
            color="0.2",
            label="intermediate snapshot",
        ),
        Line2D([], [], marker=_FINAL_MARKER, linestyle="", color="0.2", label="final snapshot"),
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markerfacecolor="none",
            markeredgecolor=_PROBLEM_COLOUR,
            label="file missing, corrupt or deleted",
        ),
        Line2D([], [], color="0.4", linewidth=0.8, label="workflow snapshot"),
        Line2D([], [], color=_HIGHLIGHT_COLOUR, linewidth=2.5, label="resumed from by a later run"),
        Line2D([], [], color="0.4", linestyle="--", linewidth=1.2, label="resumed run's start"),
    ]
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize="small",
        frameon=False,
    )


def _show_in_notebooks(figure: Figure) -> None:
    """Let IPython show a standalone figure, without touching the user's backend.

    pyplot's figures are shown by the backend; a standalone figure needs
    IPython's image formatter, which only exists once a matplotlib backend
    has been set up in the session. Register it (for PNG) when missing.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    formatter = shell.display_formatter.formatters["image/png"]
    try:
        formatter.lookup_by_type(type(figure))
    except KeyError:
        pylabtools: Any = importlib.import_module("IPython.core.pylabtools")  # untyped
        pylabtools.select_figure_formats(shell, {"png"})
