"""Commands about snapshots: list them (``snapshots``) and ``show`` one, from catalog or file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from catalog.cli.group import Options, cli, get_options
from catalog.cli.output import echo_json, float_text, listing_table, stdout
from catalog.errors import CatalogError
from catalog.records import SnapshotRecord

if TYPE_CHECKING:  # numpy, msgpack, ymmsl and rich: imported where used (see catalog.cli)
    from rich.table import Table

    from catalog.message import Message
    from catalog.store import LoadedFile


@cli.command("snapshots")
@click.option("--run", "run", metavar="RUN", help="Only this run (name or id).")
@click.option("--instance", metavar="INSTANCE", help="Only this instance, e.g. micro[3].")
@click.option(
    "--final/--intermediate",
    "final",
    default=None,
    help="Only final or only intermediate snapshots (default: both).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def snapshots_command(
    ctx: click.Context, run: str | None, instance: str | None, final: bool | None, as_json: bool
) -> None:
    """List recorded snapshots, in run and recorded order."""
    catalog = get_options(ctx).open(ctx, create=False, read_only=True)
    records = catalog.snapshots(run=run, instance=instance, final=final)
    if as_json:
        echo_json([record.to_json() for record in records])
        return
    from rich.text import Text

    table = listing_table(
        f"{len(records)} snapshots in {catalog.location}",
        ("id", "run", "instance", "file", "t", "next t", "wallclock", "type", "triggers"),
        fixed=("id", "t", "next t", "wallclock"),
    )
    for record in records:
        table.add_row(
            str(record.id),
            Text(record.run),
            Text(record.instance),
            Text(record.path.name),
            float_text(record.timestamp),
            float_text(record.next_timestamp),
            float_text(record.wallclock_time),
            _kind(record),
            Text(", ".join(record.triggers)),
        )
    stdout().print(table)


def _kind(record: SnapshotRecord) -> str:
    kind = "final" if record.is_final_snapshot else "intermediate"
    return f"{kind}, implicit" if record.is_implicit else kind


@cli.command("show")
@click.argument("snapshot", metavar="PACK_FILE_OR_SNAPSHOT_ID")
@click.pass_context
def show_command(ctx: click.Context, snapshot: str) -> None:
    """Show one snapshot's metadata and message, read from its file.

    SNAPSHOT is a .pack file (recorded or not) or a snapshot id from
    `muscle-catalog snapshots`.
    """
    from catalog.store import load_pack

    options = get_options(ctx)
    path = Path(snapshot)
    if path.exists():
        loaded = load_pack(path)
        record = _record_of_file(ctx, options, path)
    elif snapshot.isdigit():
        record = options.open(ctx, create=False, read_only=True).snapshot(int(snapshot))
        loaded = load_pack(record.path)
    else:
        raise CatalogError(
            f"{snapshot} is neither an existing .pack file nor a snapshot id. Give a path to "
            "a snapshot file, or an id listed by `muscle-catalog snapshots`."
        )
    stdout().print(_showtable(loaded, record))


def _record_of_file(ctx: click.Context, options: Options, path: Path) -> SnapshotRecord | None:
    """The catalog's record of a file, if there is a catalog and the file is in it."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return options.open(ctx, create=False, read_only=True).snapshot_by_path(path)
    except (CatalogError, SQLAlchemyError):
        return None  # showing a file must not depend on having a catalog


def _showtable(loaded: LoadedFile, record: SnapshotRecord | None) -> Table:
    from rich.table import Table
    from rich.text import Text

    snapshot = loaded.snapshot
    table = Table(title=f"Snapshot {loaded.path}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows: list[tuple[str, str]] = []
    if record is not None:
        rows += [("catalog id", str(record.id)), ("run", record.run)]
        rows += [("instance", record.instance), ("recorded order", str(record.submission_order))]
    else:
        rows.append(("catalog", "not recorded in the catalog"))
    rows += [
        ("format version", str(snapshot.format_version)),
        ("size", f"{loaded.size_bytes} bytes"),
        ("sha256", loaded.sha256),
        ("triggers", ", ".join(snapshot.triggers)),
        ("wallclock time", float_text(snapshot.wallclock_time)),
        ("final snapshot", str(snapshot.is_final_snapshot)),
        ("port message counts", json.dumps(snapshot.port_message_counts)),
        ("settings overlay", _settings(snapshot.settings_overlay)),
    ]
    rows += _message_rows(snapshot.message)
    for name, value in rows:
        table.add_row(name, Text(value))
    return table


def _message_rows(message: Message | None) -> list[tuple[str, str]]:
    if message is None:
        return [("message", "none (implicit snapshot of a stateless instance; timestamp NaN)")]
    return [
        ("timestamp", float_text(message.timestamp)),
        ("next timestamp", float_text(message.next_timestamp)),
        ("data", describe_data(message.data)),
        ("message settings", _settings(message.settings)),
    ]


def describe_data(data: Any) -> str:
    """A one-line summary of a message's data: its type and shape, not its values.

    Snapshot data can be large arrays; a summary tells what a snapshot holds
    without flooding the terminal.
    """
    import numpy as np

    from catalog.message import ClosePort, Grid, Milestone

    if isinstance(data, Grid):
        indexes = f", indexes {data.indexes}" if data.indexes else ""
        return f"Grid of {data.array.dtype}, shape {data.array.shape}{indexes}"
    if isinstance(data, np.ndarray):
        return f"array of {data.dtype}, shape {data.shape}"
    if isinstance(data, dict):
        keys = ", ".join(f"{k}: {describe_data(v)}" for k, v in list(data.items())[:5])
        more = ", ..." if len(data) > 5 else ""
        return f"dict with {len(data)} keys {{{keys}{more}}}"
    if isinstance(data, list | tuple):
        return f"{type(data).__name__} of {len(data)} items"
    if isinstance(data, str | bytes):
        return f"{type(data).__name__} of length {len(data)}"
    if isinstance(data, bool | int | float) or data is None:
        return f"{type(data).__name__} {data!r}"
    if isinstance(data, ClosePort | Milestone):
        return repr(data)
    return type(data).__name__


def _settings(settings: Any) -> str:
    if settings is None:
        return "none"
    items = dict(settings.items()) if hasattr(settings, "items") else {}
    if not items:
        return "empty"
    return ", ".join(f"{k} = {v!r}" for k, v in items.items())
