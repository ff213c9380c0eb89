"""Importing real MUSCLE3 run directories: every file, exact metadata, resume files, lineage."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import ymmsl

from catalog import Catalog, RunDirectoryError, SnapshotMetadata
from catalog.enums import Source
from catalog.run_dir import resolve_resume_path
from catalog.run_import import ImportReport, import_run_directories, import_run_directory
from catalog.store import load_pack

from .conftest import RUNS

RUN_DIRS = sorted(p for p in RUNS.glob("*/*") if (p / "instances").is_dir())
RUN_IDS = [f"{p.parent.name}/{p.name}" for p in RUN_DIRS]
RESUMED = {
    "v0.10/mm_stateless_resume": "v0.10/mm_stateless",
    "v0.10/mm_vector5_resume": "v0.10/mm_vector5",
    "v0.10/rd_python_resume": "v0.10/rd_python",
    "v0.11/mm_scalar_resume": "v0.11/mm_scalar",
}
MODEL_NAMES = {
    "v0.10/dispatch": "test_snapshot",
    "v0.10/rd_python": "reaction_diffusion",
    "v0.10/solo": "solo_model",
    "v0.7/mm_scalar": "macro_micro",  # yMMSL v0.1: config.model.name
    "v0.11/mm_scalar": "macro_micro",
}


def run(name: str) -> Path:
    return (RUNS / name).absolute()


def packs(run_dir: Path) -> list[Path]:
    return sorted(p.absolute() for p in run_dir.glob("instances/*/snapshots/*.pack"))


def real_writes(run_dir: Path) -> list[dict[str, Any]]:
    """The workflow snapshots the real MUSCLE3 manager wrote, in the order it wrote them."""
    data = json.loads((run_dir / "registry_real_writes.json").read_text())
    writes: list[dict[str, Any]] = data["workflow_snapshots"]
    return writes


def resume_section(resume_file: Path) -> dict[Any, Any]:
    """The ``resume:`` mapping of a yMMSL file, as ymmsl reads it (any yMMSL version)."""
    document: Any = ymmsl.load(resume_file.read_text())
    section: dict[Any, Any] = document.resume
    return section


def comparable(metadata: SnapshotMetadata) -> str:
    """Metadata as JSON text, so that NaN equals NaN."""
    return json.dumps(dataclasses.asdict(metadata), sort_keys=True)


def copy_run(name: str, tmp_path: Path) -> Path:
    target = tmp_path / "copied" / Path(name).name
    shutil.copytree(run(name), target)
    return target


# --------------------------------------------------------------------------- every real run


@pytest.mark.parametrize("run_dir", RUN_DIRS, ids=RUN_IDS)
def test_every_pack_is_recorded_with_the_metadata_in_its_file(
    catalog: Catalog, run_dir: Path
) -> None:
    report = import_run_directory(catalog, run_dir)

    files = packs(run_dir)
    records = catalog.snapshots(run=report.run_id)
    assert report.warnings == []
    assert report.snapshots_added == len(files) == len(records) > 0
    assert report.snapshots_already_known == 0
    by_path = {r.path: r for r in records}
    assert sorted(by_path) == files
    for path in files:
        loaded = load_pack(path)
        record = by_path[path]
        expected = SnapshotMetadata.from_snapshot(loaded.snapshot, str(path))
        assert comparable(record.to_metadata()) == comparable(expected), path
        assert record.instance == path.parent.parent.name
        assert record.sequence == int(path.stem.rsplit("_", 1)[1])
        assert (record.size_bytes, record.sha256) == (loaded.size_bytes, loaded.sha256)
        assert record.format_version == loaded.snapshot.format_version
        assert record.is_implicit == (loaded.snapshot.message is None)
        assert record.settings_overlay == dict(loaded.snapshot.settings_overlay.items())


@pytest.mark.parametrize("run_dir", RUN_DIRS, ids=RUN_IDS)
def test_workflow_snapshots_are_those_muscle3_wrote_in_order(
    catalog: Catalog, run_dir: Path
) -> None:
    report = import_run_directory(catalog, run_dir)

    written = real_writes(run_dir)
    resume_files = list(run_dir.glob("snapshots/snapshot_*.ymmsl"))
    workflows = catalog.workflow_snapshots(report.run_id)
    assert len(workflows) == len(resume_files) == len(written) == report.workflow_snapshots_added
    for workflow, real in zip(workflows, written, strict=True):
        assert workflow.resume_file == run_dir / real["file"]
        assert workflow.source == Source.IMPORT
        # as MUSCLE3 generated it: one final newline (the file's "|+" block adds one)
        assert workflow.description == real["description"].rstrip("\n") + "\n"
        # Every instance of the run is a member; those MUSCLE3 left out restart (None).
        assert workflow.members == {
            instance: None if rel is None else str(run_dir / rel)
            for instance, rel in real["selected"].items()
        }
        for instance, snapshot_id in workflow.member_ids.items():
            if snapshot_id is not None:
                path = catalog.snapshot(snapshot_id).path
                assert path.is_relative_to(run_dir) and path.is_file()
                assert catalog.snapshot(snapshot_id).instance == instance


@pytest.mark.parametrize("run_dir", RUN_DIRS, ids=RUN_IDS)
def test_relocated_resume_paths_are_counted_and_their_origin_named(
    catalog: Catalog, run_dir: Path
) -> None:
    report = import_run_directory(catalog, run_dir)

    resume_paths = [
        Path(str(path))
        for f in run_dir.glob("snapshots/snapshot_*.ymmsl")
        for path in resume_section(f).values()
    ]
    assert report.relocated_paths == len(resume_paths)
    if resume_paths:
        assert all(str(p).startswith("/scratch/campaign/") for p in resume_paths)
        assert report.original_run_dir == resume_paths[0].parents[3]
        assert report.original_run_dir.name == run_dir.name
    else:
        assert report.original_run_dir is None


@pytest.mark.parametrize("run_dir", RUN_DIRS, ids=RUN_IDS)
def test_reimporting_adds_nothing(catalog: Catalog, run_dir: Path) -> None:
    first = import_run_directory(catalog, run_dir)
    again = import_run_directory(catalog, run_dir)

    assert again.run_id == first.run_id
    assert (again.snapshots_added, again.workflow_snapshots_added) == (0, 0)
    assert again.snapshots_already_known == first.snapshots_added
    assert again.workflow_snapshots_already_known == first.workflow_snapshots_added
    assert len(catalog.runs()) == 1
    assert len(catalog.snapshots()) == first.snapshots_added
    assert len(catalog.workflow_snapshots()) == first.workflow_snapshots_added


def test_run_records_configuration_and_model_name(catalog: Catalog) -> None:
    for name, model in MODEL_NAMES.items():
        report = import_run_directory(catalog, run(name))
        assert report.run.model_name == model
        assert report.run.source == Source.IMPORT
        assert report.run.run_dir == run(name)
        text = (run(name) / "configuration.ymmsl").read_text()
        assert catalog.run_configuration(report.run_id) == text


# --------------------------------------------------------------------------- names and lineage


def test_run_directories_named_like_ids(catalog: Catalog, tmp_path: Path) -> None:
    shutil.copytree(run("v0.10/solo"), tmp_path / "2")
    shutil.copytree(run("v0.10/solo"), tmp_path / "1")

    second = import_run_directory(catalog, tmp_path / "2")
    first = import_run_directory(catalog, tmp_path / "1")

    # As "2", the first run's name would be ambiguous with the second run's id.
    assert (second.run_id, second.run_name) == (1, "run-2")
    assert (first.run_id, first.run_name) == (2, "run-1")
    assert catalog.run(2).run_dir == tmp_path / "1"
    assert catalog.run("run-2").run_dir == tmp_path / "2"
    assert len(catalog.snapshots(run=2)) == len(catalog.snapshots(run="run-2")) == 5


def test_runs_with_the_same_directory_name_get_distinct_names(catalog: Catalog) -> None:
    v07 = import_run_directory(catalog, run("v0.7/mm_scalar"))
    v011 = import_run_directory(catalog, run("v0.11/mm_scalar"))
    again = import_run_directory(catalog, run("v0.7/mm_scalar"))

    assert (v07.run_name, v011.run_name, again.run_name) == (
        "mm_scalar",
        "mm_scalar-2",
        "mm_scalar",
    )
    assert catalog.run("mm_scalar-2").run_dir == run("v0.11/mm_scalar")


def test_resumed_runs_are_linked_to_their_origin(catalog: Catalog) -> None:
    reports = import_run_directories(catalog, RUN_DIRS)

    by_dir = {r.run_dir: r for r in reports}
    for report in reports:
        key = f"{report.run_dir.parent.name}/{report.run_dir.name}"
        run_now = catalog.run(report.run_id)
        if key in RESUMED:
            origin = by_dir[run(RESUMED[key])]
            assert run_now.resumed_from_run_id == origin.run_id, key
        else:
            assert run_now.resumed_from_run_id is None, key


def test_lineage_is_linked_when_the_origin_is_imported_later(catalog: Catalog) -> None:
    resumed = import_run_directory(catalog, run("v0.10/rd_python_resume"))
    assert resumed.resumed_from is None
    assert any("not in the catalog" in note for note in resumed.notes)

    origin = import_run_directory(catalog, run("v0.10/rd_python"))

    assert [r.id for r in origin.newly_linked] == [resumed.run_id]
    assert catalog.run(resumed.run_id).resumed_from_run_id == origin.run_id
    assert import_run_directory(catalog, run("v0.10/rd_python_resume")).resumed_from == (
        catalog.run(origin.run_id)
    )


def test_lineage_follows_the_move_not_the_directory_name(catalog: Catalog) -> None:
    # v0.11/mm_scalar_resume resumed from /scratch/campaign/runs-v2/mm_scalar, which moved to
    # v0.11/mm_scalar; v0.7/mm_scalar (from runs-v070) has the same name and file names.
    decoy = import_run_directory(catalog, run("v0.7/mm_scalar"))
    resumed = import_run_directory(catalog, run("v0.11/mm_scalar_resume"))
    assert catalog.run(resumed.run_id).resumed_from_run_id is None

    origin = import_run_directory(catalog, run("v0.11/mm_scalar"))

    assert catalog.run(resumed.run_id).resumed_from_run_id == origin.run_id != decoy.run_id


def test_lineage_follows_a_move_of_a_whole_campaign_tree(catalog: Catalog, tmp_path: Path) -> None:
    # The original and the resumed run lived in different folders of one tree
    # (/scratch/campaign/runs-v2/mm_scalar, /scratch/campaign/resumed/mm_scalar_resume) and
    # the tree moved as a whole: the origin is not a sibling of the resumed run.
    origin_dir = tmp_path / "campaign/runs-v2/mm_scalar"
    resumed_dir = tmp_path / "campaign/resumed/mm_scalar_resume"
    shutil.copytree(run("v0.11/mm_scalar"), origin_dir)
    shutil.copytree(run("v0.11/mm_scalar_resume"), resumed_dir)
    for resume_file in resumed_dir.glob("snapshots/*.ymmsl"):
        text = resume_file.read_text().replace(
            "runs-v2/mm_scalar_resume", "resumed/mm_scalar_resume"
        )
        resume_file.write_text(text)
    shutil.copytree(run("v0.7/mm_scalar"), tmp_path / "campaign/resumed/mm_scalar")  # a decoy

    decoy = import_run_directory(catalog, tmp_path / "campaign/resumed/mm_scalar")
    resumed = import_run_directory(catalog, resumed_dir)
    assert resumed.original_run_dir == Path("/scratch/campaign/resumed/mm_scalar_resume")
    assert resumed.resumed_from is None  # the decoy next to it is not taken for the origin

    origin = import_run_directory(catalog, origin_dir)

    assert [r.id for r in origin.newly_linked] == [resumed.run_id]
    assert catalog.run(resumed.run_id).resumed_from_run_id == origin.run_id != decoy.run_id


def test_lineage_uses_resume_paths_that_still_exist(catalog: Catalog, tmp_path: Path) -> None:
    origin_dir = tmp_path / "elsewhere/origin"
    shutil.copytree(run("v0.10/mm_stateless"), origin_dir)
    shutil.copytree(run("v0.10/mm_stateless"), tmp_path / "other/origin")  # same name and files
    resumed_dir = copy_run("v0.10/mm_stateless_resume", tmp_path)
    configuration = resumed_dir / "configuration.ymmsl"
    text = configuration.read_text().replace(
        "/scratch/campaign/runs/mm_stateless/", f"{origin_dir}/"
    )
    configuration.write_text(text)

    origin = import_run_directory(catalog, origin_dir)
    import_run_directory(catalog, tmp_path / "other/origin")
    resumed = import_run_directory(catalog, resumed_dir)

    assert resumed.resumed_from is not None and resumed.resumed_from.id == origin.run_id


def test_lineage_is_not_guessed_between_runs_of_the_same_name(
    catalog: Catalog, tmp_path: Path
) -> None:
    # Without resume files, where the resumed run used to live is unknown; two runs are named
    # like its origin and hold the same files, so either could be it.
    resumed_dir = copy_run("v0.10/mm_stateless_resume", tmp_path)
    shutil.rmtree(resumed_dir / "snapshots")
    shutil.copytree(run("v0.10/mm_stateless"), tmp_path / "a/mm_stateless")
    shutil.copytree(run("v0.10/mm_stateless"), tmp_path / "b/mm_stateless")

    first = import_run_directory(catalog, tmp_path / "a/mm_stateless")
    resumed = import_run_directory(catalog, resumed_dir)
    assert resumed.resumed_from is not None and resumed.resumed_from.id == first.run_id
    catalog.set_run_lineage(resumed.run_id, None)

    import_run_directory(catalog, tmp_path / "b/mm_stateless")

    assert catalog.run(resumed.run_id).resumed_from_run_id is None


# --------------------------------------------------------------------------- damaged directories


def test_a_corrupt_pack_is_reported_and_nothing_else_is_lost(
    catalog: Catalog, tmp_path: Path
) -> None:
    run_dir = copy_run("v0.10/mm_stateless", tmp_path)
    broken = run_dir / "instances/macro/snapshots/macro_1.pack"
    good_bytes = broken.read_bytes()
    broken.write_bytes(good_bytes[: len(good_bytes) // 2])

    report = import_run_directory(catalog, run_dir)

    assert report.snapshots_added == len(packs(run_dir)) - 1 == 11
    assert broken not in {r.path for r in catalog.snapshots()}
    assert any(str(broken) in w and "Nothing was recorded" in w for w in report.warnings)
    # The first resume file resumes macro from the broken file: only that one is skipped.
    first_resume = sorted(run_dir.glob("snapshots/*.ymmsl"))[0]
    assert any(str(first_resume) in w and "macro_1.pack" in w for w in report.warnings)
    assert report.workflow_snapshots_added == 5
    assert first_resume not in {w.resume_file for w in catalog.workflow_snapshots()}

    broken.write_bytes(good_bytes)  # repaired: importing again adds exactly what was missing
    again = import_run_directory(catalog, run_dir)
    assert (again.snapshots_added, again.workflow_snapshots_added) == (1, 1)
    assert again.warnings == []
    assert len(catalog.workflow_snapshots(again.run_id)) == 6


def test_bad_names_are_skipped_with_a_warning(catalog: Catalog, tmp_path: Path) -> None:
    run_dir = copy_run("v0.10/solo", tmp_path)
    stray = run_dir / "instances/solo/snapshots/notes.pack"
    shutil.copy(run_dir / "instances/solo/snapshots/solo_1.pack", stray)
    hostile = run_dir / "instances/no such instance/snapshots"
    hostile.mkdir(parents=True)
    shutil.copy(stray, hostile / "x_1.pack")

    report = import_run_directory(catalog, run_dir)

    assert report.snapshots_added == 5
    assert {r.instance for r in catalog.snapshots()} == {"solo"}
    assert any(str(stray) in w for w in report.warnings)
    assert any("'no such instance'" in w for w in report.warnings)


def test_paths_that_exist_are_not_relocated(catalog: Catalog, tmp_path: Path) -> None:
    run_dir = copy_run("v0.10/dispatch", tmp_path)
    for resume_file in run_dir.glob("snapshots/*.ymmsl"):
        text = resume_file.read_text()
        resume_file.write_text(text.replace("/scratch/campaign/runs/dispatch", str(run_dir)))

    report = import_run_directory(catalog, run_dir)

    assert report.relocated_paths == 0 and report.original_run_dir is None
    assert report.workflow_snapshots_added == 16


def test_recorded_order_is_modification_time_then_instance_then_number(
    catalog: Catalog, tmp_path: Path
) -> None:
    run_dir = copy_run("v0.10/mm_vector5", tmp_path)
    files = packs(run_dir)
    for path in files:
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # all saved "at the same moment"
    late = run_dir / "instances/micro[0]/snapshots/micro-0_1.pack"
    os.utime(late, ns=(2_000_000_000, 2_000_000_000))

    report = import_run_directory(catalog, run_dir)

    order = [(r.instance, r.sequence) for r in catalog.snapshots(run=report.run_id)]
    # micro[0]'s first file is newest, so all of micro[0] (numbered after it) comes last.
    key = {"macro": 0, "micro[1]": 2, "micro[2]": 3, "micro[3]": 4, "micro[4]": 5, "micro[0]": 9}
    expected = sorted(order, key=lambda item: (key[item[0]], item[1]))
    assert order == expected
    assert [r.submission_order for r in catalog.snapshots(run=report.run_id)] == list(
        range(1, len(files) + 1)
    )
    assert any("modification times" in note for note in report.notes)


def test_numbering_decides_within_an_instance(catalog: Catalog, tmp_path: Path) -> None:
    run_dir = copy_run("v0.10/mm_stateless", tmp_path)
    for index, path in enumerate(reversed(packs(run_dir))):  # copied newest-first
        os.utime(path, ns=(10**9 + index, 10**9 + index))

    report = import_run_directory(catalog, run_dir)

    records = catalog.snapshots(run=report.run_id)
    for instance in ("macro", "micro"):
        numbers = [r.sequence for r in records if r.instance == instance]
        assert numbers == [1, 2, 3, 4, 5, 6]


def test_progress_is_reported_up_to_the_total(catalog: Catalog) -> None:
    calls: list[tuple[int, int]] = []
    import_run_directory(
        catalog, run("v0.10/mm_vector5"), progress=lambda d, t: calls.append((d, t))
    )

    assert calls[-1] == (41, 41)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len(calls) == 42  # once at the start, once per file


# --------------------------------------------------------------------------- not a run directory


def test_bad_directories_raise_a_clear_error(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(RunDirectoryError, match=r"no such directory") as missing:
        import_run_directory(catalog, tmp_path / "nope")
    assert str(tmp_path / "nope") in str(missing.value)

    a_file = tmp_path / "configuration.ymmsl"
    a_file.write_text("ymmsl_version: v0.2\n")
    with pytest.raises(RunDirectoryError, match="not a directory"):
        import_run_directory(catalog, a_file)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RunDirectoryError, match=re.escape("neither an instances/ folder")):
        import_run_directory(catalog, empty)

    with pytest.raises(RunDirectoryError, match=r"It holds run directories \(dispatch, "):
        import_run_directory(catalog, RUNS / "v0.10")
    assert catalog.runs() == []


def test_one_bad_directory_imports_nothing(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(RunDirectoryError):
        import_run_directories(catalog, [run("v0.10/solo"), tmp_path / "typo"])
    assert catalog.runs() == []


def test_resolve_resume_path_reroots_under_instances(tmp_path: Path) -> None:
    moved = Path("/scratch/x/instances/runs/a/instances/micro[1]/snapshots/micro-1_2.pack")
    assert resolve_resume_path(moved, tmp_path) == (
        tmp_path / "instances/micro[1]/snapshots/micro-1_2.pack",
        True,
    )
    existing = run("v0.10/solo") / "instances/solo/snapshots/solo_1.pack"
    assert resolve_resume_path(existing, tmp_path) == (existing, False)


def test_report_exposes_run_id_and_name(catalog: Catalog) -> None:
    report: ImportReport = import_run_directory(catalog, str(run("v0.10/solo")))
    assert (report.run_id, report.run_name) == (catalog.run("solo").id, "solo")
    assert report.run.num_snapshots == 5
