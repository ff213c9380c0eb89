"""Memory needed to load a large ``.pack`` file: peak traced allocations and peak RSS.

Writes one snapshot holding a float64 grid of the given size (as MUSCLE3
writes it), then loads it three ways, each in a fresh process so that the
peaks do not mix:

* ``full``: :func:`catalog.store.load_pack` (read, hash, decode the data);
* ``metadata``: :func:`catalog.store.load_pack_metadata` (what import does
  for files above ``MUSCLE_CATALOG_DECODE_LIMIT``);
* ``libmuscle``: MUSCLE3's own loader, if libmuscle is installed, for comparison.

Prints the peak as a multiple of the file size. Run::

    python benchmarks/decode_memory.py --mib 256
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path


def write_file(path: Path, mib: int) -> None:
    """A version 1 snapshot whose message is one float64 grid of ``mib`` MiB."""
    import numpy as np

    from catalog.message import Grid, Message
    from catalog.payload import encode_snapshot
    from catalog.snapshot import Snapshot

    array = np.ones((mib, 1 << 17))  # 2**17 float64 = 1 MiB per row
    message = Message(0.5, None, Grid(array, ["x", "y"]))
    path.write_bytes(encode_snapshot(Snapshot(["t"], 1.0, {"out": [1]}, False, message)))


def measure(how: str, path: Path) -> None:
    """Load ``path`` one way and print the peaks (runs in its own process)."""
    from catalog.store import load_pack, load_pack_metadata

    size = path.stat().st_size
    tracemalloc.start()
    if how == "full":
        load_pack(path)
    elif how == "metadata":
        load_pack_metadata(path)
    else:
        from libmuscle.snapshot_manager import SnapshotManager

        SnapshotManager.load_snapshot_from_file(path)
    _current, peak = tracemalloc.get_traced_memory()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{how:>9}: traced peak {peak / size:5.2f}x the file; max RSS {rss:6.0f} MiB "
        "(interpreter and imports included)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="size of the grid (default 64)")
    parser.add_argument("--measure", choices=["write", "full", "metadata", "libmuscle"])
    parser.add_argument("--file", type=Path)
    args = parser.parse_args()
    if args.measure == "write":
        write_file(args.file, args.mib)
        return
    if args.measure:
        measure(args.measure, args.file)
        return
    # This process imports nothing large and writes nothing itself: a child's
    # max RSS starts from its parent's at fork.
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "macro_1.pack"
        write = [sys.executable, __file__, "--measure", "write", "--file", str(path)]
        subprocess.run([*write, "--mib", str(args.mib)], check=True)
        print(f"file: {path.stat().st_size / 2**20:.0f} MiB")
        for how in ("full", "metadata", "libmuscle"):
            command = [sys.executable, __file__, "--measure", how, "--file", str(path)]
            done = subprocess.run(command, capture_output=True, text=True)
            print(done.stdout.rstrip() or f"{how:>9}: not measured ({done.stderr.strip()[-80:]})")


if __name__ == "__main__":
    main()
