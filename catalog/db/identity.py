"""The identity of a workflow snapshot: its run and its members, as one indexed key.

Import, reindex, the registry and ``watch`` can each find the same resume
point (the same snapshot per instance, or the same fresh starts). It must be
recorded once, whoever finds it first, and the database enforces that with a
unique constraint on ``(run_id, members_key)``, so that even concurrent
writers cannot record it twice.

The key is the SHA-256 of one line per member, ``<instance>=<snapshot id>``
(``-`` for an instance that restarts from scratch), sorted by instance name.
Migration 0002 computes the same key for workflow snapshots recorded before
it; a test holds the two spellings together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def members_key(members: Mapping[str, int | None]) -> str:
    """The identity key of a workflow snapshot's members.

    Args:
        members: Instance -> snapshot id, None where the instance restarts.

    Returns:
        64 hexadecimal digits.
    """
    lines = "\n".join(
        f"{instance}={'-' if sid is None else sid}" for instance, sid in sorted(members.items())
    )
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()
