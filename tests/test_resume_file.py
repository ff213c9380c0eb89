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
