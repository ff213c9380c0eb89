"""The muscle-catalog command, driven through click's CliRunner on both backends."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from catalog import open_catalog
from catalog.cli import cli, describe_data
from catalog.cli import runs as cli_runs
from catalog.db.versioning import head_revision
from catalog.message import Grid
from catalog.store import load_pack

from .conftest import RUNS

STATELESS = (RUNS / "v0.10/mm_stateless").absolute()
STATELESS_RESUME = (RUNS / "v0.10/mm_stateless_resume").absolute()
V011_PACK = (RUNS / "v0.11/mm_scalar/instances/macro/snapshots/macro_1.pack").absolute()
JSON_KEYS = {
    "id",
    "run",
    "run_id",
    "instance",
    "path",
    "triggers",
    "wallclock_time",
    "timestamp",
    "next_timestamp",
    "port_message_counts",
    "is_final_snapshot",
}


def invoke(location: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--catalog", location, *args])


def strict_json(text: str) -> Any:
    """Parse JSON refusing the bare NaN/Infinity tokens Python would otherwise accept."""

    def refuse(token: str) -> Any:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def assert_one_error_line(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_import_prints_a_summary_per_run(catalog_url: str) -> None:
    result = invoke(catalog_url, "import", str(STATELESS), str(STATELESS_RESUME))

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"Imported mm_stateless (run 1) from {STATELESS}" in out
    assert "snapshots: 12 added, 0 already known" in out
    assert "workflow snapshots: 6 added, 0 already known" in out
    assert (
        "12 resume paths pointed to /scratch/campaign/runs/mm_stateless and were resolved "
        f"against {STATELESS}"
    ) in out
    assert "resumed from: mm_stateless (run 1)" in out
    assert "modification times" in out
    assert result.stderr == ""

    again = invoke(catalog_url, "import", str(STATELESS))
    assert "snapshots: 0 added, 12 already known" in again.stdout
    assert "workflow snapshots: 0 added, 6 already known" in again.stdout


def test_snapshots_json_has_exactly_the_documented_keys_and_values(catalog_url: str) -> None:
    invoke(catalog_url, "import", str(STATELESS))

    result = invoke(catalog_url, "snapshots", "--json")

    assert result.exit_code == 0, result.output
    listed = strict_json(result.stdout)
    assert len(listed) == 12
    for item in listed:
        assert set(item) == JSON_KEYS
        path = Path(item["path"])
        assert path.is_absolute() and path.is_relative_to(STATELESS)
        snapshot = load_pack(path).snapshot
        assert item["run"] == "mm_stateless"
        assert item["instance"] == path.parent.parent.name
        assert item["triggers"] == snapshot.triggers
        assert item["wallclock_time"] == snapshot.wallclock_time
        assert item["port_message_counts"] == snapshot.port_message_counts
        assert item["is_final_snapshot"] == snapshot.is_final_snapshot
        if snapshot.message is None:  # the stateless micro's implicit snapshots
            assert item["timestamp"] == "NaN"
            assert item["next_timestamp"] is None
        else:
            assert item["timestamp"] == snapshot.message.timestamp
            assert not math.isnan(item["timestamp"])
    assert {i["instance"] for i in listed if i["timestamp"] == "NaN"} == {"micro"}
    assert sum(i["timestamp"] == "NaN" for i in listed) == 6


def test_snapshots_filters(catalog_url: str) -> None:
    invoke(catalog_url, "import", str(STATELESS), str(STATELESS_RESUME))

    def listed(*args: str) -> list[dict[str, Any]]:
        result = invoke(catalog_url, "snapshots", "--json", *args)
        assert result.exit_code == 0, result.output
        items: list[dict[str, Any]] = strict_json(result.stdout)
        return items

    assert len(listed()) == 19
    resumed = listed("--run", "mm_stateless_resume")
    assert len(resumed) == 7 and {i["run"] for i in resumed} == {"mm_stateless_resume"}
    micro = listed("--run", "mm_stateless", "--instance", "micro")
    assert [Path(i["path"]).name for i in micro] == [f"micro_{n}.pack" for n in range(1, 7)]
    final = listed("--final")
    intermediate = listed("--intermediate")
    assert len(final) + len(intermediate) == 19
    assert all(i["is_final_snapshot"] for i in final)
    assert not any(i["is_final_snapshot"] for i in intermediate)
    assert {i["instance"] for i in intermediate} == {"macro"}


def test_tables_list_runs_and_snapshots(catalog_url: str) -> None:
    invoke(catalog_url, "import", str(STATELESS), str(STATELESS_RESUME))

    runs = invoke(catalog_url, "runs")
    assert runs.exit_code == 0, runs.output
    (row,) = [line.split() for line in runs.stdout.splitlines() if "mm_stateless_resume" in line]
    # id, name, model, status, started (date, time), sim. time, snapshots, workflow snapshots
    assert row[1:4] == ["mm_stateless_resume", "macro_micro", "unknown"]
    assert row[7:9] == ["7", "3"]

    table = invoke(catalog_url, "snapshots", "--run", "mm_stateless", "--instance", "micro")
    assert table.exit_code == 0, table.output
    assert "6 snapshots" in table.stdout
    assert "NaN" in table.stdout


def test_runs_json(catalog_url: str) -> None:
    invoke(catalog_url, "import", str(STATELESS_RESUME), str(STATELESS))

    result = invoke(catalog_url, "runs", "--json")

    assert result.exit_code == 0, result.output
    runs = {r["name"]: r for r in strict_json(result.stdout)}
    assert set(runs) == {"mm_stateless", "mm_stateless_resume"}
    assert set(runs["mm_stateless"]) == {
        "id", "name", "run_dir", "model", "source", "status", "started_at", "finished_at",
        "resumed_from_run", "resumed_from_workflow_snapshot", "num_snapshots",
        "num_workflow_snapshots", "first_timestamp", "last_timestamp", "size_bytes",
    }  # fmt: skip
    assert runs["mm_stateless_resume"]["resumed_from_run"] == "mm_stateless"
    assert runs["mm_stateless"]["resumed_from_run"] is None
    assert runs["mm_stateless"]["num_snapshots"] == 12
    assert runs["mm_stateless"]["num_workflow_snapshots"] == 6
    assert runs["mm_stateless"]["run_dir"] == str(STATELESS)
    assert runs["mm_stateless"]["model"] == "macro_micro"
    assert runs["mm_stateless"]["status"] == "unknown"
    # the workflow snapshot it resumed from: the one whose members its resume section names
    origin = runs["mm_stateless_resume"]["resumed_from_workflow_snapshot"]
    workflows = strict_json(invoke(catalog_url, "workflows", "--json").stdout)
    (chosen,) = [w for w in workflows if w["id"] == origin]
    assert chosen["run"] == "mm_stateless"


def test_show_by_id_reads_the_file(catalog_url: str) -> None:
    invoke(catalog_url, "import", str(STATELESS))
    micro_1 = STATELESS / "instances/micro/snapshots/micro_1.pack"
    with open_catalog(catalog_url, create=True) as catalog:
        record = catalog.snapshot_by_path(micro_1)
    assert record is not None

    result = invoke(catalog_url, "show", str(record.id))

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"catalog id          │ {record.id} " in out
    assert "mm_stateless" in out and "micro" in out
    assert "implicit snapshot" in out
    assert "simulation_time >= 0.0" in out
    assert load_pack(micro_1).sha256[:20] in out


def test_show_an_unknown_id_is_one_error_line(catalog_url: str) -> None:
    invoke(catalog_url, "import", str(STATELESS))
    assert_one_error_line(invoke(catalog_url, "show", "999"), "No snapshot with id 999")


def test_show_a_file_not_in_the_catalog(catalog_url: str) -> None:
    invoke(catalog_url, "import", str(STATELESS))

    result = invoke(catalog_url, "show", str(V011_PACK))

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "not recorded in the catalog" in out
    assert "Grid of float64, shape (4,)" in out
    assert "0.31" in out  # the message's timestamp
    assert load_pack(V011_PACK).sha256[:20] in out


def test_show_works_without_any_catalog(tmp_path: Path) -> None:
    missing = tmp_path / "none.sqlite"
    result = invoke(str(missing), "show", str(V011_PACK))
    assert result.exit_code == 0, result.output
    assert "not recorded in the catalog" in result.stdout
    assert not missing.exists()


def test_show_rejects_what_is_neither_file_nor_id(catalog_url: str) -> None:
    assert_one_error_line(invoke(catalog_url, "show", "no-such.pack"), "no-such.pack")


def test_upgrade_creates_a_fresh_catalog_then_has_nothing_to_do(tmp_path: Path) -> None:
    location = str(tmp_path / "fresh.sqlite")

    created = invoke(location, "upgrade")
    assert created.exit_code == 0, created.output
    assert created.stdout.strip() == (
        f"Created the catalog {location} at schema revision {head_revision()}."
    )

    again = invoke(location, "upgrade")
    assert again.stdout.strip() == (
        f"The catalog {location} is already at schema revision {head_revision()}."
    )
    assert invoke(location, "runs", "--json").stdout.strip() == "[]"


def test_catalog_defaults_to_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = tmp_path / "from_env.sqlite"
    monkeypatch.setenv("MUSCLE_SNAPSHOT_CATALOG", str(location))
    result = CliRunner().invoke(cli, ["import", str(STATELESS)])
    assert result.exit_code == 0, result.output
    assert location.exists()


def test_missing_run_dir_is_one_error_line(catalog_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_run"
    result = invoke(catalog_url, "import", str(STATELESS), str(missing))
    assert_one_error_line(result, str(missing), "no such directory")
    # Directories are checked before anything is imported (or even the catalog is opened).
    with open_catalog(catalog_url, create=True) as catalog:
        assert catalog.runs() == []


def test_unreachable_catalogs_are_one_error_line(tmp_path: Path) -> None:
    server = "postgresql+psycopg://someone:secret@127.0.0.1:1/campaign"
    result = invoke(server, "runs")
    assert_one_error_line(result, "Cannot use the catalog", "127.0.0.1")
    assert "secret" not in result.output

    in_missing_dir = str(tmp_path / "gone" / "catalog.sqlite")
    assert_one_error_line(invoke(in_missing_dir, "import", str(STATELESS)), str(tmp_path / "gone"))


def test_querying_a_missing_catalog_does_not_create_it(tmp_path: Path) -> None:
    location = tmp_path / "typo.sqlite"
    assert_one_error_line(invoke(str(location), "snapshots"), "There is no catalog at")
    assert not location.exists()


def test_large_imports_show_a_progress_bar_without_breaking_output(
    catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_runs, "PROGRESS_THRESHOLD", 1)
    result = invoke(catalog_url, "import", str(STATELESS))
    assert result.exit_code == 0, result.output
    assert "snapshots: 12 added" in result.stdout


def test_describe_data_summarises_without_values() -> None:
    import numpy as np

    grid = Grid(np.zeros((3, 2)), ["x", "y"])
    assert describe_data(grid) == "Grid of float64, shape (3, 2), indexes ['x', 'y']"
    assert describe_data({"u": np.ones(5, dtype=np.int32), "t": 1.5}) == (
        "dict with 2 keys {u: array of int32, shape (5,), t: float 1.5}"
    )
    assert describe_data([1, 2, 3]) == "list of 3 items"
    assert describe_data(None) == "NoneType None"


# --------------------------------------------------------------------------- resume points

MM_VECTOR5 = (RUNS / "v0.10/mm_vector5").absolute()


def test_workflows_resume_and_reindex(tmp_path: Path) -> None:
    location = str(tmp_path / "cat.sqlite")
    assert invoke(location, "import", str(MM_VECTOR5)).exit_code == 0

    listed = strict_json(invoke(location, "workflows", "--json").stdout)
    imported = sorted(MM_VECTOR5.glob("snapshots/snapshot_*.ymmsl"))
    assert len(listed) == len(imported)
    assert {w["source"] for w in listed} == {"import"}
    assert all(set(w["members"]) == {"macro", *(f"micro[{i}]" for i in range(5))} for w in listed)

    out = tmp_path / "resume.ymmsl"
    result = invoke(location, "resume", "--latest", "-o", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("ymmsl_version: v0.2\ndescription: |+\n")
    assert "\n\n\nresume:" not in text  # exactly MUSCLE3's layout
    for line in text.split("resume:\n", 1)[1].splitlines():
        path = Path(line.split(": ", 1)[1])
        assert path.is_file() and path.is_relative_to(MM_VECTOR5)

    printed = invoke(location, "resume", "--id", str(listed[0]["id"]))
    assert printed.exit_code == 0 and printed.stdout.startswith("ymmsl_version: v0.2")
    assert f"Workflow snapshot {listed[0]['id']}" in printed.stderr

    reindexed = invoke(location, "reindex")
    assert reindexed.exit_code == 0, reindexed.output
    assert "mm_vector5:" in reindexed.stdout and "modification times" in reindexed.stdout
    sources = [w["source"] for w in strict_json(invoke(location, "workflows", "--json").stdout)]
    assert sources.count("import") == len(imported) and "reindex" in sources


def test_resume_errors_are_one_line(tmp_path: Path) -> None:
    location = str(tmp_path / "cat.sqlite")
    assert invoke(location, "import", str(MM_VECTOR5)).exit_code == 0
    assert_one_error_line(invoke(location, "resume", "--before-time", "-1"), "No workflow snapshot")
    assert_one_error_line(invoke(location, "resume", "--id", "999"), "999")


def test_resume_refuses_missing_snapshot_files(tmp_path: Path) -> None:
    import shutil

    run_dir = tmp_path / "mm_vector5"
    shutil.copytree(MM_VECTOR5, run_dir)
    location = str(tmp_path / "cat.sqlite")
    assert invoke(location, "import", str(run_dir)).exit_code == 0
    newest = invoke(location, "resume")
    (run_dir / "instances/macro/snapshots/macro_6.pack").unlink()
    # --latest passes over the broken newest point and says so (tests/test_resume.py)
    latest = invoke(location, "resume")
    assert latest.exit_code == 0 and "Skipped workflow snapshot" in latest.stderr
    assert "macro_6.pack" not in latest.stdout
    # one chosen by id is refused while its files are missing
    chosen = newest.stderr.split()[2]
    assert_one_error_line(invoke(location, "resume", "--id", chosen), "not here", "macro_6.pack")
    assert invoke(location, "resume", "--id", chosen, "--allow-missing").exit_code == 0


def test_alternatives_containing_a_snapshot(tmp_path: Path) -> None:
    location = str(tmp_path / "cat.sqlite")
    assert invoke(location, "import", str(MM_VECTOR5)).exit_code == 0
    snapshots = strict_json(invoke(location, "snapshots", "--instance", "macro", "--json").stdout)
    macro_last = str(snapshots[-1]["path"])
    with open_catalog(location, create=True) as catalog:
        record = catalog.snapshot_by_path(macro_last)
        assert record is not None
    result = invoke(location, "workflows", "--containing", str(record.id), "--limit", "2", "--json")
    assert result.exit_code == 0, result.output
    found = strict_json(result.stdout)
    assert 1 <= len(found) <= 2
    assert all(w["members"]["macro"] == macro_last for w in found)
    assert all(w["member_ids"]["macro"] == record.id for w in found)
    assert [w["rank"] for w in found] == list(range(1, len(found) + 1))


def test_catalog_option_before_or_after_the_command_version_and_short_help(
    catalog_url: str,
) -> None:
    invoke(catalog_url, "import", str(STATELESS))
    before = invoke(catalog_url, "runs", "--json")
    after = CliRunner().invoke(cli, ["runs", "--json", "--catalog", catalog_url])
    assert after.exit_code == 0, after.output
    assert strict_json(after.stdout) == strict_json(before.stdout)
    version = CliRunner().invoke(cli, ["--version"])
    assert version.exit_code == 0 and version.stdout.startswith("muscle-catalog, version ")
    for args in (["-h"], ["runs", "-h"]):
        shown = CliRunner().invoke(cli, args)
        assert shown.exit_code == 0 and "--catalog PATH_OR_URL" in shown.stdout
