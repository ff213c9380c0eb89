"""Commands about the catalog itself: ``init`` a campaign's catalog, ``upgrade`` its schema."""

from __future__ import annotations

import os
from pathlib import Path

import click

from catalog.catalog import open_catalog
from catalog.cli.group import cli, get_options
from catalog.db.versioning import upgrade_location
from catalog.errors import CatalogError
from catalog.location import DEFAULT_CATALOG_NAME, find_catalog_above, sqlite_file, to_url


@cli.command("init")
@click.argument(
    "directory", required=False, type=click.Path(file_okay=False, path_type=Path), metavar="[DIR]"
)
@click.pass_context
def init_command(ctx: click.Context, directory: Path | None) -> None:
    r"""Create a campaign's catalog: DIR/snapshot_catalog.sqlite (default: the current directory).

    Every run directory below DIR, and every command run in DIR or below it,
    then finds this catalog by itself: the instances and the manager record
    into it, and `muscle-catalog runs` lists all runs of the campaign. With
    --catalog (or MUSCLE_SNAPSHOT_CATALOG), creates the schema there instead,
    e.g. in a PostgreSQL database. Running it again changes nothing.

    \b
    Example:
        muscle-catalog init campaign
        cd campaign && muscle_manager --start-all --run-dir run1 model.ymmsl
    """
    options = get_options(ctx)
    if options.explicit is not None and directory is not None:
        raise click.UsageError(
            "Give either DIR or --catalog (or MUSCLE_SNAPSHOT_CATALOG), not both."
        )
    if options.explicit is not None:
        location = options.explicit
        db_file = sqlite_file(to_url(location))
    else:
        target = Path(os.path.abspath(directory or Path.cwd()))
        target.mkdir(parents=True, exist_ok=True)
        db_file = target / DEFAULT_CATALOG_NAME
        location = str(db_file)
    existed = db_file is not None and db_file.exists()
    outer = _catalog_above(db_file)
    if db_file is not None and not db_file.parent.is_dir():
        raise CatalogError(
            f"Cannot create the catalog {db_file}: the directory {db_file.parent} does not exist."
        )
    with open_catalog(location, create=True) as catalog:
        runs = len(catalog.runs())
    if existed:
        click.echo(f"{catalog.location} is already a catalog ({runs} runs); nothing changed.")
    else:
        click.echo(f"Created the catalog {catalog.location}.")
    if outer is not None:
        click.echo(
            f"Note: runs and commands below {db_file.parent if db_file else location} now use "
            f"this catalog, not {outer} further up."
        )


def _catalog_above(db_file: Path | None) -> Path | None:
    """A catalog in a directory above ``db_file``'s, which the new one now hides, if any."""
    if db_file is None or db_file.parent.parent == db_file.parent:
        return None
    found, _searched = find_catalog_above(db_file.parent.parent)
    return found


@cli.command("upgrade")
@click.pass_context
def upgrade_command(ctx: click.Context) -> None:
    """Upgrade the catalog's schema to this release (SQLite files are backed up first)."""
    options = get_options(ctx)
    if options.explicit is None:
        options.require_existing()
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
