"""yMMSL files are parsed within limits: a size cap, and no YAML alias bombs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import ymmsl

from catalog import Catalog, YmmslLimitError, import_run_directory
from catalog.run_dir import (
    CONFIGURATION_FILE,
    MAX_ALIAS_NODES,
    MAX_YMMSL_BYTES,
    check_ymmsl_limits,
    load_ymmsl,
    parse_ymmsl,
    read_configuration_text,
    read_ymmsl_file,
)
from catalog.run_import import parse_resume_file

from .conftest import DATA, RUNS

YMMSL = DATA / "ymmsl"
BOMB = YMMSL / "billion_laughs.ymmsl"


def test_the_billion_laughs_bomb_is_refused_naming_the_file() -> None:
    assert BOMB.stat().st_size == 362
    with pytest.raises(YmmslLimitError, match=r"billion_laughs\.ymmsl was refused: .*aliases"):
        load_ymmsl(BOMB.read_text(), BOMB)
    with pytest.raises(ValueError, match=r"billion_laughs\.ymmsl"):  # what callers catch
        parse_ymmsl(BOMB.read_text(), BOMB)


def test_a_bomb_inside_a_valid_configuration_is_refused() -> None:
    path = YMMSL / "bomb_in_settings.ymmsl"
    with pytest.raises(YmmslLimitError, match=rf"bomb_in_settings\.ymmsl .* {MAX_ALIAS_NODES}"):
        load_ymmsl(path.read_text(), path)


def test_ordinary_anchors_and_aliases_load_as_ymmsl_loads_them() -> None:
    text = (YMMSL / "shared_settings.ymmsl").read_text()
    ours, theirs = load_ymmsl(text), ymmsl.load(text)
    assert ymmsl.dump(ours) == ymmsl.dump(theirs)
    assert ours.settings["micro.weights"] == [[1.0, 2.0], [3.0, 4.0]]
    assert ours.settings["micro.coarse_dt"] == 0.17


def test_aliases_up_to_the_limit_are_accepted() -> None:
    scalar_aliases = "\n".join(f"  k{i}: *v" for i in range(MAX_ALIAS_NODES))
    check_ymmsl_limits(f"settings:\n  base: &v 1.0\n{scalar_aliases}\n")
    with pytest.raises(YmmslLimitError, match=r"\*v"):
        check_ymmsl_limits(f"settings:\n  base: &v 1.0\n{scalar_aliases}\n  one_more: *v\n")


@pytest.mark.parametrize(
    "path",
    sorted(RUNS.parent.glob("runs*/*/*/configuration.ymmsl"))
    + sorted(RUNS.parent.glob("runs*/*/*/snapshots/snapshot_*.ymmsl"))[:20],
    ids=lambda p: str(p.relative_to(RUNS.parent)),
)
def test_every_real_muscle3_file_loads_as_ymmsl_loads_it(path: Path) -> None:
    text = path.read_text()
    assert ymmsl.dump(load_ymmsl(text, path)) == ymmsl.dump(ymmsl.load(text))


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "snapshot_20260101_000000.ymmsl"
    with path.open("wb") as sparse:
        sparse.truncate(MAX_YMMSL_BYTES + 1)
    with pytest.raises(YmmslLimitError, match=r"snapshot_20260101_000000\.ymmsl is 16777217 bytes"):
        read_ymmsl_file(path)
    with pytest.raises(ValueError, match="more than the 16777216 bytes"):
        parse_resume_file(path)


def test_a_text_over_the_size_limit_is_refused() -> None:
    check_ymmsl_limits("#" * MAX_YMMSL_BYTES)
    with pytest.raises(YmmslLimitError, match="the configuration of x is 16777217 bytes"):
        check_ymmsl_limits("#" * (MAX_YMMSL_BYTES - 1) + "é", "the configuration of x")


def _run_with_configuration(tmp_path: Path, configuration: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(RUNS / "v0.10" / "mm_vector5", run_dir)
    shutil.copyfile(configuration, run_dir / CONFIGURATION_FILE)
    return run_dir


def test_import_refuses_a_bomb_configuration_and_imports_the_rest(
    catalog: Catalog, tmp_path: Path
) -> None:
    run_dir = _run_with_configuration(tmp_path, BOMB)
    assert read_configuration_text(run_dir) is None  # the instance side neither parses nor stores
    report = import_run_directory(catalog, run_dir)
    (warning,) = [w for w in report.warnings if "billion" in w or "refused" in w]
    assert f"{run_dir / CONFIGURATION_FILE} was refused" in warning
    assert "imported without its configuration" in warning
    (run,) = catalog.runs()
    assert catalog.run_configuration(run.id) is None
    assert len(catalog.snapshots()) == len(list(run_dir.glob("instances/*/snapshots/*.pack")))


def test_import_refuses_an_oversized_configuration(catalog: Catalog, tmp_path: Path) -> None:
    run_dir = _run_with_configuration(tmp_path, BOMB)
    with (run_dir / CONFIGURATION_FILE).open("wb") as sparse:
        sparse.truncate(MAX_YMMSL_BYTES + 1)
    report = import_run_directory(catalog, run_dir)
    assert any("more than the 16777216 bytes" in w for w in report.warnings)
    (run,) = catalog.runs()
    assert catalog.run_configuration(run.id) is None
