"""Commands about snapshots: list them (``snapshots``) and ``show`` one, from catalog or file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from catalog.cli.group import Options, cli, get_options
from catalog.cli.output import echo_json, echo_json_stream, float_text, listing_table, stdout
from catalog.errors import CatalogError
from catalog.records import SnapshotRecord, json_float

if TYPE_CHECKING:  # numpy, msgpack, ymmsl and rich: imported where used (see catalog.cli)
    from rich.table import Table

    from catalog.message import Message
    from catalog.store import LoadedFile


#: ``--order-by`` choices: the orderings of :mod:`catalog.snapshot_query`, ascending or
#: descending. Spelled out here so that ``--help`` does not import SQLAlchemy.
ORDER_CHOICES = (
    "submission",
    "id",
    "timestamp",
    "wallclock_time",
    "recorded_at",
    "instance",
    "size_bytes",
)


@cli.command("snapshots")
@click.option("--run", "run", metavar="RUN", help="Only this run (name or id).")
@click.option(
    "--instance",
    metavar="INSTANCE",
    help="Only this instance: micro[3]; a vector's name (micro) means all its elements; "
    "* and ? make a pattern (micro[*], mi*).",
)
@click.option(
    "--final/--intermediate",
    "final",
    default=None,
    help="Only final or only intermediate snapshots (default: both).",
)
@click.option(
    "--after-time", type=float, metavar="T", help="Only those at or after simulation time T."
)
@click.option(
    "--before-time", type=float, metavar="T", help="Only those at or before simulation time T."
)
@click.option(
    "--trigger", metavar="TEXT", help="Only those with this trigger (exact, or a * pattern)."
)
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most N snapshots.")
@click.option(
    "--order-by",
    type=click.Choice([*ORDER_CHOICES, *(f"-{c}" for c in ORDER_CHOICES)]),
    default="submission",
    show_default=True,
    help="Sort by this field; a leading - sorts descending (e.g. -timestamp).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (streamed, one object per snapshot)."
)
@click.pass_context
def snapshots_command(
    ctx: click.Context,
    run: str | None,
    instance: str | None,
    final: bool | None,
    after_time: float | None,
    before_time: float | None,
    trigger: str | None,
    limit: int | None,
    order_by: str,
    as_json: bool,
) -> None:
    """List recorded snapshots, in run and recorded order."""
    from catalog.snapshot_query import QueryError

    if after_time is not None and before_time is not None and after_time > before_time:
        raise click.UsageError(
            f"--after-time {after_time} is later than --before-time {before_time}"
        )
    catalog = get_options(ctx).open(ctx, create=False, read_only=True)
    filters: dict[str, Any] = {
        "run": run,
        "instance": instance,
        "final": final,
        "after_time": after_time,
        "before_time": before_time,
        "trigger": trigger,
        "limit": limit,
        "order_by": order_by,
    }
    try:
        if as_json:
            # Streamed: constant memory however many snapshots the campaign has.
            echo_json_stream(record.to_json() for record in catalog.iter_snapshots(**filters))
            return
        records = catalog.snapshots(**filters)
    except QueryError as exc:
        raise click.UsageError(str(exc)) from exc
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
@click.option(
    "-d",
    "--data",
    "show_data",
    is_flag=True,
    help="Also print the message data, as `muscle3 snapshot -d` does (this can be long).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object (metadata; with --data, the data too) instead of a table.",
)
@click.pass_context
def show_command(ctx: click.Context, snapshot: str, show_data: bool, as_json: bool) -> None:
    r"""Show one snapshot's metadata and message, read from its file.

    SNAPSHOT is a .pack file (recorded or not) or a snapshot id from
    `muscle-catalog snapshots`. A recorded file whose bytes no longer match
    the recorded sha256 is shown, with a warning.

    --json gives: id (null when not recorded), run, instance, path (absolute),
    format_version, size, sha256, status, recorded_sha256_matches, triggers,
    wallclock_time, timestamp, next_timestamp (NaN as "NaN", as in
    `snapshots --json`),
    port_message_counts, is_final_snapshot, is_implicit, settings_overlay,
    message_settings. With --data also "data":
    numpy arrays as {dtype, shape, order, values} with nested-list values,
    grids as {"grid": {array, indexes}}, bytes as {"bytes_base64"}; what JSON
    cannot hold exactly (NaN and Infinity become null, non-text map keys their
    str(), unknown ext types left out) is listed in "data_notes".
    """
    from catalog.snapshot_data import load_record_file
    from catalog.store import load_pack

    options = get_options(ctx)
    path = Path(snapshot)
    if path.exists():
        record = _record_of_file(ctx, options, path)
    elif snapshot.isdigit():
        record = options.open(ctx, create=False, read_only=True).snapshot(int(snapshot))
        path = record.path
    else:
        raise CatalogError(
            f"{snapshot} is neither an existing .pack file nor a snapshot id. Give a path to "
            "a snapshot file, or an id listed by `muscle-catalog snapshots`."
        )
    # A changed file is shown anyway (with a warning): show is how one looks into it.
    loaded = load_pack(path) if record is None else load_record_file(record, check_sha256=False)
    changed = _changed(loaded, record)
    if changed:
        click.echo(f"Warning: {changed}", err=True)
    if as_json:
        echo_json(show_json(loaded, record, with_data=show_data))
        return
    stdout().print(_showtable(loaded, record))
    if show_data:
        _echo_data(loaded.snapshot.message)


def _changed(loaded: LoadedFile, record: SnapshotRecord | None) -> str | None:
    """Why the file no longer matches its record, or None."""
    if record is None or record.sha256 is None or record.sha256 == loaded.sha256:
        return None
    return (
        f"{loaded.path} changed since it was recorded (sha256 {loaded.sha256}, recorded "
        f"{record.sha256}). Run `muscle-catalog verify` to check the catalog's files."
    )


def _echo_data(message: Message | None) -> None:
    """The data under a bold heading, as ``muscle3 snapshot -d`` prints it (numpy summarises)."""
    click.secho("Snapshot data:", bold=True)
    if message is None:
        click.secho("No data available", italic=True)
    else:
        click.echo(message.data)


def show_json(
    loaded: LoadedFile, record: SnapshotRecord | None, *, with_data: bool = False
) -> dict[str, Any]:
    """The JSON object ``show --json`` prints: metadata (and data) of one file.

    The metadata's non-finite floats are spelled as every record's JSON
    spells them (:func:`catalog.records.json_float`: an implicit snapshot's
    timestamp is ``"NaN"``), so ``show --json`` and ``snapshots --json`` agree
    on the same snapshot; in the data, where a number array cannot hold a
    string, they are null and ``data_notes`` says so.
    """
    snapshot = loaded.snapshot
    message = snapshot.message
    result: dict[str, Any] = {
        "id": record.id if record else None,
        "run": record.run if record else None,
        "instance": record.instance if record else None,
        "path": str(loaded.path.absolute()),
        "format_version": snapshot.format_version,
        "size": loaded.size_bytes,
        "sha256": loaded.sha256,
        "status": str(record.status) if record else None,
        "recorded_sha256_matches": (
            None if record is None or record.sha256 is None else record.sha256 == loaded.sha256
        ),
        "triggers": list(snapshot.triggers),
        "wallclock_time": json_float(snapshot.wallclock_time),
        "timestamp": json_float(message.timestamp if message else math.nan),
        "next_timestamp": json_float(message.next_timestamp) if message else None,
        "port_message_counts": {k: list(v) for k, v in snapshot.port_message_counts.items()},
        "is_final_snapshot": snapshot.is_final_snapshot,
        "is_implicit": message is None,
        "settings_overlay": _settings_json(snapshot.settings_overlay),
        "message_settings": _settings_json(message.settings) if message else None,
    }
    if with_data:
        from catalog.snapshot_data import data_to_json

        data, notes = data_to_json(message.data if message else None)
        result["data"] = data
        result["data_notes"] = notes
    return result


def _settings_json(settings: Any) -> dict[str, Any]:
    if settings is None:
        return {}
    from catalog.snapshot_data import data_to_json

    values, _notes = data_to_json(dict(settings.items()))
    return dict(values)


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
