"""Instance names and snapshot file names, validated before they touch the file system.

MUSCLE3 names a snapshot file ``{safe_id}_{n}.pack`` where ``safe_id`` is the
instance name with ``[i]`` turned into ``-i`` (``micro[3]`` -> ``micro-3``).
An instance name comes from the manager or from a user's command line, so it
is checked against MUSCLE3's reference grammar (dotted identifiers with
integer indices) first: a name such as ``../../etc/passwd`` or ``a/b`` is
refused with an :class:`InvalidInstanceError` and can never become a path.
"""

from __future__ import annotations

import functools
import re

from catalog.errors import InvalidInstanceError

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_INSTANCE_RE = re.compile(rf"{_IDENTIFIER}(?:\.{_IDENTIFIER}|\[[0-9]+\])*")
_PART_RE = re.compile(rf"({_IDENTIFIER})|\[([0-9]+)\]")
_PACK_NAME_RE = re.compile(r"(?P<safe_id>[A-Za-z_][A-Za-z0-9_.\-]*)_(?P<num>[0-9]+)\.pack")

#: The file in a run directory where MUSCLE3's manager writes the run's configuration.
CONFIGURATION_FILE = "configuration.ymmsl"

#: Longest instance name we accept; keeps file names under common 255-byte limits.
MAX_INSTANCE_LENGTH = 200


def validate_instance(name: object) -> str:
    """Check that ``name`` is a MUSCLE3 instance reference and return it as a string.

    Args:
        name: The instance name (a str or a ``ymmsl.Reference``).

    Returns:
        The name as a string.

    Raises:
        InvalidInstanceError: It is not of the form ``macro``, ``micro[3]``,
            ``a.b[1][2]``, or is too long.
    """
    text = str(name)
    if len(text) > MAX_INSTANCE_LENGTH or not _INSTANCE_RE.fullmatch(text):
        raise InvalidInstanceError(
            f"{text!r} is not a valid MUSCLE3 instance name: expected identifiers "
            "(letters, digits, underscores) separated by dots, with integer indices "
            "such as micro[3]. Check the instance name you passed."
        )
    return text


def safe_id(instance: object) -> str:
    """The file-name form of an instance name, as MUSCLE3 makes it (``micro[3]`` -> ``micro-3``).

    Raises:
        InvalidInstanceError: The name is not a valid instance name.
    """
    return validate_instance(instance).replace("[", "-").replace("]", "")


def pack_file_name(instance: object, number: int) -> str:
    """The name MUSCLE3 gives the ``number``-th snapshot file of an instance."""
    return f"{safe_id(instance)}_{number}.pack"


def parse_pack_name(file_name: str) -> tuple[str, int] | None:
    """Split a MUSCLE3 snapshot file name into (safe_id, number), or None if it is not one."""
    match = _PACK_NAME_RE.fullmatch(file_name)
    if match is None:
        return None
    return match["safe_id"], int(match["num"])


@functools.lru_cache(maxsize=65536)
def instance_sort_key(instance: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key giving MUSCLE3's Reference order: identifiers alphabetically, indices numerically.

    ``micro[2]`` sorts before ``micro[10]``, as in MUSCLE3's resume files.
    """
    key: list[tuple[int, int | str]] = []
    for identifier, index in _PART_RE.findall(instance):
        key.append((1, int(index)) if index else (0, identifier))
    return tuple(key)


#: A vector element's name: a base without brackets, then one or more ``[n]``.
_ELEMENT_RE = re.compile(r"(?P<base>[^\[\]]+)(?P<index>(?:\[[0-9]+\])+)")


def vector_element(instance: str) -> tuple[str, tuple[int, ...]] | None:
    """The vector and index of an element's name (``micro[3]`` -> ``("micro", (3,))``).

    Returns:
        The base name and the indices, or None for a name that is not an
        element of a vector instance (no trailing ``[n]``).
    """
    match = _ELEMENT_RE.fullmatch(instance)
    if match is None:
        return None
    return match["base"], tuple(int(i) for i in re.findall(r"[0-9]+", match["index"]))
