"""Where msgpack values are in a buffer, found from their headers without decoding them.

``msgpack.unpackb`` turns every binary value into a new ``bytes`` object. A
``.pack`` file nests its payload two binaries deep (the message inside the
snapshot map, each grid's data inside an ext type), so decoding a large grid
that way holds the file's bytes three or four times over. Reading the headers
ourselves gives the offsets of each value inside the one buffer the file was
read into: the decoder then decodes small values on their own, copies a
grid's data straight from the file's buffer into its array, and can skip the
message data altogether when only the metadata is wanted.

Offsets are plain ints into a buffer (bytes, bytearray, memoryview or mmap);
nothing here copies more than a few header bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: What a header says about the value it starts.
MAP: Final = "map"
ARRAY: Final = "array"
BIN: Final = "bin"
EXT: Final = "ext"
OTHER: Final = "other"  # nil, booleans, numbers and strings: no nested values


class TruncatedError(Exception):
    """The buffer ends inside a value."""


class InvalidByteError(Exception):
    """A byte that starts no msgpack value (0xc1)."""


@dataclass(frozen=True)
class Head:
    """One value's header.

    Attributes:
        kind: :data:`MAP`, :data:`ARRAY`, :data:`BIN`, :data:`EXT` or :data:`OTHER`.
        count: Entries of a map or array; bytes of the payload of anything else.
        body: Offset of the first entry, or of the payload.
        ext_code: The ext type's code (ext types only, else -1).
    """

    kind: str
    count: int
    body: int
    ext_code: int = -1

    @property
    def payload_end(self) -> int:
        """Where the payload of a bin, ext or scalar ends (not meaningful for containers)."""
        return self.body + self.count


# first byte -> (kind, bytes of the length field, fixed payload size)
_SIZED: dict[int, tuple[str, int, int]] = {
    0xC0: (OTHER, 0, 0),
    0xC2: (OTHER, 0, 0),
    0xC3: (OTHER, 0, 0),
    0xC4: (BIN, 1, 0),
    0xC5: (BIN, 2, 0),
    0xC6: (BIN, 4, 0),
    0xC7: (EXT, 1, 0),
    0xC8: (EXT, 2, 0),
    0xC9: (EXT, 4, 0),
    0xCA: (OTHER, 0, 4),
    0xCB: (OTHER, 0, 8),
    0xCC: (OTHER, 0, 1),
    0xCD: (OTHER, 0, 2),
    0xCE: (OTHER, 0, 4),
    0xCF: (OTHER, 0, 8),
    0xD0: (OTHER, 0, 1),
    0xD1: (OTHER, 0, 2),
    0xD2: (OTHER, 0, 4),
    0xD3: (OTHER, 0, 8),
    0xD9: (OTHER, 1, 0),
    0xDA: (OTHER, 2, 0),
    0xDB: (OTHER, 4, 0),
    0xDC: (ARRAY, 2, 0),
    0xDD: (ARRAY, 4, 0),
    0xDE: (MAP, 2, 0),
    0xDF: (MAP, 4, 0),
}
_FIXEXT_SIZES = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}


def _uint(buffer: bytes | bytearray | memoryview, start: int, size: int, end: int) -> int:
    if start + size > end:
        raise TruncatedError
    return int.from_bytes(buffer[start : start + size], "big")


def head(buffer: bytes | bytearray | memoryview, pos: int, end: int | None = None) -> Head:
    """Read the header of the value starting at ``pos``.

    Args:
        buffer: The msgpack bytes.
        pos: Where the value starts.
        end: Where the buffer's meaningful part ends (default: its length).

    Raises:
        TruncatedError: The header, or a bin/ext/scalar payload, runs past ``end``.
        InvalidByteError: ``pos`` holds the one byte msgpack never uses.
    """
    limit = len(buffer) if end is None else end
    if pos >= limit:
        raise TruncatedError
    byte = buffer[pos]
    if byte <= 0x7F or byte >= 0xE0:
        found = Head(OTHER, 0, pos + 1)
    elif byte <= 0x8F:
        found = Head(MAP, byte & 0x0F, pos + 1)
    elif byte <= 0x9F:
        found = Head(ARRAY, byte & 0x0F, pos + 1)
    elif byte <= 0xBF:
        found = Head(OTHER, byte & 0x1F, pos + 1)
    elif byte in _FIXEXT_SIZES:
        found = Head(EXT, _FIXEXT_SIZES[byte], pos + 2, _uint(buffer, pos + 1, 1, limit))
    elif byte in _SIZED:
        kind, length_size, fixed = _SIZED[byte]
        count = _uint(buffer, pos + 1, length_size, limit) if length_size else fixed
        body = pos + 1 + length_size
        if kind == EXT:
            found = Head(EXT, count, body + 1, _uint(buffer, body, 1, limit))
        else:
            found = Head(kind, count, body)
    else:
        raise InvalidByteError(f"invalid msgpack byte 0x{byte:02x} at offset {pos}")
    if found.kind not in (MAP, ARRAY) and found.payload_end > limit:
        raise TruncatedError
    return found


def end_of(buffer: bytes | bytearray | memoryview, pos: int, end: int | None = None) -> int:
    """Where the value starting at ``pos`` ends, nested values included.

    Iterative, so that deep nesting cannot exhaust the stack; the cost is one
    step per nested value, none per payload byte.

    Raises:
        TruncatedError: The value runs past ``end``.
        InvalidByteError: It holds a byte that starts no msgpack value.
    """
    remaining = 1
    while remaining:
        found = head(buffer, pos, end)
        remaining -= 1
        if found.kind == MAP:
            remaining += 2 * found.count
            pos = found.body
        elif found.kind == ARRAY:
            remaining += found.count
            pos = found.body
        else:
            pos = found.payload_end
    return pos


def entries(
    buffer: bytes | bytearray | memoryview, found: Head, end: int | None = None
) -> list[tuple[int, int, int]]:
    """The spans of a map's entries: (key start, value start, value end) each.

    Args:
        buffer: The msgpack bytes.
        found: The map's header.
        end: Where the buffer's meaningful part ends.

    Raises:
        TruncatedError: An entry runs past ``end``.
        InvalidByteError: An entry holds a byte that starts no msgpack value.
    """
    spans = []
    pos = found.body
    for _ in range(found.count):
        value = end_of(buffer, pos, end)
        value_end = end_of(buffer, value, end)
        spans.append((pos, value, value_end))
        pos = value_end
    return spans


def items(buffer: bytes | bytearray | memoryview, found: Head, end: int | None = None) -> list[int]:
    """The start offsets of an array's items, followed by the offset where the array ends."""
    starts = [found.body]
    for _ in range(found.count):
        starts.append(end_of(buffer, starts[-1], end))
    return starts
