"""The command line starts light: which modules each command imports.

No timing here: ``benchmarks/cli_benchmark.py`` measures the time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from catalog.cli import cli
from catalog.cli.group import COMMANDS

REPO = Path(__file__).parent.parent
STATELESS = (REPO / "tests" / "data" / "runs" / "v0.10" / "mm_stateless").absolute()

#: Heavy packages; a command imports only those it needs.
HEAVY = {"sqlalchemy", "alembic", "numpy", "ymmsl", "rich", "pandas", "matplotlib", "msgpack"}

_PROBE = """
import json, sys
from catalog.cli import cli
try:
    cli.main(sys.argv[1:], prog_name="muscle-catalog", standalone_mode=False)
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def imported_by(*args: str, cwd: Path | None = None) -> set[str]:
    """The modules and top-level packages a fresh interpreter has imported after the command."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MUSCLE_SNAPSHOT_CATALOG", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=True,
    )
    modules = set(json.loads(done.stdout.strip().splitlines()[-1]))
    return modules | {name.split(".")[0] for name in modules}


@pytest.fixture(scope="module")
def small_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db_file = tmp_path_factory.mktemp("speed") / "snapshot_catalog.sqlite"
    result = CliRunner().invoke(cli, ["--catalog", str(db_file), "import", str(STATELESS)])
    assert result.exit_code == 0, result.output
    return db_file


@pytest.mark.parametrize("args", [("--help",), ("-h",), ("runs", "--help"), ("--version",)])
def test_help_imports_no_heavy_package(args: tuple[str, ...], tmp_path: Path) -> None:
    assert imported_by(*args, cwd=tmp_path) & HEAVY == set()


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (("runs",), {"rich"}),
        (("runs", "--json"), set()),
        (("snapshots",), {"sqlalchemy", "rich"}),
        (("snapshots", "--json"), {"sqlalchemy"}),
        (("workflows",), {"sqlalchemy", "rich", "ymmsl"}),
        (("workflows", "--json"), {"sqlalchemy", "ymmsl"}),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else "",
)
def test_listing_commands_import_only_what_they_need(
    small_catalog: Path, args: tuple[str, ...], allowed: set[str]
) -> None:
    imported = imported_by("--catalog", str(small_catalog), *args)
    assert f"catalog.cli.{COMMANDS[args[0]][0].rsplit('.', 1)[1]}" in imported  # it did run
    assert imported & HEAVY <= allowed
    assert not imported & {"alembic", "numpy"}


def test_runs_of_another_kind_of_catalog_still_work_through_sqlalchemy(
    small_catalog: Path,
) -> None:
    """A URL (not a plain path) takes the full catalog's way; the listing is the same."""
    imported = imported_by("--catalog", f"sqlite:///{small_catalog}", "runs")
    assert "sqlalchemy" in imported
    assert "alembic" not in imported  # opening an up-to-date catalog needs no migrations


def test_every_command_is_listed_with_its_own_help() -> None:
    """COMMANDS (what --help shows without importing) says what each command says itself."""
    ctx = click.Context(cli)
    for name, (module, short_help) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None, name
        assert command.callback is not None and command.callback.__module__ == module
        stand_in = click.Command(name, help=short_help)
        assert stand_in.get_short_help_str(200) == command.get_short_help_str(200), name
    assert set(cli.commands) == set(COMMANDS)


def test_python_dash_m_runs_the_command(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "catalog.cli", "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    for name in COMMANDS:
        assert f"  {name} " in done.stdout
