"""Resume files: the same text MUSCLE3 writes, names that never collide."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pytest
import ymmsl

from catalog.naming import instance_sort_key
from catalog.resume_file import (
    MemberSummary,
    _plain_document,
    describe,
    read_plain_resume_document,
    resume_document,
    write_resume_file,
)
from tests.conftest import RUNS

MUSCLE3_FILES = sorted(RUNS.glob("v0.1*/*/snapshots/snapshot_*.ymmsl"))


@pytest.mark.parametrize("path", MUSCLE3_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_document_is_byte_identical_to_muscle3s(path: Path) -> None:
    text = path.read_text()
    loaded: Any = ymmsl.load(text)
    description = text.split("description: |+\n", 1)[1].split("\nresume:", 1)[0]
    description = "".join(line[2:] + "\n" for line in description.splitlines())
    resume = {str(k): str(v) for k, v in loaded.resume.items()}
    assert resume_document(resume, description.rstrip("\n") + "\n") == text
    ordered: list[tuple[str, str | Path]] = sorted(
        resume.items(), key=lambda item: instance_sort_key(item[0])
    )
    assert _plain_document(ordered, description.rstrip("\n") + "\n") == text  # the fast path


def test_description_matches_muscle3_format() -> None:
    members = [
        MemberSummary("micro[10]", ["simulation_time >= 0.2"], 0.25, 3.5, False),
        MemberSummary("micro[2]", ["simulation_time >= 0.2", "at_end"], math.nan, 1.0, True),
        MemberSummary.restart("macro"),
    ]
    text = describe("mm", members, dt.datetime(2001, 2, 3, 4, 5, 6))
    assert text == (
        "Workflow snapshot for mm taken on 2001-02-03 04:05:06.\n"
        "Snapshot triggers:\n"
        "- Instance start (macro)\n"
        "- at_end (micro[2])\n"
        "- simulation_time >= 0.2 (micro[2], micro[10])\n"
        "\n"
        "Instance  t           Wallclock time  Type\n"
        "--------------------------------------------------\n"
        "macro     0           0               Final\n"
        "micro[2]  nan         1               Final\n"
        "micro[10] 0.25        3.5             Intermediate\n"
    )


def test_names_never_collide(tmp_path: Path) -> None:
    when = dt.datetime(2000, 1, 1, 12, 0, 0)
    paths = [write_resume_file(tmp_path, f"n{i}\n", when) for i in range(103)]
    assert paths[0].name == "snapshot_20000101_120000.ymmsl"
    assert paths[1].name == "snapshot_20000101_120000_1.ymmsl"
    assert paths[102].name == "snapshot_20000101_120000_102.ymmsl"
    assert [p.read_text() for p in paths] == [f"n{i}\n" for i in range(103)]


@pytest.mark.parametrize(
    ("resume", "description"),
    [
        ({}, "Workflow snapshot for x taken on 2000-01-01 00:00:00.\nSnapshot triggers:\n\n"),
        ({"a": "/p/a_1.pack", "b[10]": "rel/b-10_1.pack", "b[2]": "/p/b-2_1.pack"}, "one\n\ntwo\n"),
        ({"a": "/with space/a.pack"}, "x\n"),
        ({"a": "/p/a.pack"}, "trailing space \n"),
        ({"true": "/p/a.pack"}, "x\n"),
        ({"a": "[weird]: path"}, "tab\there\n"),
        ({"a": "/p/a.pack"}, "ümlaut\n"),
    ],
)
def test_fast_document_equals_ymmsls_own(resume: dict[str, str], description: str) -> None:
    from ymmsl import v0_2

    ordered = sorted(resume.items(), key=lambda item: instance_sort_key(item[0]))
    reference = ymmsl.dump(
        v0_2.Configuration(
            resume={v0_2.Reference(k): Path(v) for k, v in ordered}, description=description
        )
    )
    assert resume_document(resume, description) == reference


def test_every_muscle3_resume_file_is_read_without_ymmsl_as_ymmsl_reads_it() -> None:
    from catalog.run_dir import parse_ymmsl
    from catalog.run_import import parse_resume_file

    for path in sorted(RUNS.glob("*/*/snapshots/snapshot_*.ymmsl")):
        text = path.read_text()
        assert read_plain_resume_document(text) is not None, path
        assert parse_resume_file(path) == parse_ymmsl(text), path


_RESUME_HEAD = "ymmsl_version: v0.2\ndescription: |+\n"


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        (
            _RESUME_HEAD + "  one\n\n  two\n\nresume:\n  a: /p/a_1.pack\n  b[10]: r/b-10_1.pack\n",
            True,
        ),
        (_RESUME_HEAD + "  nobody resumes\n\nresume: {}\n", True),
        (_RESUME_HEAD + "    indented first\n  x\n\nresume:\n  a: /p/a.pack\n", False),
        (_RESUME_HEAD + "  x\n\nresume:\n  a: '/p/a.pack'\n", False),
        (_RESUME_HEAD + "  x\n\nresume:\n  a: /p/a.pack  # moved\n", False),
        (_RESUME_HEAD + "  x\n\nresume:\n  a: /p/a.pack\nsettings:\n  a.x: 1\n", False),
        (_RESUME_HEAD + "  x\n\nresume:\n  a.b: /p/a.pack\n", True),  # invalid instance
        (_RESUME_HEAD + "  x\n\nresume:\n  a: /p/a.pack\n  a: /p/b.pack\n", False),
        (_RESUME_HEAD + "  x \n\nresume:\n  a: /p/a.pack\n", False),
        (_RESUME_HEAD + "  x\n\nresume:\n  a: null\n", False),
        (_RESUME_HEAD + "  x\n\nresume:\n  a: /p//a.pack/\n", True),
    ],
)
def test_reading_without_ymmsl_agrees_with_ymmsl_or_leaves_it_to_ymmsl(
    tmp_path: Path, text: str, plain: bool
) -> None:
    """Whatever shape a resume file has, parse_resume_file gives what ymmsl gives, or its error."""
    from catalog.run_dir import parse_ymmsl
    from catalog.run_import import parse_resume_file

    assert (read_plain_resume_document(text) is not None) is plain
    path = tmp_path / "snapshot_20000101_000000.ymmsl"
    path.write_text(text)
    try:
        expected = parse_ymmsl(text)
    except ValueError as exc:
        with pytest.raises(ValueError) as raised:
            parse_resume_file(path)
        assert str(raised.value) == " ".join(str(exc).split())
    else:
        assert parse_resume_file(path) == expected


@pytest.mark.parametrize("instances", [1, 7, 1000])
def test_files_we_write_are_read_back_without_ymmsl(tmp_path: Path, instances: int) -> None:
    from catalog.run_dir import parse_ymmsl
    from catalog.run_import import parse_resume_file

    resume = {f"m[{i}]": f"/r/instances/m[{i}]/snapshots/m-{i}_3.pack" for i in range(instances)}
    members = [MemberSummary.of(name, _Described()) for name in resume]
    text = resume_document(resume, describe("model", members, dt.datetime(2000, 1, 2, 3, 4, 5)))
    path = tmp_path / "snapshot_20000102_030405.ymmsl"
    path.write_text(text)
    assert read_plain_resume_document(text) is not None
    assert parse_resume_file(path) == parse_ymmsl(text)


class _Described:
    triggers = ("simulation_time >= 3",)
    timestamp = 3.0
    wallclock_time = 1.25
    is_final_snapshot = False


def test_muscle3_0_7s_resume_files_are_read_without_ymmsl_too() -> None:
    text = "ymmsl_version: v0.1\ndescription: |\n  x\n\n  y\nresume:\n  a: /p/a.pack\n"
    assert read_plain_resume_document(text) == ("x\n\ny\n", {"a": "/p/a.pack"})
