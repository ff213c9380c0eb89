"""One campaign catalog: found above the working or run directory; only recorders create one."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
import ymmsl
from click.testing import CliRunner, Result

from catalog import SnapshotRegistry, open_catalog
from catalog.cli import cli
from catalog.location import (
    DEFAULT_CATALOG_NAME,
    PathsBelow,
    catalog_for_snapshot_directory,
    choose_catalog,
    find_catalog_above,
    stored_path,
)

from .conftest import RUNS
from .test_cli import assert_one_error_line

STATELESS = RUNS / "v0.10" / "mm_stateless"


@pytest.fixture
def campaign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A campaign directory with no catalog anywhere above it, and no catalog in the env."""
    monkeypatch.delenv("MUSCLE_SNAPSHOT_CATALOG", raising=False)
    found, _ = find_catalog_above(tmp_path)
    assert found is None, f"a stray {found} above the test directory would decide these tests"
    directory = tmp_path / "campaign"
    directory.mkdir()
    return directory


def run_cli(cwd: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(cli, list(args))


def test_rules_in_order(campaign: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = campaign / "run1" / "instances" / "macro" / "snapshots"
    deep.mkdir(parents=True)
    new = choose_catalog(None, deep)
    assert new.reason == "new" and not new.found
    assert new.location == str(deep / DEFAULT_CATALOG_NAME)
    assert new.searched[:3] == (deep, deep.parent, deep.parent.parent)
    (campaign / DEFAULT_CATALOG_NAME).touch()
    found = choose_catalog(None, deep)
    assert (found.reason, found.location) == ("found", str(campaign / DEFAULT_CATALOG_NAME))
    (campaign / "run1" / DEFAULT_CATALOG_NAME).touch()  # the nearest wins
    assert choose_catalog(None, deep).location == str(campaign / "run1" / DEFAULT_CATALOG_NAME)
    monkeypatch.setenv("MUSCLE_SNAPSHOT_CATALOG", "postgresql+psycopg://h/db")
    assert choose_catalog(None, deep).location == "postgresql+psycopg://h/db"
    assert choose_catalog("x.sqlite", deep).location == "x.sqlite"


def test_instances_and_registry_record_into_the_campaign_catalog(
    campaign: Path, tmp_path: Path
) -> None:
    init = CliRunner().invoke(cli, ["init", str(campaign)])
    assert init.exit_code == 0, init.output
    assert "Created the catalog" in init.output
    catalog_file = campaign / DEFAULT_CATALOG_NAME
    run_dir = campaign / "runs" / "run1"
    snapshots = run_dir / "instances" / "micro[2]" / "snapshots"
    snapshots.mkdir(parents=True)
    assert catalog_for_snapshot_directory(snapshots) == str(catalog_file)
    configuration = ymmsl.load((STATELESS / "configuration.ymmsl").read_text())
    registry = SnapshotRegistry(
        configuration, run_dir / "snapshots", threaded=False, clock=lambda: dt.datetime(2000, 1, 1)
    )
    try:
        assert registry.catalog.location == str(catalog_file)
    finally:
        registry.shutdown()
    assert not (run_dir / DEFAULT_CATALOG_NAME).exists()
    with open_catalog(catalog_file, create=True) as cat:
        assert [r.run_dir for r in cat.runs()] == [run_dir]


def test_read_only_commands_never_create_a_catalog(
    campaign: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for command in (["runs"], ["snapshots"], ["workflows"], ["resume"], ["upgrade"]):
        result = run_cli(campaign, monkeypatch, *command)
        assert_one_error_line(result, "No catalog found", str(campaign), "muscle-catalog init")
    assert list(campaign.iterdir()) == []


def test_commands_below_the_campaign_find_its_catalog(
    campaign: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    imported = run_cli(campaign, monkeypatch, "import", str(STATELESS))
    assert imported.exit_code == 0, imported.output
    assert (campaign / DEFAULT_CATALOG_NAME).is_file()
    below = campaign / "analysis" / "notebooks"
    below.mkdir(parents=True)
    listed = run_cli(below, monkeypatch, "runs", "--json")
    assert listed.exit_code == 0, listed.output
    assert "mm_stateless" in listed.output
    assert not (below / DEFAULT_CATALOG_NAME).exists()


def test_init_is_idempotent_and_refuses_two_targets(
    campaign: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_cli(campaign, monkeypatch, "init")
    assert first.exit_code == 0 and "Created the catalog" in first.output
    before = (campaign / DEFAULT_CATALOG_NAME).read_bytes()
    again = run_cli(campaign, monkeypatch, "init")
    assert again.exit_code == 0 and "nothing changed" in again.output
    assert (campaign / DEFAULT_CATALOG_NAME).read_bytes() == before
    both = run_cli(campaign, monkeypatch, "--catalog", "x.sqlite", "init", "sub")
    assert both.exit_code == 2
    nested = run_cli(campaign, monkeypatch, "init", "sub")
    assert nested.exit_code == 0
    assert f"not {campaign / DEFAULT_CATALOG_NAME}" in nested.output


NAMES = [
    "micro-4_1.pack",
    "instances/micro[4]/snapshots/micro-4_1.pack",
    ".hidden/x.pack",
    "..x/y.pack",
    "a.b/c..d/e.pack",
    "./x.pack",
    "a/./x.pack",
    "a/../x.pack",
    "../outside/x.pack",
    "a//x.pack",
    "a/x.pack/",
    "a/..",
    ".",
    "..",
    "/elsewhere/x.pack",
    "snapshots/../../x.pack",
]


@pytest.mark.parametrize("layout", ["catalog above", "catalog in run", "catalog beside", "no root"])
def test_paths_below_store_names_as_stored_path_does(tmp_path: Path, layout: str) -> None:
    """The registry's fast keys are stored_path's, for plain and for odd names."""
    run_dir = tmp_path / "campaign" / "run"
    root = {
        "catalog above": tmp_path / "campaign",
        "catalog in run": run_dir,
        "catalog beside": tmp_path / "other",
        "no root": None,
    }[layout]
    for directory in (run_dir, str(run_dir) + "/", tmp_path / "campaign" / "x" / ".." / "run"):
        paths = PathsBelow(directory, root)
        for name in NAMES:
            joined = os.path.join(directory, name)
            assert paths.join(name) == joined
            assert paths.stored(name) == stored_path(joined, root), (directory, name)
