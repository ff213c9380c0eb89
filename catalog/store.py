"""The file side of a snapshot: durable, never-overwriting writes and checked reads.

MUSCLE3 writes a ``.pack`` file straight to its final name with no fsync, so
a crash can leave a half-written file that looks like a snapshot. We write
the bytes under a temporary name in the same directory, fsync them, then
hard-link the temporary file to the final name (``link`` fails instead of
replacing an existing file, so two processes saving the same instance into
one directory can never overwrite each other), remove the temporary name
and fsync the directory. Only after that does the caller record the file
in the catalog, so a recorded row never points at a partial file.

File names follow MUSCLE3 exactly (``{safe_id}_{n}.pack``, one counter per
saver starting at 1, skipped names still advance it), so MUSCLE3 finds and
reads what we write.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import mmap
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from catalog.errors import (
    CatalogError,
    SnapshotChangedError,
    SnapshotFileError,
    SnapshotTooLargeError,
    SnapshotWriteError,
)
from catalog.faults import os_cause, os_fix
from catalog.naming import pack_file_name, safe_id
from catalog.payload import decode_snapshot
from catalog.snapshot import Snapshot

_logger = logging.getLogger(__name__)

#: How many taken names are skipped before giving up, as in MUSCLE3.
MAX_NAME_ATTEMPTS = 10000

#: ``link`` errors meaning "this filesystem has no hard links": fall back to exclusive create.
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV}


@dataclass(frozen=True)
class StoredFile:
    """Where a snapshot was stored, and what was stored.

    Attributes:
        path: The final path (absolute if the directory was).
        number: The counter value used in its name.
        next_number: The counter value to try next time.
        size_bytes: Bytes written.
        sha256: Hex digest of the bytes written.
    """

    path: Path
    number: int
    next_number: int
    size_bytes: int
    sha256: str


def store_pack(
    directory: Path, instance: str, data: bytes | bytearray, first_number: int
) -> StoredFile:
    """Durably write a snapshot file under the first free MUSCLE3 name, never overwriting.

    Args:
        directory: The snapshot directory (created if missing).
        instance: The instance name; validated before any path is built.
        data: The complete file content (version byte included).
        first_number: The counter value to try first.

    Returns:
        Where and what was stored.

    Raises:
        InvalidInstanceError: The instance name is not valid.
        SnapshotWriteError: No free name among the next 10000, or the write
            failed; the message names the cause in words (``disk full``,
            ``read-only file system``, ``permission denied``), the directory
            and the fix, and nothing is left behind.
    """
    stem = safe_id(instance)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        cause = os_cause(exc)
        raise SnapshotWriteError(
            f"Cannot create the snapshot directory {directory}: {cause} ({exc.strerror}). "
            f"{os_fix(cause, directory)} No snapshot was stored."
        ) from exc
    temporary = directory / f".{stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        _write_synced(temporary, data)
        try:
            path, number = _link_to_free_name(temporary, directory, instance, first_number, data)
        finally:
            # The data now has its final name (or the error below is raised):
            # a temporary name that cannot be removed is reported, not fatal.
            leftover = _remove(temporary)
        _fsync_directory(directory)
    except OSError as exc:
        leftover = _remove(temporary)
        raise _write_error(exc, instance, directory, temporary, leftover) from exc
    if leftover:
        _logger.warning("%s", leftover)
    return StoredFile(
        path=path,
        number=number,
        next_number=number + 1,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _write_error(
    exc: OSError, instance: str, directory: Path, temporary: Path, leftover: str
) -> SnapshotWriteError:
    """The error for a failed write: the cause in words, the file, the fix, what was left."""
    cause = os_cause(exc)
    where = exc.filename if exc.filename is not None else temporary
    left = leftover or "no partial file was left behind"
    return SnapshotWriteError(
        f"Could not store a snapshot of {instance} in {directory}: {cause} "
        f"({exc.strerror or exc} while writing {where}). {os_fix(cause, directory)} "
        f"Nothing was recorded and {left}."
    )


def _remove(path: Path) -> str:
    """Remove a file we created, if it exists; say so if it cannot be (else "").

    On a read-only filesystem even removing a file that was never created
    can fail with ``EROFS`` rather than ``ENOENT``: what counts is whether
    the file is there, not the error.
    """
    try:
        path.unlink()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        if not os.path.lexists(path):
            return ""
        return f"the temporary file {path} could not be removed ({os_cause(exc)}): delete it"
    return ""


def _write_synced(path: Path, data: bytes | bytearray) -> None:
    _write_all(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), data)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    """Write all of ``data`` to ``fd``, fsync and close it (closed on error too)."""
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_to_free_name(
    temporary: Path, directory: Path, instance: str, number: int, data: bytes | bytearray
) -> tuple[Path, int]:
    last: Path | None = None
    for _ in range(MAX_NAME_ATTEMPTS):
        candidate = directory / pack_file_name(instance, number)
        last = candidate
        try:
            os.link(temporary, candidate)
            return candidate, number
        except FileExistsError:
            number += 1
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if _create_exclusive(candidate, data):
                return candidate, number
            number += 1
    raise SnapshotWriteError(
        "Could not find an available filename for storing the next snapshot: "
        f"{last} already exists, as do the {MAX_NAME_ATTEMPTS - 1} names before it. "
        "Move old snapshots away or use a fresh run directory."
    )


def _create_exclusive(path: Path, data: bytes | bytearray) -> bool:
    """Fallback for filesystems without hard links: exclusive create, then write and fsync.

    A write that fails after the exclusive create (disk full) removes the
    partial file, which has the final name: it is ours, and a reader must
    never take it for a snapshot.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    try:
        _write_all(fd, data)
    except BaseException:
        _remove(path)
        raise
    return True


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


#: Environment variable: files larger than this many bytes are recorded from
#: their metadata alone on import (their data is not decoded). Accepts a plain
#: number of bytes or one with a K, M, G or T suffix (powers of 1024).
DECODE_LIMIT_ENV = "MUSCLE_CATALOG_DECODE_LIMIT"
#: The default decode limit: decoding needs about twice a file's size in memory.
DEFAULT_DECODE_LIMIT = 1 << 30

_READ_CHUNK = 1 << 20
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def decode_limit() -> int:
    """The size above which import records a file without decoding its data.

    Read from :data:`DECODE_LIMIT_ENV` (``512M``, ``2G``, ``1048576``), else
    :data:`DEFAULT_DECODE_LIMIT`.

    Raises:
        CatalogError: The variable is set but is not a size.
    """
    text = os.environ.get(DECODE_LIMIT_ENV, "").strip()
    if not text:
        return DEFAULT_DECODE_LIMIT
    number, unit = text.rstrip("KMGTkmgtiIbB"), text.lstrip("0123456789").upper()
    unit = unit.removesuffix("B").removesuffix("I")
    if not number.isdigit() or unit not in _UNITS:
        raise CatalogError(
            f"{DECODE_LIMIT_ENV}={text!r} is not a size: give a number of bytes, optionally with "
            "a K, M, G or T suffix (e.g. 512M)."
        )
    return int(number) * _UNITS[unit]


@dataclass(frozen=True)
class LoadedFile:
    """A snapshot file read from disk.

    Attributes:
        path: The file.
        snapshot: Its decoded content.
        size_bytes: Its size.
        sha256: Hex digest of its bytes.
        data_decoded: False when only the metadata was decoded (see
            :func:`load_pack_metadata`): the message, if any, has no data.
    """

    path: Path
    snapshot: Snapshot
    size_bytes: int
    sha256: str
    data_decoded: bool = True


def _check_is_file(path: Path) -> None:
    if not path.is_file():
        problem = "it is a directory" if path.is_dir() else "the file does not exist"
        raise SnapshotFileError(path, f"{problem}. Please ensure this path exists and can be read.")


def _unreadable(path: Path, exc: OSError) -> SnapshotFileError:
    return SnapshotFileError(path, f"{exc.strerror or exc}. Check the file's permissions.")


def read_pack_buffer(path: Path) -> tuple[bytearray, str]:
    """Read a snapshot file into one buffer, hashing it on the way.

    The buffer is allocated once at the file's size and filled in place, so
    reading holds the file once; the sha256 is computed from the same chunks
    while they are fresh in the cache, so checking a file costs no second read.
    A file that grows or shrinks while being read (MUSCLE3 writes in place)
    is read as far as it goes.

    Returns:
        The bytes and their sha256 hex digest.

    Raises:
        SnapshotFileError: Missing, not a file, or unreadable.
        SnapshotTooLargeError: There is not enough memory for its bytes.
    """
    _check_is_file(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb", buffering=0) as handle:
            size = os.fstat(handle.fileno()).st_size
            try:
                buffer = bytearray(size)
            except MemoryError:
                raise SnapshotTooLargeError(path, size) from None
            view = memoryview(buffer)
            done = 0
            while done < size:
                count = handle.readinto(view[done : done + _READ_CHUNK])
                if not count:
                    break
                digest.update(view[done : done + count])
                done += count
            del view
            rest = handle.read()
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    if done < size:
        del buffer[done:]
    if rest:
        buffer += rest
        digest.update(rest)
    return buffer, digest.hexdigest()


def read_pack_bytes(path: Path) -> bytearray:
    """Read a snapshot file's bytes with errors that name the file and the fix.

    Raises:
        SnapshotFileError: Missing, not a file, or unreadable.
        SnapshotTooLargeError: There is not enough memory for its bytes.
    """
    return read_pack_buffer(path)[0]


def load_pack(path: Path, *, expected_sha256: str | None = None) -> LoadedFile:
    """Read and decode a snapshot file, keeping its size and checksum.

    Memory: the file's bytes once, plus its arrays (about twice the file's
    size for a file that is mostly grid data).

    Args:
        path: The file.
        expected_sha256: The digest the file should have (the catalog's
            record of it); checked before anything is decoded.

    Raises:
        SnapshotFileError: The file is missing, unreadable or not a valid snapshot.
        SnapshotChangedError: Its sha256 is not ``expected_sha256``.
        SnapshotTooLargeError: There is not enough memory to read or decode it.
    """
    data, sha256 = read_pack_buffer(path)
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise SnapshotChangedError(
            path,
            f"its bytes changed since the catalog recorded it (sha256 now {sha256}, recorded "
            f"{expected_sha256}; size now {len(data)} bytes). Run `muscle-catalog verify` to "
            "check the catalog's files; to read the file as it is now, load it without the "
            "check (check_sha256=False).",
        )
    return LoadedFile(
        path=path, snapshot=decode_snapshot(data, path), size_bytes=len(data), sha256=sha256
    )


def load_pack_metadata(path: Path) -> LoadedFile:
    """Read a snapshot file's metadata without decoding its message data.

    For files too large to decode: the file is mapped rather than read, only
    the pages holding the metadata are touched, and the sha256 is computed in
    chunks; memory use does not grow with the file's size. The message data
    is not checked for corruption.

    Returns:
        The file, its snapshot's message without data, ``data_decoded`` False.

    Raises:
        SnapshotFileError: The file is missing, unreadable or its metadata is
            not valid.
    """
    _check_is_file(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            while chunk := handle.read(_READ_CHUNK):
                digest.update(chunk)
            # An empty file cannot be mapped; its (missing) version byte is the error then.
            data: mmap.mmap | bytes = (
                mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
            )
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    snapshot = decode_snapshot(data, path, with_data=False)
    return LoadedFile(
        path=path, snapshot=snapshot, size_bytes=size, sha256=digest.hexdigest(), data_decoded=False
    )
