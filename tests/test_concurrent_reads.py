"""Reads see one consistent state while many processes write, on SQLite and PostgreSQL.

Eight writer processes record snapshots into one run while four reader
processes query records (snapshots with their triggers, ports and settings,
workflow snapshots with their members) as fast as they can. Every snapshot
is written so that its child rows can be checked against its own row: its
triggers, port counts and settings all encode the writer and the step. A
reader that saw a row from one moment and its children from another would
find a mismatch (or, as before reads were one transaction on PostgreSQL,
fail with a ``KeyError``). A ninth process keeps recording runs and
forgetting them again, so that rows also disappear between a reader's
statements: a reader whose statements saw different states would build a
record of a forgotten snapshot without its triggers, ports or settings.
"""

from __future__ import annotations

import multiprocessing
import traceback
from pathlib import Path
from typing import Any

from ymmsl import Settings

from catalog import Message, NewSnapshot, NewWorkflowSnapshot, Snapshot, open_catalog

WRITERS = 8
READERS = 4
SAVES = 20
#: The writer number of the churning process's snapshots.
CHURN = 99


def _snapshot(writer: int, step: int) -> Snapshot:
    return Snapshot(
        triggers=[f"writer {writer}", f"step {step}"],
        wallclock_time=float(step),
        port_message_counts={f"out{writer}": [step] * (1 + writer % 3), "in": [writer, step]},
        is_final_snapshot=step % 5 == 0,
        message=Message(float(step), None, None),
        settings_overlay=Settings({"writer": writer, "step": step}),
    )


def _write(url: str, run_dir: str, writer: int) -> None:
    with open_catalog(url) as cat:
        run = cat.ensure_run(Path(run_dir))
        for step in range(SAVES):
            path = Path(run_dir) / f"w{writer}" / f"s{step}.pack"
            record = cat.record_snapshot(
                run.id,
                NewSnapshot(
                    instance=f"micro[{writer}]",
                    path=path,
                    snapshot_filename=str(path),
                    snapshot=_snapshot(writer, step),
                    size_bytes=step,
                    sha256=None,
                    sequence=step + 1,
                ),
            )
            if step % 5 == 4:
                cat.record_workflow_snapshots(
                    run.id,
                    [NewWorkflowSnapshot(members={f"micro[{writer}]": record.id}, description="")],
                )


def _churn(url: str, run_dir: str, stop: Any) -> None:
    """Record a short run and forget it again, over and over, until told to stop."""
    from catalog.maintenance.forget import forget

    with open_catalog(url) as cat:
        round_ = 0
        while not stop.is_set():
            round_ += 1
            run = cat.ensure_run(Path(run_dir) / f"churn{round_}")
            snapshots = [
                NewSnapshot(
                    instance=f"micro[{CHURN}]",
                    path=Path(run_dir) / f"churn{round_}" / f"s{step}.pack",
                    snapshot_filename=f"s{step}.pack",
                    snapshot=_snapshot(CHURN, step),
                    size_bytes=step,
                    sha256=None,
                )
                for step in range(3)
            ]
            cat.record_snapshots(run.id, snapshots)
            forget(cat, run.id)


def _check(record: Any) -> str | None:
    writer = int(record.instance[len("micro[") : -1])
    step = int(record.timestamp)
    expected = _snapshot(writer, step)
    if list(record.triggers) != expected.triggers:
        return f"triggers {record.triggers} of snapshot {record.id}"
    if record.port_message_counts != expected.port_message_counts:
        return f"ports {record.port_message_counts} of snapshot {record.id}"
    if record.settings_overlay != {"writer": writer, "step": step}:
        return f"settings {record.settings_overlay} of snapshot {record.id}"
    return None


def _read(url: str, stop: Any, results: Any) -> None:
    reads = errors = 0
    problems: list[str] = []
    with open_catalog(url) as cat:
        while not stop.is_set() or reads + errors < 3:
            try:
                records = cat.snapshots()
                for record in records:
                    problem = _check(record)
                    if problem:
                        problems.append(problem)
                for workflow in cat.workflow_snapshots():
                    # Members and their files are read in the workflow's transaction.
                    (member,) = workflow.member_ids.values()
                    (filename,) = workflow.members.values()
                    if member is None or filename is None:
                        problems.append(f"workflow snapshot {workflow.id} lost its member")
                reads += 1
            except Exception:
                errors += 1
                problems.append(traceback.format_exc(limit=3))
                if errors > 20:
                    break
    results.put((reads, errors, problems[:5]))


def test_readers_see_consistent_records_while_eight_processes_write(
    catalog_url: str, tmp_path: Path
) -> None:
    with open_catalog(catalog_url, create=True) as cat:
        cat.ensure_run(tmp_path / "run")
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    results = context.Queue()
    readers = [
        context.Process(target=_read, args=(catalog_url, stop, results)) for _ in range(READERS)
    ]
    writers = [
        context.Process(target=_write, args=(catalog_url, str(tmp_path / "run"), w))
        for w in range(WRITERS)
    ]
    churn = context.Process(target=_churn, args=(catalog_url, str(tmp_path), stop))
    for process in [churn, *readers, *writers]:
        process.daemon = True  # never outlive a failed test
        process.start()
    try:
        for process in writers:
            process.join(timeout=300)
        assert [p.exitcode for p in writers] == [0] * WRITERS, "a writer failed"
    finally:
        stop.set()
    outcomes = [results.get(timeout=300) for _ in readers]
    for process in [churn, *readers]:
        process.join(timeout=60)
    assert churn.exitcode == 0, "the churning process failed"

    assert sum(reads for reads, _errors, _problems in outcomes) >= READERS * 3
    assert [problems for _reads, _errors, problems in outcomes] == [[]] * READERS
    assert [errors for _reads, errors, _problems in outcomes] == [0] * READERS
    with open_catalog(catalog_url) as cat:
        records = cat.snapshots(run="run")
        assert len(records) == WRITERS * SAVES
        assert len({r.path for r in records}) == WRITERS * SAVES
        assert sorted(r.submission_order for r in records) == list(range(1, WRITERS * SAVES + 1))
        assert all(_check(r) is None for r in records)
        workflows = cat.workflow_snapshots("run")
        assert len(workflows) == WRITERS * SAVES // 5
        assert len({tuple(w.member_ids.items()) for w in workflows}) == len(workflows)
