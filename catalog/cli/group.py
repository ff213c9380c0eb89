"""The ``muscle-catalog`` command group: its global options, error reporting and entry point.

Every subcommand (one module per group of commands in this package) gets the
catalog location through :func:`options` and opens the catalog with
:meth:`Options.open`. Errors a user can cause (a wrong path, an unreachable
or outdated catalog, a broken file) are printed as one ``Error: ...`` line on
stderr with exit code 1, never as a traceback: they are the user's to fix,
and the message says how.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from catalog.catalog import Catalog, open_catalog
from catalog.errors import CatalogError
from catalog.location import (
    CATALOG_ENV,
    DEFAULT_CATALOG_NAME,
    CatalogChoice,
    choose_catalog,
    display_location,
    sqlite_file,
    to_url,
)


@dataclass
class Options:
    """The group's options, handed to every subcommand.

    Attributes:
        explicit: The catalog named by ``--catalog`` or ``$MUSCLE_SNAPSHOT_CATALOG``,
            if any; otherwise the nearest one above the working directory is used
            (see :mod:`catalog.location`).
    """

    explicit: str | None

    @functools.cached_property
    def choice(self) -> CatalogChoice:
        """The catalog the rules choose from the working directory."""
        return choose_catalog(self.explicit, Path.cwd())

    @property
    def location(self) -> str:
        """The path or URL of the chosen catalog."""
        return self.choice.location

    @property
    def display(self) -> str:
        """The catalog's name for messages, without a password."""
        return display_location(to_url(self.location))

    def open(self, ctx: click.Context, *, create: bool) -> Catalog:
        """Open the catalog for the rest of the command (closed when it ends).

        Args:
            ctx: The command's context, which closes the catalog afterwards.
            create: Create the catalog if it does not exist (``import``);
                query commands refuse instead, so a typo in ``--catalog``
                does not leave an empty catalog behind.

        Raises:
            CatalogError: ``create`` is False and there is no catalog; the
                message says where it looked and how to make one.
        """
        if not create:
            self.require_existing()
        catalog = open_catalog(self.location, create=create)
        ctx.call_on_close(catalog.close)
        return catalog

    def require_existing(self) -> None:
        """Refuse (with where it looked, and the fix) when the chosen catalog does not exist.

        Raises:
            CatalogError: There is no catalog to use.
        """
        if not self.choice.found:
            raise CatalogError(self.choice.not_found_message())
        db_file = sqlite_file(to_url(self.location))
        if db_file is not None and not db_file.exists():
            raise CatalogError(
                f"There is no catalog at {db_file}. Create it with `muscle-catalog init` or "
                "record runs into it with `muscle-catalog import RUN_DIR`, or choose another "
                f"with --catalog or {CATALOG_ENV}."
            )


def get_options(ctx: click.Context) -> Options:
    """The group's options (always set: subcommands run inside the group)."""
    options = ctx.find_object(Options)
    if options is None:  # pragma: no cover - a subcommand invoked without its group
        raise click.UsageError("Run this command through muscle-catalog.")
    return options


def _catalog_after_command(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``--catalog`` given after the command's name: it overrides the group's."""
    options = ctx.find_object(Options)
    if value is not None and options is not None:
        options.explicit = value
        options.__dict__.pop("choice", None)  # chosen again, from the new value


_CATALOG_HELP = (
    "SQLite file or SQLAlchemy URL (postgresql+psycopg://user@host/db) of the catalog. "
    f"Default: the nearest {DEFAULT_CATALOG_NAME} in the current directory or above it."
)


class _CatalogGroup(click.Group):
    """A click group that turns the errors users can cause into one ``Error:`` line.

    Every command also takes ``--catalog`` after its own name
    (``muscle-catalog runs --catalog x.sqlite``), as users type it.
    """

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Register a command, giving it the ``--catalog`` option too."""
        if not any("--catalog" in getattr(param, "opts", ()) for param in cmd.params):
            cmd.params.append(
                click.Option(
                    ["--catalog"],
                    metavar="PATH_OR_URL",
                    expose_value=False,
                    callback=_catalog_after_command,
                    help=_CATALOG_HELP,
                )
            )
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand, reporting catalog, database and file errors without a traceback."""
        try:
            return super().invoke(ctx)
        except CatalogError as exc:
            raise click.ClickException(one_line(str(exc))) from exc
        except SQLAlchemyError as exc:
            raise click.ClickException(_database_error(ctx, exc)) from exc
        except OSError as exc:
            raise click.ClickException(one_line(str(exc))) from exc


def _database_error(ctx: click.Context, exc: SQLAlchemyError) -> str:
    """A database error as one line naming the catalog (psycopg's messages span lines)."""
    cause = one_line(str(getattr(exc, "orig", None) or exc))
    options = ctx.find_object(Options)
    where = options.display if options is not None else "the catalog"
    return (
        f"Cannot use the catalog {where} ({cause}). Check the --catalog path or URL "
        f"(or {CATALOG_ENV}) and that the database server is running."
    )


def one_line(text: str) -> str:
    """Text (a message that may span lines) as one line."""
    return " ".join(text.split())


@click.group(cls=_CatalogGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="muscle-snapshot-catalog", prog_name="muscle-catalog")
@click.option(
    "--catalog",
    "location",
    metavar="PATH_OR_URL",
    envvar=CATALOG_ENV,
    show_envvar=True,
    default=None,
    help=_CATALOG_HELP,
)
@click.pass_context
def cli(ctx: click.Context, location: str | None) -> None:
    """Catalog of MUSCLE3 checkpoint snapshots: import runs, query snapshots."""
    ctx.obj = Options(explicit=location)


def main() -> None:
    """Entry point of the ``muscle-catalog`` console script."""
    cli(prog_name="muscle-catalog")
