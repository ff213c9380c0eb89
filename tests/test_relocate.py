"""One identity per run: symlinks, copied and moved runs, relocate, concurrent imports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog import Catalog
from catalog.cli import cli
from catalog.db.schema import Run
from catalog.errors import CatalogError
from catalog.maintenance.relocate import relocate
from catalog.maintenance.verify import verify
from catalog.run_import import import_run_directory

from .conftest import RUNS


def copy_run(name: str, target: Path) -> Path:
    shutil.copytree(RUNS / name, target)
    return target


def paths_of(catalog: Catalog) -> list[Path]:
    return sorted(s.path for s in catalog.snapshots())


def resume_files_of(catalog: Catalog) -> list[Path]:
    return sorted(w.resume_file for w in catalog.workflow_snapshots() if w.resume_file)


def test_a_run_reached_through_a_symlink_is_one_run(catalog: Catalog, tmp_path: Path) -> None:
    real = copy_run("v0.10/mm_vector5", tmp_path / "real" / "mm_vector5")
    link = tmp_path / "link"
    link.symlink_to(real.parent, target_is_directory=True)
    first = import_run_directory(catalog, link / "mm_vector5")
    assert first.snapshots_added > 0
    assert catalog.run(first.run_id).run_dir == real  # stored resolved
    again = import_run_directory(catalog, real)
    assert again.run_id == first.run_id
    assert again.snapshots_added == again.workflow_snapshots_added == 0
    assert len(catalog.runs()) == 1
    assert all(p.is_relative_to(real) for p in paths_of(catalog))


def test_a_run_recorded_under_its_symlink_keeps_that_form(catalog: Catalog, tmp_path: Path) -> None:
    real = copy_run("v0.10/mm_vector5", tmp_path / "real" / "mm_vector5")
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    # as a release before resolved paths recorded it: the symlink's own form
    with catalog.write_session() as session:
        session.add(Run(name="mm_vector5", run_dir=catalog.stored_path(link), source="live"))
    (recorded,) = catalog.runs()
    assert recorded.run_dir == link
    assert catalog.ensure_run(real).id == recorded.id  # found by its real directory
    report = import_run_directory(catalog, real)
    assert report.run_id == recorded.id and report.run_dir == link
    assert import_run_directory(catalog, link).snapshots_added == 0
    assert len(catalog.runs()) == 1
    assert all(p.is_relative_to(link) for p in paths_of(catalog))


def test_a_moved_run_is_relocated_not_added(catalog: Catalog, tmp_path: Path) -> None:
    old = copy_run("v0.10/mm_vector5", tmp_path / "cluster" / "mm_vector5")
    first = import_run_directory(catalog, old)
    count = len(catalog.snapshots())
    new = tmp_path / "archive" / "mm_vector5"
    new.parent.mkdir()
    shutil.move(old, new)
    report = import_run_directory(catalog, new)
    assert report.run_id == first.run_id and report.relocated_from == old
    assert any("relocated here" in note for note in report.notes)
    assert report.snapshots_added == 0 and report.workflow_snapshots_added == 0
    assert len(catalog.runs()) == 1 and len(catalog.snapshots()) == count
    assert catalog.run(first.run_id).run_dir == new
    assert all(p.is_relative_to(new) and p.is_file() for p in paths_of(catalog))
    assert all(p.is_relative_to(new) for p in resume_files_of(catalog))
    assert verify(catalog).ok


def test_a_copy_beside_its_original_is_its_own_run(catalog: Catalog, tmp_path: Path) -> None:
    original = copy_run("v0.10/mm_vector5", tmp_path / "a" / "mm_vector5")
    import_run_directory(catalog, original)
    copy = copy_run("v0.10/mm_vector5", tmp_path / "b" / "mm_vector5")
    report = import_run_directory(catalog, copy)
    assert report.relocated_from is None and report.snapshots_added > 0
    assert len(catalog.runs()) == 2


def test_relocate_rewrites_every_stored_path(
    catalog_url: str, catalog: Catalog, tmp_path: Path
) -> None:
    old = copy_run("v0.10/mm_vector5", tmp_path / "old" / "mm_vector5")
    first = import_run_directory(catalog, old)
    new = tmp_path / "new" / "mm_vector5"
    shutil.copytree(old, new)
    before = (len(catalog.snapshots()), len(resume_files_of(catalog)))
    report = relocate(catalog, old, new)
    assert report.runs == ["mm_vector5"] and report.run_dirs == 1
    assert (report.snapshot_paths, report.resume_files) == before
    assert report.changed == 1 + sum(before) and report.missing_files == []
    assert catalog.run(first.run_id).run_dir == new
    assert all(p.is_relative_to(new) for p in paths_of(catalog))
    assert all(p.is_relative_to(new) for p in resume_files_of(catalog))
    # and back, through the command line
    result = CliRunner().invoke(cli, ["--catalog", catalog_url, "relocate", str(new), str(old)])
    assert result.exit_code == 0, result.output
    assert f"Relocated {new} to {old}: 1 runs (mm_vector5)" in result.stdout
    assert all(p.is_relative_to(old) for p in paths_of(catalog))


def test_relocate_refuses_clearly(catalog_url: str, catalog: Catalog, tmp_path: Path) -> None:
    old = copy_run("v0.10/mm_vector5", tmp_path / "old" / "mm_vector5")
    import_run_directory(catalog, old)
    other = copy_run("v0.10/mm_stateless", tmp_path / "other" / "mm_stateless")
    import_run_directory(catalog, other)
    stranger = copy_run("v0.10/rd_python", tmp_path / "stranger" / "rd_python")
    changed = copy_run("v0.10/mm_vector5", tmp_path / "changed" / "mm_vector5")
    pack = changed / "instances" / "macro" / "snapshots" / "macro_1.pack"
    pack.write_bytes(pack.read_bytes()[:-1] + b"\x00")
    before = paths_of(catalog)
    with pytest.raises(CatalogError, match="no such directory"):
        relocate(catalog, old, tmp_path / "nowhere")
    with pytest.raises(CatalogError, match="is recorded at"):
        relocate(catalog, old, other)
    with pytest.raises(CatalogError, match="holds a different run"):
        relocate(catalog, old, stranger)
    with pytest.raises(CatalogError, match=r"holds a different run.*sha256 differs"):
        relocate(catalog, old, changed)
    with pytest.raises(CatalogError, match="Nothing is recorded under"):
        relocate(catalog, tmp_path / "elsewhere", changed)
    assert paths_of(catalog) == before
    result = CliRunner().invoke(
        cli, ["--catalog", catalog_url, "relocate", str(old), str(stranger)]
    )
    assert result.exit_code == 1 and result.stderr.startswith("Error: Cannot relocate")


def test_concurrent_imports_of_one_directory(
    catalog_url: str, catalog: Catalog, tmp_path: Path
) -> None:
    run_dir = copy_run("v0.10/mm_vector5", tmp_path / "mm_vector5")
    command = [sys.executable, "-c", "from catalog.cli import main; main()"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    processes = [
        subprocess.Popen(
            [*command, "--catalog", catalog_url, "import", str(run_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, out + err
        assert "Traceback" not in err and "IntegrityError" not in err
    assert len(catalog.runs()) == 1
    snapshots = catalog.snapshots()
    assert len(snapshots) == len(list(run_dir.glob("instances/*/snapshots/*.pack")))
    assert len({s.path for s in snapshots}) == len(snapshots)
    workflows = catalog.workflow_snapshots()
    assert len(workflows) == len(list(run_dir.glob("snapshots/snapshot_*.ymmsl")))
    members = [tuple(sorted(w.member_ids.items())) for w in workflows]
    assert len(set(members)) == len(members)
    assert verify(catalog).ok


def test_watching_through_a_symlink_finds_the_imported_run(
    catalog: Catalog, tmp_path: Path
) -> None:
    from catalog.watch import watch_run_directories

    real = copy_run("v0.10/mm_vector5", tmp_path / "real" / "mm_vector5")
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    imported = import_run_directory(catalog, real)
    count = len(catalog.snapshots())
    (report,) = watch_run_directories(
        catalog, [link], interval=0.05, settle=0.1, timeout=30, handle_signals=False
    )
    assert report.run is not None and report.run.id == imported.run_id
    assert len(catalog.runs()) == 1 and len(catalog.snapshots()) == count
