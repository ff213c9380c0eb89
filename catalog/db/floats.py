"""Storing floats that may be NaN or infinite so they come back exactly.

SQLite turns a bound NaN into NULL and PostgreSQL keeps it, so neither a plain
column nor a backend-specific trick gives the same answers on both. We store
NaN as NULL plus a true ``*_nan`` flag on every backend; infinities are stored
as they are (both backends keep them).
"""

from __future__ import annotations

import math


def split_float(value: float | None) -> tuple[float | None, bool]:
    """Split a float into the (column value, NaN flag) pair we store.

    Args:
        value: The float to store, or None for "no value".

    Returns:
        ``(None, True)`` for NaN, ``(None, False)`` for None, else ``(value, False)``.
    """
    if value is None:
        return None, False
    value = float(value)
    if math.isnan(value):
        return None, True
    return value, False


def join_float(value: float | None, is_nan: bool) -> float | None:
    """Rebuild the float that :func:`split_float` stored.

    Args:
        value: The column value.
        is_nan: The NaN flag column.

    Returns:
        NaN if the flag is set, else the value (None stays None).
    """
    if is_nan:
        return math.nan
    return None if value is None else float(value)
