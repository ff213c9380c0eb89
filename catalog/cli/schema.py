"""Commands about the catalog itself: ``upgrade`` its schema to this release."""

from __future__ import annotations

import click

from catalog.cli.group import cli, get_options
from catalog.db.versioning import upgrade_location


@cli.command("upgrade")
@click.pass_context
def upgrade_command(ctx: click.Context) -> None:
    """Upgrade the catalog's schema to this release (SQLite files are backed up first)."""
    options = get_options(ctx)
    before, after, backup = upgrade_location(options.location)
    if before == after:
        click.echo(f"The catalog {options.display} is already at schema revision {after}.")
    elif before is None:
        click.echo(f"Created the catalog {options.display} at schema revision {after}.")
    else:
        click.echo(
            f"Upgraded the catalog {options.display} from schema revision {before} to {after}."
        )
    if backup is not None:
        click.echo(f"Backup of the old catalog: {backup}")
