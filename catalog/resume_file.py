"""Writing ``snapshot_*.ymmsl`` resume files with the content MUSCLE3 writes.

A resume file is a yMMSL document with a ``resume:`` section (instance ->
``.pack`` file, for the instances that do not restart from scratch) and a
description listing the triggers and a table of the members. Appending it to
the ``muscle_manager`` command line resumes the run. The manager ignores the
description; we reproduce it exactly anyway (see ``docs/resume-files.md``)
so that users and tools reading these files see what they know.

Unlike MUSCLE3, which gives up after 100 files in one second (and with it the
whole registry), we keep counting, and create each file exclusively so that
two writers can never overwrite each other's.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import ymmsl
from ymmsl import v0_2

from catalog.errors import CatalogError
from catalog.naming import instance_sort_key

#: The trigger MUSCLE3 lists for instances that restart from scratch.
RESTART_TRIGGER = "Instance start"


class DescribedSnapshot(Protocol):
    """What a description needs of a snapshot: SnapshotMetadata and SnapshotRecord have it."""

    @property
    def triggers(self) -> Sequence[str]:
        """Why it was taken."""

    @property
    def timestamp(self) -> float:
        """Its simulation time (NaN for implicit snapshots)."""

    @property
    def wallclock_time(self) -> float:
        """When it was taken, in seconds since the manager started."""

    @property
    def is_final_snapshot(self) -> bool:
        """Whether it was taken at the end of a reuse iteration."""


@dataclass(frozen=True)
class MemberSummary:
    """What the description says about one member of a workflow snapshot.

    Attributes:
        instance: The instance.
        triggers: The snapshot's triggers.
        timestamp: Its simulation time (NaN for implicit snapshots).
        wallclock_time: Its wallclock time.
        is_final: Whether it was taken at the end of a reuse iteration.
    """

    instance: str
    triggers: Sequence[str]
    timestamp: float
    wallclock_time: float
    is_final: bool

    @staticmethod
    def of(instance: str, snapshot: DescribedSnapshot) -> MemberSummary:
        """The member for an instance resuming from a snapshot (metadata or catalog record)."""
        return MemberSummary(
            instance,
            snapshot.triggers,
            snapshot.timestamp,
            snapshot.wallclock_time,
            snapshot.is_final_snapshot,
        )

    @staticmethod
    def restart(instance: str) -> MemberSummary:
        """The member for an instance that starts from scratch, as MUSCLE3 prints it."""
        return MemberSummary(instance, [RESTART_TRIGGER], 0, 0, True)


def describe(model_name: str, members: Sequence[MemberSummary], taken: dt.datetime) -> str:
    """The description MUSCLE3 writes into a resume file, character for character.

    Args:
        model_name: The model's name.
        members: One per instance, in any order (sorted here as MUSCLE3 does).
        taken: When the workflow snapshot was found.
    """
    ordered = sorted(members, key=lambda m: instance_sort_key(m.instance))
    triggers: dict[str, list[str]] = {}
    for member in ordered:
        for trigger in member.triggers:
            triggers.setdefault(trigger, []).append(member.instance)
    width = max([len("Instance ")] + [len(m.instance) for m in ordered])
    table = [
        "Instance".ljust(width) + " t           Wallclock time  Type",
        "-" * (width + 41),
    ]
    table += [
        # MUSCLE3's f"{x:<11.6g}": NaN prints "nan", restart rows' int 0 prints "0"
        f"{m.instance.ljust(width)} {m.timestamp:<11.6g} {m.wallclock_time:<11.6g}"
        f"     {'Final' if m.is_final else 'Intermediate'}"
        for m in ordered
    ]
    trigger_lines = [f"- {t} ({', '.join(triggers[t])})" for t in sorted(triggers)]
    return (
        f"Workflow snapshot for {model_name} taken on {taken:%Y-%m-%d %H:%M:%S}.\n"
        "Snapshot triggers:\n" + "\n".join(trigger_lines) + "\n\n" + "\n".join(table) + "\n"
    )


def resume_document(resume: Mapping[str, str | Path], description: str) -> str:
    """The yMMSL text of a resume file (``ymmsl_version: v0.2``, ``description: |+``).

    The text is what ``ymmsl.save`` writes, which is what MUSCLE3 writes. For
    the usual content (plain instance names and paths, a printable
    description) it is put together directly: ymmsl's YAML emitter takes
    about 0.1 s for a model with a thousand instances, too slow for a
    registry that may write a resume file per submission. Anything unusual
    goes through ymmsl itself.
    """
    ordered = sorted(resume.items(), key=lambda item: instance_sort_key(item[0]))
    fast = _plain_document(ordered, description)
    if fast is not None:
        return fast
    configuration = v0_2.Configuration(
        resume={v0_2.Reference(instance): Path(path) for instance, path in ordered},
        description=description,
    )
    text: str = ymmsl.dump(configuration)
    return text


_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./\[\]\-]*")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}
_PRINTABLE_LINE = re.compile(r"([ -~]*[!-~])?")


def _plain_document(ordered: list[tuple[str, str | Path]], description: str) -> str | None:
    """The resume document without ymmsl's emitter, or None if anything needs quoting."""
    lines = description.split("\n")
    if not description.endswith("\n") or lines[0] == "" or lines[-2:-1] == [""]:
        return None
    if not all(_PRINTABLE_LINE.fullmatch(line) for line in lines):
        return None
    entries = []
    for instance, path in ordered:
        value = str(path)
        if not _plain(instance) or not _plain(value):
            return None
        entries.append(f"  {instance}: {value}\n")
    body = "".join(f"  {line}\n" if line else "\n" for line in lines[:-1])
    resume = "resume:\n" + "".join(entries) if entries else "resume: {}\n"
    return f"ymmsl_version: v0.2\ndescription: |+\n{body}\n{resume}"


def read_plain_resume_document(text: str) -> tuple[str, dict[str, str]] | None:
    """The description and resume section of a resume file in the shape MUSCLE3 writes, or None.

    The inverse of the fast path of :func:`resume_document`: a document that is
    exactly ``ymmsl_version: v0.2`` (or ``v0.1``, as MUSCLE3 0.7 writes), a
    ``description: |+`` (or ``|``) block of printable
    lines (its first line unindented within the block) and a ``resume:``
    section of plain ``instance: path`` lines is read line by line. Why: ymmsl's
    YAML loader takes about 0.2 s for a resume file of a thousand instances,
    and import and watch read one per workflow snapshot. Anything else
    (quoting, comments, other keys, another layout) gives None, and the
    caller reads the text with ymmsl, which gives the same result for what
    this accepts (a test compares both on every resume file in the test data).

    Args:
        text: The file's text.

    Returns:
        ``(description, resume)``: the description ending in exactly one
        newline, as :func:`catalog.run_dir.parse_ymmsl` gives it, and the
        resume section as written (instance -> path text), or None.
    """
    lines = text.split("\n")
    if len(lines) < 4 or lines[0] not in _VERSION_LINES or lines[1] not in _DESCRIPTION_LINES:
        return None
    index, body = 2, []
    while index < len(lines) and (lines[index] == "" or lines[index].startswith("  ")):
        line = lines[index][2:]
        if not _PRINTABLE_LINE.fullmatch(line):
            return None
        body.append(line)
        index += 1
    # The block's first line sets its indentation: it must be at exactly two spaces.
    if not body or not body[0] or body[0].startswith(" ") or index == len(lines):
        return None
    resume: dict[str, str] = {}
    if lines[index] == "resume:":
        index += 1
        while index < len(lines) and lines[index].startswith("  "):
            instance, separator, path = lines[index][2:].partition(": ")
            if not separator or instance in resume or not _plain(instance) or not _plain(path):
                return None
            resume[instance] = path
            index += 1
    elif lines[index] == "resume: {}":
        index += 1
    else:
        return None
    if any(lines[index:]):
        return None
    return "\n".join(body).rstrip("\n") + "\n", resume


#: The first two lines of resume files MUSCLE3 0.8 and later, and 0.7, write.
_VERSION_LINES = ("ymmsl_version: v0.2", "ymmsl_version: v0.1")
_DESCRIPTION_LINES = ("description: |+", "description: |")


def _plain(scalar: str) -> bool:
    """Whether YAML reads this unquoted scalar as exactly this string."""
    return _PLAIN.fullmatch(scalar) is not None and scalar.lower() not in _YAML_WORDS


def write_resume_file(folder: Path, text: str, taken: dt.datetime) -> Path:
    """Write a resume file under MUSCLE3's name for ``taken``, never overwriting.

    Names are ``snapshot_YYYYmmdd_HHMMSS.ymmsl``, then ``..._1.ymmsl``,
    ``..._2.ymmsl`` and so on, without MUSCLE3's limit of 100 per second.

    Returns:
        The file written.

    Raises:
        CatalogError: The folder cannot be created or written.
    """
    stamp = f"{taken:%Y%m%d_%H%M%S}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CatalogError(f"Cannot create the snapshot folder {folder}: {exc}") from exc
    counter = 0
    while True:
        name = f"snapshot_{stamp}.ymmsl" if counter == 0 else f"snapshot_{stamp}_{counter}.ymmsl"
        path = folder / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            counter += 1
            continue
        except OSError as exc:
            raise CatalogError(f"Cannot write the resume file {path}: {exc}") from exc
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path
