"""Faults at the edges of saving: full, read-only and forbidden disks; locked or damaged catalogs.

Covered: real full, read-only and forbidden directories, and catalogs that
are locked, on a full or read-only filesystem, corrupt, or have a damaged
version table.

The filesystem faults are real where the machine allows: a tiny tmpfs gives a
real ENOSPC, a tmpfs remounted read-only a real EROFS (both need root and
``mount``), and a directory without write permission a real EACCES (as root,
whom permissions do not stop, in a child process without the capability to
override them). Where that is impossible the test is skipped with the reason.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from ymmsl import Settings

from catalog import (
    CatalogError,
    CatalogWriteError,
    Message,
    SettingError,
    SnapshotWriteError,
    VersionTableError,
    open_catalog,
)
from catalog.cli import cli
from catalog.db.revision import VERSION_TABLE
from catalog.faults import catalog_failure
from catalog.instance import SnapshotManager
from catalog.location import display_location, to_url
from catalog.store import store_pack

from .test_instance import make_communicator, submitted

DATA = b"\x01" + b"snapshot bytes " * 10


# --------------------------------------------------------------------------- real faults


def _mount_tmpfs(mount_point: Path, size_kib: int) -> None:
    """Mount a tmpfs of ``size_kib`` KiB, or skip the test saying why it cannot be done."""
    if os.geteuid() != 0:
        pytest.skip("a real full or read-only filesystem needs a tmpfs mount, which needs root")
    if shutil.which("mount") is None:
        pytest.skip("no mount command to make a real full or read-only filesystem")
    mount_point.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")


def _remount_read_only(mount_point: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True)


@contextmanager
def _tmpfs(mount_point: Path, size_kib: int) -> Iterator[Path]:
    _mount_tmpfs(mount_point, size_kib)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB filesystem (tmpfs), unmounted afterwards: room for small files only."""
    with _tmpfs(tmp_path / "small_fs", 64) as mount_point:
        yield mount_point


@pytest.fixture
def catalog_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MiB filesystem (tmpfs), unmounted afterwards: room for a catalog."""
    with _tmpfs(tmp_path / "catalog_fs", 4096) as mount_point:
        yield mount_point


def _fill(directory: Path) -> None:
    """Fill a filesystem to the last byte with one file."""
    with (directory / "filler").open("wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def _no_temporary_files(directory: Path) -> bool:
    return not [p for p in directory.rglob("*") if p.name.endswith(".tmp")]


def test_disk_full_is_named_and_leaves_nothing(small_fs: Path) -> None:
    snapshots = small_fs / "snaps"
    with pytest.raises(SnapshotWriteError) as raised:
        store_pack(snapshots, "macro", b"\x01" * 200_000, 1)
    message = str(raised.value)
    assert "disk full" in message
    assert str(snapshots) in message
    assert "Free space on the filesystem" in message
    assert list(snapshots.iterdir()) == []
    # the same directory works again once there is room
    assert store_pack(snapshots, "macro", DATA, 1).path.read_bytes() == DATA


def test_a_full_disk_fails_the_save_and_records_nothing(small_fs: Path, tmp_path: Path) -> None:
    snapshots = small_fs / "run" / "instances" / "macro" / "snapshots"
    snapshots.mkdir(parents=True)
    _fill(small_fs)
    with open_catalog(tmp_path / "cat.sqlite", create=True) as cat:
        manager = MagicMock()
        saver = SnapshotManager("macro", manager, make_communicator({"o_i": [1]}), cat)
        saver.prepare_resume(None, snapshots)
        with pytest.raises(SnapshotWriteError, match=f"macro in {snapshots}: disk full"):
            saver.save_snapshot(
                Message(0.2, None, "x" * 10_000), False, ["t"], 1.0, None, Settings()
            )
        manager.submit_snapshot_metadata.assert_not_called()
        assert cat.snapshots() == []
    assert list(snapshots.iterdir()) == []


def test_read_only_filesystem_is_named_and_leaves_nothing(small_fs: Path) -> None:
    existing = small_fs / "snaps"
    existing.mkdir()
    _remount_read_only(small_fs)
    with pytest.raises(SnapshotWriteError) as raised:
        store_pack(existing, "macro", DATA, 1)
    message = str(raised.value)
    assert f"macro in {existing}: read-only file system" in message
    assert "remount it read-write" in message
    assert "no partial file was left behind" in message
    assert list(existing.iterdir()) == []
    with pytest.raises(SnapshotWriteError, match=r"snapshot directory .*: read-only file system"):
        store_pack(small_fs / "new", "macro", DATA, 1)


_STORE_AS_UNPRIVILEGED = """
import sys
from pathlib import Path
from catalog.errors import SnapshotWriteError
from catalog.store import store_pack
try:
    store_pack(Path(sys.argv[1]), "macro", b"x", 1)
except SnapshotWriteError as exc:
    print(exc)
"""


def test_permission_denied_is_named_and_leaves_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "snaps"
    directory.mkdir()
    directory.chmod(0o555)
    command = [sys.executable, "-c", _STORE_AS_UNPRIVILEGED, str(directory)]
    if os.geteuid() == 0:
        # Root ignores permissions; without CAP_DAC_OVERRIDE it is bound by them like anyone.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot drop the right to ignore chmod")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    finally:
        directory.chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert f"macro in {directory}: permission denied" in done.stdout
    assert "writable for this user" in done.stdout
    assert list(directory.iterdir()) == []


def test_a_failed_write_removes_its_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unit test beside the real ones: ENOSPC from the middle of a write, on any machine."""
    real_write = os.write

    def full_after_one_byte(fd: int, data: Any) -> int:
        if len(data) > 1:
            return real_write(fd, bytes(data[:1]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full_after_one_byte)
    with pytest.raises(SnapshotWriteError, match="disk full"):
        store_pack(tmp_path, "macro", DATA, 1)
    assert list(tmp_path.iterdir()) == []


def test_without_hard_links_a_failed_write_removes_the_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback writes straight to the final name: a partial file there must go too."""
    writes = {"count": 0}
    real_write = os.write

    def no_links(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EPERM, "no hard links here")

    def full_on_second_file(fd: int, data: Any) -> int:
        writes["count"] += 1
        if writes["count"] > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "link", no_links)
    monkeypatch.setattr(os, "write", full_on_second_file)
    with pytest.raises(SnapshotWriteError, match="disk full"):
        store_pack(tmp_path, "macro", DATA, 1)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- the catalog


def _run_dir(tmp_path: Path) -> tuple[Path, Path]:
    run_dir = tmp_path / "run"
    snapshots = run_dir / "instances" / "macro" / "snapshots"
    snapshots.mkdir(parents=True)
    return run_dir, snapshots


def _saver(catalog: str, snapshots: Path) -> tuple[SnapshotManager, MagicMock]:
    manager = MagicMock()
    saver = SnapshotManager("macro", manager, make_communicator({"o_i": [1]}), catalog)
    saver.prepare_resume(None, snapshots)
    return saver, manager


def _save(saver: SnapshotManager) -> None:
    saver.save_snapshot(Message(0.5, None, "state"), False, ["t"], 1.0, None, Settings())


def _import_later(catalog: str, run_dir: Path, pack: Path) -> None:
    """The command the message names records the file."""
    result = CliRunner().invoke(cli, ["import", "--catalog", catalog, str(run_dir)])
    assert result.exit_code == 0, result.output
    with open_catalog(catalog, create=True) as cat:
        assert [r.path for r in cat.snapshots()] == [pack]


@contextmanager
def _lock_held_elsewhere(catalog_url: str) -> Iterator[None]:
    """Another connection holds the catalog's write lock (on PostgreSQL: the runs table)."""
    if "://" in catalog_url:
        engine = create_engine(catalog_url)
        with engine.connect() as holder:
            holder.execute(text("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE"))
            yield
            holder.rollback()
        engine.dispose()
        return
    holder_sqlite = sqlite3.connect(catalog_url, isolation_level=None)
    try:
        holder_sqlite.execute("BEGIN IMMEDIATE")
        yield
        holder_sqlite.execute("ROLLBACK")
    finally:
        holder_sqlite.close()


def _location(catalog_url: str) -> str:
    """The catalog as messages name it (the URL without its password)."""
    return display_location(to_url(catalog_url))


def test_a_locked_catalog_warns_keeps_the_file_and_a_later_import_records_it(
    catalog_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    open_catalog(catalog_url, create=True).close()
    monkeypatch.setenv("MUSCLE_CATALOG_LOCK_TIMEOUT", "0.2")
    monkeypatch.delenv("MUSCLE_CATALOG_ON_ERROR", raising=False)
    run_dir, snapshots = _run_dir(tmp_path)
    saver, manager = _saver(catalog_url, snapshots)
    with _lock_held_elsewhere(catalog_url), caplog.at_level(logging.WARNING, "catalog.instance"):
        _save(saver)
    saver.close()
    pack = snapshots / "macro_1.pack"
    assert submitted(manager).snapshot_filename == str(pack)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert f"Snapshot {pack} was saved, but the catalog {_location(catalog_url)} " in message
    assert "catalog locked by another process for 0.2 s" in message
    assert f"`muscle-catalog import --catalog {_location(catalog_url)} {run_dir}`" in message
    assert pack.is_file()
    monkeypatch.delenv("MUSCLE_CATALOG_LOCK_TIMEOUT")
    _import_later(catalog_url, run_dir, pack)


def test_a_locked_catalog_raises_when_asked_to_after_the_file_is_safe(
    catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_catalog(catalog_url, create=True).close()
    monkeypatch.setenv("MUSCLE_CATALOG_LOCK_TIMEOUT", "0.2")
    monkeypatch.setenv("MUSCLE_CATALOG_ON_ERROR", "raise")
    run_dir, snapshots = _run_dir(tmp_path)
    saver, manager = _saver(catalog_url, snapshots)
    with (
        _lock_held_elsewhere(catalog_url),
        pytest.raises(CatalogWriteError, match=r"locked by another process for 0\.2 s") as raised,
    ):
        _save(saver)
    saver.close()
    pack = snapshots / "macro_1.pack"
    assert raised.value.path == pack and pack.is_file()
    assert raised.value.catalog == _location(catalog_url)
    assert isinstance(raised.value, CatalogError)
    assert submitted(manager).snapshot_filename == str(pack)  # the manager was told first
    monkeypatch.delenv("MUSCLE_CATALOG_LOCK_TIMEOUT")
    _import_later(catalog_url, run_dir, pack)


def test_bad_settings_stop_the_instance_before_its_first_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSCLE_CATALOG_ON_ERROR", "ignore")
    with pytest.raises(
        SettingError, match=r"MUSCLE_CATALOG_ON_ERROR='ignore' .* 'warn' .* 'raise'"
    ):
        SnapshotManager("macro", MagicMock(), make_communicator({}), tmp_path / "c.sqlite")
    monkeypatch.setenv("MUSCLE_CATALOG_ON_ERROR", "RAISE")
    monkeypatch.setenv("MUSCLE_CATALOG_LOCK_TIMEOUT", "soon")
    with pytest.raises(SettingError, match="MUSCLE_CATALOG_LOCK_TIMEOUT='soon'"):
        SnapshotManager("macro", MagicMock(), make_communicator({}), tmp_path / "c.sqlite")


def test_a_full_disk_under_the_catalog_is_named_and_the_file_kept(
    catalog_fs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("MUSCLE_CATALOG_ON_ERROR", raising=False)
    catalog = str(catalog_fs / "cat.sqlite")
    open_catalog(catalog, create=True).close()
    run_dir, snapshots = _run_dir(tmp_path)
    saver, _manager = _saver(catalog, snapshots)
    _fill(catalog_fs)
    with caplog.at_level(logging.WARNING, logger="catalog.instance"):
        _save(saver)
    saver.close()
    assert f"the catalog {catalog} could not record it: disk full" in caplog.text
    assert (snapshots / "macro_1.pack").is_file()
    (catalog_fs / "filler").unlink()
    _import_later(catalog, run_dir, snapshots / "macro_1.pack")


def test_a_catalog_on_a_read_only_filesystem_is_named(
    catalog_fs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSCLE_CATALOG_ON_ERROR", "raise")
    catalog = catalog_fs / "cat.sqlite"
    open_catalog(catalog, create=True).close()
    _remount_read_only(catalog_fs)
    _run_dir_path, snapshots = _run_dir(tmp_path)
    saver, _manager = _saver(str(catalog), snapshots)
    expected = f"{catalog} could not record it: .*read-only file system"
    with pytest.raises(CatalogWriteError, match=expected):
        _save(saver)
    saver.close()
    assert (snapshots / "macro_1.pack").is_file()


def test_a_corrupt_catalog_is_named_and_the_file_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSCLE_CATALOG_ON_ERROR", "raise")
    catalog = tmp_path / "cat.sqlite"
    catalog.write_bytes(b"this is not a database, whatever its name says" * 100)
    _run_dir_path, snapshots = _run_dir(tmp_path)
    saver, _manager = _saver(str(catalog), snapshots)
    with pytest.raises(CatalogWriteError, match=f"{catalog} could not record it: .*corrupt"):
        _save(saver)
    saver.close()
    assert (snapshots / "macro_1.pack").is_file()


# --------------------------------------------------------------------------- version table


def _add_second_revision(catalog_url: str) -> None:
    open_catalog(catalog_url, create=True).close()
    engine = create_engine(to_url(catalog_url))
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ('0001')"))
    engine.dispose()


def test_a_damaged_version_table_fails_the_record_not_the_save(
    catalog_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("MUSCLE_CATALOG_ON_ERROR", raising=False)
    _add_second_revision(catalog_url)
    sqlite_before = Path(catalog_url).read_bytes() if "://" not in catalog_url else None
    _run_dir_path, snapshots = _run_dir(tmp_path)
    saver, manager = _saver(catalog_url, snapshots)
    with caplog.at_level(logging.WARNING, logger="catalog.instance"):
        _save(saver)
    saver.close()
    assert (snapshots / "macro_1.pack").is_file()
    assert submitted(manager).snapshot_filename == str(snapshots / "macro_1.pack")
    message = caplog.text
    assert f"the catalog {_location(catalog_url)} could not record it" in message
    assert "is damaged: its version table" in message and "holds 2 revisions" in message
    assert f"DELETE FROM {VERSION_TABLE}" in message
    assert "Traceback" not in message

    monkeypatch.setenv("MUSCLE_CATALOG_ON_ERROR", "raise")
    saver, _manager = _saver(catalog_url, snapshots)
    with pytest.raises(CatalogWriteError) as raised:
        _save(saver)
    saver.close()
    assert isinstance(raised.value.__cause__, VersionTableError)
    assert (snapshots / "macro_2.pack").is_file()
    if sqlite_before is not None:  # refused, by both recording paths, before writing a byte
        assert Path(catalog_url).read_bytes() == sqlite_before


def test_postgresql_causes_are_named_from_their_sqlstate() -> None:
    """A full or read-only database server cannot be made here: its errors are named by SQLSTATE."""
    errors = pytest.importorskip("psycopg.errors")
    full = catalog_failure(errors.DiskFull("could not extend file: No space left"), None, 10)
    assert full.startswith("disk full on the database server (PostgreSQL 53100")
    locked = catalog_failure(errors.LockNotAvailable("canceling statement"), None, 10)
    assert locked.startswith("catalog locked by another process for 10 s")
    read_only = catalog_failure(errors.ReadOnlySqlTransaction("read-only"), None, 10)
    assert read_only.startswith("the database is read-only")
