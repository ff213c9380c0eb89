"""Recording that survives the database: transient errors wait, rejected items stand alone.

Two kinds of failure reach a writer that records batches:

* *transient* ones, where the same statement succeeds later: SQLite's
  "database is locked" after another writer held the lock past the busy
  timeout, a PostgreSQL connection that was killed or whose server
  restarted, a lock timeout. The batch is tried again, after a pause that
  grows (:class:`Backoff`), because nothing is wrong with it;
* *permanent* ones, where the database refuses one item of the batch (a
  value out of range, a NUL byte in PostgreSQL text). The transaction rolls
  back the whole batch, so :func:`record_isolating` splits it in halves until
  the refused item is alone, records everything else, and hands the refused
  item to the caller to report.

Both are told apart by :func:`is_transient` from the exception alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

#: First pause after a transient failure, seconds.
FIRST_DELAY_S = 0.05
#: Longest pause between attempts, seconds.
MAX_DELAY_S = 5.0


def is_transient(exc: BaseException) -> bool:
    """Tell whether an error may go away by itself, so that trying again makes sense.

    Operational errors (locks, lost or refused connections, a server shutting
    down), connections SQLAlchemy marked invalid, and pool timeouts are;
    data errors, integrity errors and programming errors are not.
    """
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(
        exc,
        (
            sa_exc.OperationalError,
            sa_exc.InterfaceError,
            sa_exc.DisconnectionError,
            sa_exc.TimeoutError,
            sqlite3.OperationalError,
        ),
    ):
        return True
    try:
        import psycopg
    except ImportError:  # PostgreSQL support is optional
        return False
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


class Backoff:
    """Capped exponential pauses between attempts: 0.05 s, 0.1 s, ... up to 5 s."""

    def __init__(self, first: float = FIRST_DELAY_S, cap: float = MAX_DELAY_S) -> None:
        """Start at ``first`` seconds, doubling up to ``cap``."""
        self._first = first
        self._cap = cap
        self._next = first

    def next_delay(self) -> float:
        """The pause before the next attempt; each call doubles the following one."""
        delay = self._next
        self._next = min(self._cap, self._next * 2)
        return delay

    def reset(self) -> None:
        """After a success: the next failure starts from the first pause again."""
        self._next = self._first


def record_isolating(
    items: Sequence[T],
    record: Callable[[Sequence[T]], object],
    refused: Callable[[T, Exception], None],
) -> None:
    """Record ``items`` with ``record``; items it refuses are split off and reported.

    ``record`` must be all-or-nothing (one transaction) and safe to repeat
    for items it already recorded, since after a refusal both halves are
    recorded again separately.

    Args:
        items: What to record, in order.
        record: Records a sequence of items in one transaction.
        refused: Called, in order, for each item that cannot be recorded alone.

    Raises:
        Exception: A transient error (see :func:`is_transient`): nothing is
            known to be wrong with the items; the caller tries again later.
    """
    if not items:
        return
    try:
        record(items)
    except Exception as exc:
        if is_transient(exc):
            raise
        if len(items) == 1:
            refused(items[0], exc)
            return
        middle = len(items) // 2
        record_isolating(items[:middle], record, refused)
        record_isolating(items[middle:], record, refused)
