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

from typing import Final, NamedTuple

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


class Head(NamedTuple):
    """One value's header.

    Attributes:
        kind: :data:`MAP`, :data:`ARRAY`, :data:`BIN`, :data:`EXT` or :data:`OTHER`.
        length: Entries of a map or array; bytes of the payload of anything else.
        body: Offset of the first entry, or of the payload.
        ext_code: The ext type's code (ext types only, else -1).
    """

    kind: str
    length: int
    body: int
    ext_code: int = -1

    @property
    def payload_end(self) -> int:
        """Where the payload of a bin, ext or scalar ends (not meaningful for containers)."""
        return self.body + self.length


# How to step over a value, by its first byte: (action, a, b). The table is
# what keeps end_of fast: one lookup per value, no objects made.
_FIXED = 0  # the whole value is a bytes long
_NESTED = 1  # a one-byte header, then a nested values (a fixmap's 2n, a fixarray's n)
_SIZED = 2  # a length of a bytes, b more header bytes (an ext's type), then the payload
_BIG_MAP = 3  # a count of a bytes, then 2 * count nested values
_BIG_ARRAY = 4  # a count of a bytes, then count nested values
_INVALID = 5

_SPECIAL_STEPS = {
    0xC0: (_FIXED, 1, 0),
    0xC2: (_FIXED, 1, 0),
    0xC3: (_FIXED, 1, 0),
    0xC4: (_SIZED, 1, 0),
    0xC5: (_SIZED, 2, 0),
    0xC6: (_SIZED, 4, 0),
    0xC7: (_SIZED, 1, 1),
    0xC8: (_SIZED, 2, 1),
    0xC9: (_SIZED, 4, 1),
    0xCA: (_FIXED, 5, 0),
    0xCB: (_FIXED, 9, 0),
    0xCC: (_FIXED, 2, 0),
    0xCD: (_FIXED, 3, 0),
    0xCE: (_FIXED, 5, 0),
    0xCF: (_FIXED, 9, 0),
    0xD0: (_FIXED, 2, 0),
    0xD1: (_FIXED, 3, 0),
    0xD2: (_FIXED, 5, 0),
    0xD3: (_FIXED, 9, 0),
    0xD4: (_FIXED, 3, 0),
    0xD5: (_FIXED, 4, 0),
    0xD6: (_FIXED, 6, 0),
    0xD7: (_FIXED, 10, 0),
    0xD8: (_FIXED, 18, 0),
    0xD9: (_SIZED, 1, 0),
    0xDA: (_SIZED, 2, 0),
    0xDB: (_SIZED, 4, 0),
    0xDC: (_BIG_ARRAY, 2, 0),
    0xDD: (_BIG_ARRAY, 4, 0),
    0xDE: (_BIG_MAP, 2, 0),
    0xDF: (_BIG_MAP, 4, 0),
}


def _step(byte: int) -> tuple[int, int, int]:
    if byte <= 0x7F or byte >= 0xE0:
        return _FIXED, 1, 0
    if byte <= 0x8F:
        return _NESTED, 2 * (byte & 0x0F), 0
    if byte <= 0x9F:
        return _NESTED, byte & 0x0F, 0
    if byte <= 0xBF:
        return _FIXED, 1 + (byte & 0x1F), 0
    return _SPECIAL_STEPS.get(byte, (_INVALID, 0, 0))


_STEPS = [_step(byte) for byte in range(256)]
_KIND_OF_SIZED = {0xC4: BIN, 0xC5: BIN, 0xC6: BIN, 0xC7: EXT, 0xC8: EXT, 0xC9: EXT}
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
    action, a, b = _STEPS[byte]
    if action == _INVALID:
        raise InvalidByteError(f"invalid msgpack byte 0x{byte:02x} at offset {pos}")
    if byte in _FIXEXT_SIZES:
        found = Head(EXT, _FIXEXT_SIZES[byte], pos + 2, _uint(buffer, pos + 1, 1, limit))
    elif action == _FIXED:
        found = Head(OTHER, a - 1, pos + 1)
    elif action == _NESTED:
        found = Head(MAP, a // 2, pos + 1) if byte <= 0x8F else Head(ARRAY, a, pos + 1)
    elif action == _SIZED:
        count = _uint(buffer, pos + 1, a, limit)
        code = _uint(buffer, pos + 1 + a, 1, limit) if b else -1
        found = Head(_KIND_OF_SIZED.get(byte, OTHER), count, pos + 1 + a + b, code)
    else:
        kind = MAP if action == _BIG_MAP else ARRAY
        found = Head(kind, _uint(buffer, pos + 1, a, limit), pos + 1 + a)
    if found.kind not in (MAP, ARRAY) and found.payload_end > limit:
        raise TruncatedError
    return found


def end_of(buffer: bytes | bytearray | memoryview, pos: int, end: int | None = None) -> int:
    """Where the value starting at ``pos`` ends, nested values included.

    Iterative, so that deep nesting cannot exhaust the stack; the cost is one
    table lookup per nested value, none per payload byte.

    Raises:
        TruncatedError: The value runs past ``end``.
        InvalidByteError: It holds a byte that starts no msgpack value.
    """
    limit = len(buffer) if end is None else end
    steps = _STEPS
    remaining = 1
    while remaining:
        if pos >= limit:
            raise TruncatedError
        action, a, b = steps[buffer[pos]]
        remaining -= 1
        if action == _FIXED:
            pos += a
        elif action == _NESTED:
            remaining += a
            pos += 1
        elif action == _SIZED:
            pos += 1 + a + b + _uint(buffer, pos + 1, a, limit)
        elif action == _BIG_MAP:
            remaining += 2 * _uint(buffer, pos + 1, a, limit)
            pos += 1 + a
        elif action == _BIG_ARRAY:
            remaining += _uint(buffer, pos + 1, a, limit)
            pos += 1 + a
        else:
            raise InvalidByteError(f"invalid msgpack byte 0x{buffer[pos]:02x} at offset {pos}")
    if pos > limit:
        raise TruncatedError
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
    for _ in range(found.length):
        value = end_of(buffer, pos, end)
        value_end = end_of(buffer, value, end)
        spans.append((pos, value, value_end))
        pos = value_end
    return spans


def items(buffer: bytes | bytearray | memoryview, found: Head, end: int | None = None) -> list[int]:
    """The start offsets of an array's items, followed by the offset where the array ends."""
    starts = [found.body]
    for _ in range(found.length):
        starts.append(end_of(buffer, starts[-1], end))
    return starts
