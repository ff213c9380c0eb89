"""The command line and open_catalog forgive mistakes, and clearly refuse what they cannot.

Reading creates and changes nothing, foreign files are refused untouched,
read-only catalogs are readable, and every error is one clear line.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from catalog import (
    CatalogNotFoundError,
    CatalogReadOnlyError,
    NotACatalogError,
    open_catalog,
)
from catalog.cli import cli

RUNS = Path(__file__).parent / "data" / "runs" / "v0.10"
STATELESS = (RUNS / "mm_stateless").absolute()
REPO = Path(__file__).parent.parent

#: Commands that only read, with the arguments they need on the stateless run's catalog.
READ_COMMANDS: list[tuple[str, ...]] = [
    ("runs",),
    ("runs", "--json"),
    ("snapshots",),
    ("workflows",),
    ("lineage", "mm_stateless"),
    ("show", "1"),
    ("resume",),
    ("du",),
    ("verify",),
    ("gc", "--keep-last", "1"),
]


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def journal_mode(path: Path) -> str:
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        connection.close()


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def stateless_catalog(tmp_path: Path) -> Path:
    """A SQLite catalog holding the stateless run, in DELETE journal mode (as a copy off NFS)."""
    db_file = tmp_path / "campaign" / "snapshot_catalog.sqlite"
    db_file.parent.mkdir()
    result = invoke("--catalog", str(db_file), "import", str(STATELESS))
    assert result.exit_code == 0, result.output
    connection = sqlite3.connect(db_file)
    connection.execute("PRAGMA journal_mode = DELETE")
    connection.close()
    return db_file


# -- missing, empty and foreign files ---------------------------------------------------------


def test_open_catalog_does_not_create_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "typo.sqlite"
    with pytest.raises(CatalogNotFoundError, match=r"There is no catalog at .*typo\.sqlite"):
        open_catalog(missing)
    with pytest.raises(CatalogNotFoundError):
        open_catalog(tmp_path / "no-such-dir" / "cat.sqlite")
    assert list(tmp_path.iterdir()) == []
    with open_catalog(missing, create=True) as catalog:
        assert catalog.runs() == []
    assert missing.is_file()


@pytest.mark.parametrize("command", [("runs",), ("snapshots",), ("workflows",), ("du",)])
def test_reading_a_missing_catalog_creates_nothing(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    missing = tmp_path / "typo.sqlite"
    line = one_error_line(invoke("--catalog", str(missing), *command))
    assert str(missing) in line
    assert list(tmp_path.iterdir()) == []


def test_empty_file_is_initialised_only_by_writing_commands(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    for command in (("runs",), ("snapshots",)):
        line = one_error_line(invoke("--catalog", str(empty), *command))
        assert "not a snapshot catalog yet" in line and str(empty) in line
        assert empty.stat().st_size == 0
    with pytest.raises(NotACatalogError):
        open_catalog(empty)
    assert empty.stat().st_size == 0
    result = invoke("--catalog", str(empty), "init")
    assert result.exit_code == 0, result.output
    assert invoke("--catalog", str(empty), "runs").exit_code == 0


@pytest.mark.parametrize(
    "command",
    [("runs",), ("snapshots",), ("import", str(STATELESS)), ("init",), ("upgrade",), ("reindex",)],
)
@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_a_foreign_sqlite_file_is_refused_untouched(
    tmp_path: Path, command: tuple[str, ...], journal: str
) -> None:
    foreign = tmp_path / "app.db"
    connection = sqlite3.connect(foreign)
    connection.execute(f"PRAGMA journal_mode = {journal}")
    connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    connection.execute("INSERT INTO users (name) VALUES ('ada')")
    connection.commit()
    connection.close()
    before = digest(foreign)

    line = one_error_line(invoke("--catalog", str(foreign), *command))

    assert str(foreign) in line and "is not a snapshot catalog" in line
    assert digest(foreign) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]
    assert foreign.read_bytes()[18] == (2 if journal == "wal" else 1)  # the header's journal
    with pytest.raises(NotACatalogError, match="not a snapshot catalog"):
        open_catalog(foreign, create=True)
    assert digest(foreign) == before


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database, but long enough to have a header\n" * 20)
    before = digest(text)
    line = one_error_line(invoke("--catalog", str(text), "import", str(STATELESS)))
    assert "is not a snapshot catalog" in line and str(text) in line
    assert digest(text) == before


# -- reading changes nothing ------------------------------------------------------------------


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_read_commands_change_no_byte_and_keep_the_journal_mode(
    stateless_catalog: Path, command: tuple[str, ...]
) -> None:
    before = digest(stateless_catalog)
    files_before = sorted(p.name for p in stateless_catalog.parent.iterdir())

    result = invoke("--catalog", str(stateless_catalog), *command)

    assert result.exit_code == 0, result.output
    assert digest(stateless_catalog) == before
    assert journal_mode(stateless_catalog) == "delete"
    assert sorted(p.name for p in stateless_catalog.parent.iterdir()) == files_before


@pytest.mark.parametrize("command", [("runs",), ("snapshots",), ("workflows",), ("resume",)])
def test_reading_a_wal_catalog_leaves_no_file_behind(
    stateless_catalog: Path, command: tuple[str, ...]
) -> None:
    connection = sqlite3.connect(stateless_catalog)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.close()  # the last connection: no -wal or -shm file stays
    before = digest(stateless_catalog)
    assert stateless_catalog.read_bytes()[18] == 2  # the header says WAL

    result = invoke("--catalog", str(stateless_catalog), *command)

    assert result.exit_code == 0, result.output
    assert digest(stateless_catalog) == before
    assert [p.name for p in stateless_catalog.parent.iterdir()] == [stateless_catalog.name]


def test_writing_commands_switch_to_wal(stateless_catalog: Path) -> None:
    assert invoke("--catalog", str(stateless_catalog), "reindex").exit_code == 0
    assert journal_mode(stateless_catalog) == "wal"


# -- read-only catalogs -----------------------------------------------------------------------


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nothing can be written in: a read-only tmpfs mount as root, else chmod."""
    directory = tmp_path / "ro"
    directory.mkdir()
    if os.getuid() != 0:
        yield directory
        directory.chmod(0o755)
        return
    if shutil.which("mount") is None:
        pytest.skip("running as root (chmod cannot stop root writing) and there is no `mount`")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            "running as root, where chmod cannot stop writes, and a read-only tmpfs cannot "
            f"be mounted here: {mounted.stderr.strip()}"
        )
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=False)


def _seal(directory: Path) -> None:
    """Make ``directory`` (filled beforehand) read-only, for root too."""
    if os.getuid() == 0:
        subprocess.run(["mount", "-o", "remount,ro", str(directory)], check=True)
    else:
        for path in directory.iterdir():
            path.chmod(0o444)
        directory.chmod(0o555)


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_a_read_only_catalog_serves_every_read_and_refuses_writes(
    stateless_catalog: Path, read_only_dir: Path, journal: str
) -> None:
    connection = sqlite3.connect(stateless_catalog)
    connection.execute(f"PRAGMA journal_mode = {journal}")
    connection.close()  # the last connection: a WAL database leaves no -wal or -shm file
    db_file = read_only_dir / stateless_catalog.name
    shutil.copy2(stateless_catalog, db_file)
    _seal(read_only_dir)
    before = digest(db_file)

    for command in READ_COMMANDS:
        result = invoke("--catalog", str(db_file), *command)
        assert result.exit_code == 0, (command, result.output)
    with open_catalog(db_file) as catalog:
        assert catalog.read_only
        run = catalog.run("mm_stateless")
        assert len(catalog.snapshots(run=run.id)) == 12
        assert len(catalog.workflow_snapshots(run.id)) == 6
        with pytest.raises(CatalogReadOnlyError, match="catalog is read-only"):
            catalog.ensure_run(read_only_dir / "new_run")
    line = one_error_line(invoke("--catalog", str(db_file), "reindex"))
    assert "catalog is read-only" in line
    assert digest(db_file) == before


def test_read_only_is_asked_for_too(stateless_catalog: Path) -> None:
    with open_catalog(stateless_catalog, read_only=True) as catalog:
        assert len(catalog.runs()) == 1
        with pytest.raises(CatalogReadOnlyError, match="catalog is read-only"):
            catalog.set_run_status(1, "finished")  # type: ignore[arg-type]


# -- database drivers and database errors ---------------------------------------------------


@pytest.mark.parametrize("url", ["mysql://user@host/db", "oracle://user@host/db"])
def test_unsupported_backends_are_one_line(url: str) -> None:
    line = one_error_line(invoke("--catalog", url, "runs"))
    assert "not supported" in line and "SQLite" in line and "PostgreSQL" in line


def test_a_missing_psycopg_names_the_extra_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None; "
        "sys.argv = ['muscle-catalog', '--catalog', 'postgresql+psycopg://u@localhost/x', 'runs']; "
        "from catalog.cli import main; main()"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'muscle-snapshot-catalog[postgres]'" in lines[0]


def test_sqlite_errors_do_not_mention_a_database_server(stateless_catalog: Path) -> None:
    connection = sqlite3.connect(stateless_catalog)
    connection.execute("DROP TABLE snapshot_triggers")  # a damaged catalog
    connection.close()
    line = one_error_line(invoke("--catalog", str(stateless_catalog), "snapshots"))
    assert "snapshot_triggers" in line
    assert "server" not in line


def test_only_postgresql_errors_mention_the_server() -> None:
    sources = {p: p.read_text() for p in (REPO / "catalog").rglob("*.py")}
    saying = [p for p, text in sources.items() if "database server is running" in text]
    assert saying == [REPO / "catalog" / "cli" / "group.py"]
    before, _, _ = sources[saying[0]].partition("database server is running")
    assert 'startswith("postgresql")' in before[-400:]


# -- usage errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("resume", "--id", "26", "--latest"),
        ("resume", "--latest", "--before-time", "0.5"),
        ("resume", "--id", "3", "--before-time", "0.5"),
        ("resume", "--id", "-1"),
        ("workflows", "--containing", "1", "--limit", "-1"),
        ("workflows", "--containing", "1", "--limit", "0"),
        ("workflows", "--containing", "1", "--run", "mm_stateless"),
        ("gc", "--keep-last", "-2"),
        ("runs", "--no-such-option"),
    ],
    ids=" ".join,
)
def test_conflicting_or_invalid_options_are_usage_errors(
    stateless_catalog: Path, args: tuple[str, ...]
) -> None:
    result = invoke("--catalog", str(stateless_catalog), *args)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output and "Traceback" not in result.output


def test_resume_latest_asks_which_run_when_models_differ(tmp_path: Path) -> None:
    db_file = tmp_path / "snapshot_catalog.sqlite"
    imported = invoke("--catalog", str(db_file), "import", str(STATELESS), str(RUNS / "rd_python"))
    assert imported.exit_code == 0, imported.output

    result = invoke("--catalog", str(db_file), "resume", "--latest")

    assert result.exit_code == 2, result.output
    assert "--run" in result.output
    assert "mm_stateless" in result.output and "rd_python" in result.output
    assert "macro_micro" in result.output and "reaction_diffusion" in result.output
    chosen = invoke("--catalog", str(db_file), "resume", "--latest", "--run", "mm_stateless")
    assert chosen.exit_code == 0, chosen.output
    assert "resume:" in chosen.stdout


# -- narrow terminals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "records"),
    [(("snapshots",), 12), (("runs",), 1), (("workflows",), 6), (("du",), 2)],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else str(value),
)
def test_tables_fit_80_columns_one_line_per_record(
    stateless_catalog: Path, command: tuple[str, ...], records: int
) -> None:
    long_dir = stateless_catalog.parent / ("a_rather_long_directory_name_" * 3)
    long_dir.mkdir()
    db_file = long_dir / stateless_catalog.name
    shutil.copy2(stateless_catalog, db_file)

    result = invoke("--catalog", str(db_file), *command, env={"COLUMNS": "80"})

    assert result.exit_code == 0, result.output
    lines = result.stdout.rstrip("\n").splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    # title (may wrap once), a blank line, header (may wrap once), rule, a line per
    # record, and the trailing blank line: never a record folded over several lines
    assert len(lines) <= records + 7, result.stdout


def test_piped_tables_keep_whole_values(stateless_catalog: Path) -> None:
    result = invoke("--catalog", str(stateless_catalog), "runs")
    assert str(STATELESS) in result.stdout
