"""The snapshot timeline: its content, checked structurally, and the ``plot`` command's files.

The catalogs hold real MUSCLE3 runs from tests/data: mm_vector5 (macro and
micro[0..4]) with mm_vector5_resume resumed from it, and mm_stateless (whose
micro saves implicit snapshots, without a simulation time) with
mm_stateless_resume. Each figure is read back through the artist ids
(``gid``) that :mod:`catalog.plot` gives every part it draws.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.collections import Collection
from matplotlib.figure import Figure

from catalog import Catalog, SnapshotStatus, import_run_directory, open_catalog, verify
from catalog.cli import cli
from catalog.errors import CatalogError
from catalog.plot import (
    GID_NOTE,
    GID_RESUME_LINK,
    GID_RESUMED_FROM,
    GID_SNAPSHOTS,
    GID_WORKFLOWS,
    PlotUnavailableError,
    group_instances,
    timeline,
)

from .conftest import RUNS

V10 = RUNS / "v0.10"
CAMPAIGN = ("mm_vector5", "mm_vector5_resume", "mm_stateless", "mm_stateless_resume")


@pytest.fixture
def campaign(catalog: Catalog) -> Catalog:
    """Two lineages of two runs each, imported straight from the test data (import only reads)."""
    for name in CAMPAIGN:
        import_run_directory(catalog, V10 / name)
    return catalog


def collections(figure: Figure, kind: str) -> Iterator[Collection]:
    for ax in figure.axes:
        for artist in ax.collections:
            if (artist.get_gid() or "").split(":")[0] == kind:
                yield artist


def offsets(collection: Collection) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in np.asarray(collection.get_offsets(), dtype=float)]


def mark_count(figure: Figure, *parts: str) -> int:
    """Marks drawn whose gid is ``snapshots:<run>:<final|intermediate>:<present|problem>``."""
    count = 0
    for c in collections(figure, GID_SNAPSHOTS):
        if set(parts) <= set((c.get_gid() or "").split(":")):
            count += len(offsets(c))
    return count


def segments(figure: Figure, kind: str) -> list[Any]:
    return [seg for c in collections(figure, kind) for seg in c.get_segments()]  # type: ignore[attr-defined]


def run_marks(figure: Figure, run_id: int) -> list[tuple[float, float]]:
    return [
        point
        for c in collections(figure, GID_SNAPSHOTS)
        if c.get_gid().split(":")[1] == str(run_id)  # type: ignore[union-attr]
        for point in offsets(c)
    ]


def yticklabels(figure: Figure) -> list[list[str]]:
    return [[label.get_text() for label in ax.get_yticklabels()] for ax in figure.axes]


@pytest.mark.parametrize("x", ["simulation_time", "wallclock_time"])
def test_the_timeline_shows_every_snapshot_workflow_snapshot_and_resume_point(
    campaign: Catalog, x: Any
) -> None:
    runs = {run.name: run for run in campaign.runs()}
    snapshots = campaign.snapshots()
    workflows = campaign.workflow_snapshots()
    assert (len(snapshots), len(workflows)) == (41 + 35 + 12 + 7, 11 + 10 + 6 + 3)

    figure = timeline(campaign, x=x)

    # one axes per lineage, one row per instance with the vector's members grouped
    assert [ax.get_title(loc="left") for ax in figure.axes] == [
        "mm_vector5 → mm_vector5_resume",
        "mm_stateless → mm_stateless_resume",
    ]
    assert yticklabels(figure) == [["macro", "micro[0-4]"], ["macro", "micro"]]
    # every snapshot is a mark (implicit ones too), final and intermediate apart
    finals = sum(s.is_final_snapshot for s in snapshots)
    assert mark_count(figure, "final", "present") == finals
    assert mark_count(figure, "intermediate", "present") == len(snapshots) - finals
    assert mark_count(figure, "problem") == 0
    assert all(
        math.isfinite(v) for run in runs.values() for p in run_marks(figure, run.id) for v in p
    )
    # a line per workflow snapshot, across its members
    lines = segments(figure, GID_WORKFLOWS)
    assert len(lines) == len(workflows)
    assert sorted(len(line) for line in lines) == sorted(len(w.member_ids) for w in workflows)
    # the two resume points stand out, and the resumed runs link back to them
    resume_points = [
        campaign.workflow_snapshot(run.resumed_from_workflow_snapshot_id or -1)
        for run in runs.values()
        if run.resumed_from_run_id is not None
    ]
    assert len(resume_points) == 2
    assert len(segments(figure, GID_RESUMED_FROM)) == 2
    links = {c.get_gid(): len(c.get_segments()) for c in collections(figure, GID_RESUME_LINK)}  # type: ignore[attr-defined]
    assert links == {
        f"{GID_RESUME_LINK}:{runs['mm_vector5_resume'].id}": 6,
        f"{GID_RESUME_LINK}:{runs['mm_stateless_resume'].id}": 2,
    }


def test_on_the_simulation_time_axis_resume_points_sit_at_their_time(campaign: Catalog) -> None:
    figure = timeline(campaign, x="simulation_time")
    resumed = campaign.run("mm_vector5_resume")
    point = campaign.workflow_snapshot(resumed.resumed_from_workflow_snapshot_id or -1)
    (highlight,) = [
        line for line in segments(figure, GID_RESUMED_FROM) if len(line) == len(point.member_ids)
    ]
    assert max(x for x, _ in highlight) == pytest.approx(point.timestamp)
    implicit = [s for s in campaign.snapshots() if math.isnan(s.timestamp)]
    assert len(implicit) == 10
    note = [t for t in figure.texts if t.get_gid() == GID_NOTE]
    assert note and note[0].get_text().startswith("10 snapshots without a simulation time")
    # mm_stateless's implicit micro snapshots sit on their workflow snapshots' lines
    stateless = campaign.run("mm_stateless")
    xs = {round(x, 9) for x, _ in run_marks(figure, stateless.id)}
    assert xs == {round(w.timestamp or 0, 9) for w in campaign.workflow_snapshots(stateless.id)}


def test_on_the_wallclock_axis_a_resumed_run_continues_from_its_resume_point(
    campaign: Catalog,
) -> None:
    origin = campaign.run("mm_vector5")
    resumed = campaign.run("mm_vector5_resume")
    point = campaign.workflow_snapshot(resumed.resumed_from_workflow_snapshot_id or -1)
    by_id = {s.id: s for s in campaign.snapshots(run=origin.id)}
    resume_at = max(by_id[sid].wallclock_time for sid in point.member_ids.values() if sid)

    both = timeline(campaign, run=[origin.name, resumed.id], x="wallclock_time")
    assert len(both.axes) == 1
    assert "wall-clock" in both.axes[0].get_xlabel()
    origin_xs = sorted(x for x, _ in run_marks(both, origin.id))
    assert origin_xs == sorted(s.wallclock_time for s in by_id.values())
    resumed_xs = sorted(x for x, _ in run_marks(both, resumed.id))
    own = sorted(s.wallclock_time for s in campaign.snapshots(run=resumed.id))
    assert resumed_xs == pytest.approx([t + resume_at for t in own])
    assert not [t for t in both.texts if t.get_gid() == GID_NOTE]

    alone = timeline(campaign, run=resumed.name, x="wallclock_time")
    assert sorted(x for x, _ in run_marks(alone, resumed.id)) == own
    assert not list(collections(alone, GID_RESUME_LINK))  # its origin is not drawn


def test_one_run_still_shows_which_of_its_workflow_snapshots_was_resumed_from(
    campaign: Catalog,
) -> None:
    figure = timeline(campaign, run="mm_vector5")
    assert yticklabels(figure) == [["macro", "micro[0-4]"]]
    assert mark_count(figure) == 41
    assert len(segments(figure, GID_WORKFLOWS)) == 11
    assert len(segments(figure, GID_RESUMED_FROM)) == 1
    labels = [t.get_text() for t in figure.axes[0].texts]
    assert labels == ["resumed by mm_vector5_resume"]


def test_missing_and_corrupt_snapshots_are_drawn_apart(catalog: Catalog, tmp_path: Path) -> None:
    shutil.copytree(V10 / "mm_vector5", tmp_path / "mm_vector5")
    run = import_run_directory(catalog, tmp_path / "mm_vector5").run
    snapshots = catalog.snapshots(run=run.id)
    gone = next(s for s in snapshots if not s.is_final_snapshot)
    broken = next(s for s in snapshots if s.is_final_snapshot)
    gone.path.unlink()
    broken.path.write_bytes(broken.path.read_bytes()[:-7])
    verify(catalog, fix=True)
    statuses = {s.id: s.status for s in catalog.snapshots(run=run.id)}
    assert (statuses[gone.id], statuses[broken.id]) == (
        SnapshotStatus.MISSING,
        SnapshotStatus.CORRUPT,
    )

    figure = timeline(catalog)
    assert mark_count(figure, "intermediate", "problem") == 1
    assert mark_count(figure, "final", "problem") == 1
    assert mark_count(figure, "present") == len(snapshots) - 2
    (hollow,) = [
        c
        for c in collections(figure, GID_SNAPSHOTS)
        if "intermediate:problem" in (c.get_gid() or "")
    ]
    assert np.asarray(hollow.get_facecolor()).size == 0  # hollow: no face
    assert len(segments(figure, GID_WORKFLOWS)) == run.num_workflow_snapshots


def test_vector_members_share_a_row_and_stay_apart() -> None:
    members = [f"micro[{i}]" for i in range(100)]
    rows = group_instances(["macro", *reversed(members), "out"])
    assert [row.label for row in rows] == ["macro", "micro[0-99]", "out"]
    micro = rows[1]
    ys = [micro.y(m) for m in members]
    assert ys == sorted(set(ys))  # distinct, in index order
    assert micro.bottom < ys[0] and ys[-1] < micro.bottom + micro.height
    assert rows[2].bottom == micro.bottom + micro.height
    (two_runs,) = group_instances(members, lanes=2)  # a lane per run, one below the other
    first, second = ([two_runs.y(m, lane) for m in members] for lane in (0, 1))
    assert max(first) < min(second) and second == sorted(set(second))
    assert [r.label for r in group_instances(["a[0]", "a[2]"])] == ["a[*]"]
    assert [r.label for r in group_instances(["g[0][1]", "g[1][0]"])] == ["g[*]"]
    assert [r.label for r in group_instances(["m", "m[3]"])] == ["m", "m[3]"]


def test_without_matplotlib_the_error_names_the_extra(
    campaign: Catalog, catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(
        PlotUnavailableError, match=r"pip install 'muscle-snapshot-catalog\[plot\]'"
    ):
        timeline(campaign)
    assert issubclass(PlotUnavailableError, ImportError)
    result = CliRunner().invoke(
        cli, ["--catalog", catalog_url, "plot", "-o", str(tmp_path / "t.png")]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: Plotting needs matplotlib")
    assert "muscle-snapshot-catalog[plot]" in result.output
    assert not (tmp_path / "t.png").exists()


def test_unknown_runs_and_empty_catalogs_are_errors(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="No run 'nope'"):
        timeline(catalog, run="nope")
    with pytest.raises(CatalogError, match="Nothing to plot"):
        timeline(catalog)
    with pytest.raises(ValueError, match="x must be one of"):
        timeline(catalog, x="step")  # type: ignore[arg-type]


def test_the_plot_command_writes_png_svg_and_html(
    campaign: Catalog, catalog_url: str, tmp_path: Path
) -> None:
    runner = CliRunner()

    def plot(*args: str) -> Any:
        return runner.invoke(cli, ["--catalog", catalog_url, "plot", *args])

    png, svg, page = tmp_path / "t.png", tmp_path / "t.svg", tmp_path / "t.html"
    assert plot("-o", str(png)).exit_code == 0
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    result = plot("--run", "mm_vector5", "--run", "mm_vector5_resume", "-o", str(svg))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Wrote {svg}\n"
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    ids = {element.get("id") for element in root.iter()}
    assert f"{GID_RESUME_LINK}:{campaign.run('mm_vector5_resume').id}" in ids

    result = plot("--x", "wallclock_time", "-o", str(page))
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text
    inline = text[text.index("<svg") : text.index("</svg>") + len("</svg>")]
    assert ET.fromstring(inline).tag == "{http://www.w3.org/2000/svg}svg"
    assert "wall-clock time" in inline


def test_the_plot_command_only_reads(tmp_path: Path) -> None:
    runner = CliRunner()
    absent = tmp_path / "absent.sqlite"
    result = runner.invoke(cli, ["--catalog", str(absent), "plot", "-o", str(tmp_path / "t.svg")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: There is no catalog at")
    assert not absent.exists() and not (tmp_path / "t.svg").exists()

    bad = runner.invoke(cli, ["--catalog", str(absent), "plot", "-o", str(tmp_path / "t.pdf")])
    assert bad.exit_code == 2
    assert "no known extension" in bad.output and ".png, .svg, .html" in bad.output


def test_the_command_line_starts_without_matplotlib() -> None:
    code = "import sys, catalog.cli; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_in_ipython_the_figure_displays_and_the_backend_stays_as_chosen(tmp_path: Path) -> None:
    """A standalone figure gets IPython's PNG formatter; pyplot and the backend are untouched."""
    url = str(tmp_path / "c.sqlite")
    with open_catalog(url, create=True) as catalog:
        import_run_directory(catalog, V10 / "mm_stateless")
    code = (
        "import base64, sys, matplotlib\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "from catalog import open_catalog\n"
        "from catalog.plot import timeline\n"
        "shell = InteractiveShell.instance()\n"
        f"figure = timeline(open_catalog({url!r}))\n"
        "data, _ = shell.display_formatter.format(figure)\n"
        "png = base64.b64decode(data['image/png'])\n"
        "print(png[:4] == b'\\x89PNG', matplotlib.get_backend(),"
        " 'matplotlib.pyplot' in sys.modules)\n"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.split() == ["True", "svg", "False"]


def test_a_resumed_run_recorded_before_its_origin_still_follows_it(catalog: Catalog) -> None:
    resumed = import_run_directory(catalog, V10 / "mm_stateless_resume").run
    origin = import_run_directory(catalog, V10 / "mm_stateless").run
    resumed = catalog.run(resumed.id)
    assert resumed.id < origin.id and resumed.resumed_from_run_id == origin.id

    figure = timeline(catalog, x="wallclock_time")
    assert [ax.get_title(loc="left") for ax in figure.axes] == [
        "mm_stateless → mm_stateless_resume"
    ]
    point = catalog.workflow_snapshot(resumed.resumed_from_workflow_snapshot_id or -1)
    by_id = {s.id: s for s in catalog.snapshots(run=origin.id)}
    resume_at = max(by_id[sid].wallclock_time for sid in point.member_ids.values() if sid)
    own = sorted(s.wallclock_time for s in catalog.snapshots(run=resumed.id))
    assert sorted(x for x, _ in run_marks(figure, resumed.id)) == pytest.approx(
        [t + resume_at for t in own]
    )
    # the origin has the upper lane of each row
    top = max(y for _, y in run_marks(figure, origin.id) if y < 1.5)
    assert top < min(y for _, y in run_marks(figure, resumed.id) if y < 1.5)
    assert len(list(collections(figure, GID_RESUME_LINK))) == 1
