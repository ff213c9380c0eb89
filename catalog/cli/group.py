"""The ``muscle-catalog`` command group: its global options, error reporting and entry point.

Every subcommand (one module per group of commands in this package) gets the
catalog location through :func:`options` and opens the catalog with
:meth:`Options.open`. Errors a user can cause (a wrong path, an unreachable
or outdated catalog, a broken file) are printed as one ``Error: ...`` line on
stderr with exit code 1, never as a traceback: they are the user's to fix,
and the message says how. Usage errors (a wrong option) keep click's exit
code 2.

Start-up is kept light: the group knows its commands by name (:data:`COMMANDS`)
and imports a command's module only when that command runs, so
``muscle-catalog --help`` imports neither SQLAlchemy nor rich nor numpy, and
each command imports what it needs inside its function.
"""

from __future__ import annotations

import functools
import importlib
import os
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from catalog.errors import CatalogError, CatalogNotFoundError
from catalog.location import (
    CATALOG_ENV,
    DEFAULT_CATALOG_NAME,
    CatalogChoice,
    choose_catalog,
    display_location,
    sqlite_file,
    sqlite_path,
    to_url,
)

if TYPE_CHECKING:
    from catalog.catalog import Catalog

#: Every command: the module that defines it (imported when the command runs)
#: and its one-line help, shown by ``muscle-catalog --help`` without importing
#: the module. A test holds each line equal to the command's own.
COMMANDS: dict[str, tuple[str, str]] = {
    "copy": (
        "catalog.cli.housekeeping",
        "Copy every record of the catalog SOURCE into TARGET (paths or URLs), merging.",
    ),
    "du": (
        "catalog.cli.housekeeping",
        "Show the snapshots' counts and recorded bytes, present and deleted.",
    ),
    "forget": (
        "catalog.cli.housekeeping",
        "Remove RUN (name or id) and its snapshots from the catalog; its files stay.",
    ),
    "gc": (
        "catalog.cli.housekeeping",
        "Delete the snapshot files a retention policy does not keep (a dry run without --yes).",
    ),
    "import": (
        "catalog.cli.runs",
        "Record existing MUSCLE3 run directories (any version); re-importing adds nothing.",
    ),
    "init": (
        "catalog.cli.schema",
        "Create a campaign's catalog: DIR/snapshot_catalog.sqlite (default: the current "
        "directory).",
    ),
    "lineage": (
        "catalog.cli.runs",
        "Show the chain of runs RUN (name or id) resumed from, back to the first.",
    ),
    "reindex": (
        "catalog.cli.workflows",
        "Recompute workflow snapshots from the recorded snapshots, in recorded order.",
    ),
    "relocate": (
        "catalog.cli.verify",
        "Rewrite every stored path under OLD_DIR to NEW_DIR (a moved or copied run or campaign).",
    ),
    "plot": (
        "catalog.cli.plot",
        "Draw a timeline of the snapshots of runs, their workflow snapshots and resume points.",
    ),
    "resume": ("catalog.cli.workflows", "Write the resume yMMSL file of a workflow snapshot."),
    "runs": (
        "catalog.cli.runs",
        "List the runs of the campaign: status, counts, and which run each resumed from.",
    ),
    "show": (
        "catalog.cli.snapshots",
        "Show one snapshot's metadata and message, read from its file.",
    ),
    "snapshots": ("catalog.cli.snapshots", "List recorded snapshots, in run and recorded order."),
    "upgrade": (
        "catalog.cli.schema",
        "Upgrade the catalog's schema to this release (SQLite files are backed up first).",
    ),
    "verify": (
        "catalog.cli.verify",
        "Check recorded snapshot files, snapshot directories and workflow snapshots.",
    ),
    "watch": (
        "catalog.cli.watch",
        "Record run directories while muscle_manager runs them; exits when the runs end.",
    ),
    "workflows": (
        "catalog.cli.workflows",
        "List workflow snapshots (resume points), in the order they were found.",
    ),
}

#: Set to 1 to see the traceback of an unexpected error instead of its one line.
TRACEBACK_ENV = "MUSCLE_CATALOG_TRACEBACK"


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

    def open(self, ctx: click.Context, *, create: bool, read_only: bool = False) -> Catalog:
        """Open the catalog for the rest of the command (closed when it ends).

        Args:
            ctx: The command's context, which closes the catalog afterwards.
            create: Create the catalog if it does not exist (``import``);
                query commands refuse instead, so a typo in ``--catalog``
                does not leave an empty catalog behind.
            read_only: The command only reads: the catalog is opened so that
                nothing can write it (see :func:`catalog.catalog.open_catalog`).

        Raises:
            CatalogError: ``create`` is False and there is no catalog; the
                message says where it looked and how to make one.
        """
        from catalog.catalog import open_catalog

        if not create:
            self.require_existing()
        catalog = open_catalog(self.location, create=create, read_only=read_only)
        ctx.call_on_close(catalog.close)
        return catalog

    def sqlite_path(self) -> Path | None:
        """The SQLite file of the catalog, or None (PostgreSQL); for a path, without SQLAlchemy."""
        return sqlite_path(self.location) or sqlite_file(to_url(self.location))

    def require_existing(self) -> None:
        """Refuse (with where it looked, and the fix) when the chosen catalog does not exist.

        Raises:
            CatalogNotFoundError: There is no catalog to use.
        """
        if not self.choice.found:
            raise CatalogNotFoundError(self.choice.not_found_message())
        db_file = self.sqlite_path()
        if db_file is not None and not db_file.exists():
            raise CatalogNotFoundError(
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

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, without importing any command's module."""
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command of this name, importing its module (which registers it) on first use."""
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(COMMANDS[cmd_name][0])
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The help's command list, from :data:`COMMANDS` for commands not imported yet."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is not None:
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                stand_in = click.Command(name, help=COMMANDS[name][1])  # shortened as click does
                rows.append((name, stand_in.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except CatalogError as exc:
            raise click.ClickException(one_line(str(exc))) from exc
        except sqlite3.Error as exc:
            raise click.ClickException(_database_error(ctx, exc)) from exc
        except OSError as exc:
            raise click.ClickException(one_line(str(exc))) from exc
        except Exception as exc:
            if _is_database_error(exc):
                raise click.ClickException(_database_error(ctx, exc)) from exc
            if os.environ.get(TRACEBACK_ENV):
                raise
            raise click.ClickException(
                f"Unexpected {type(exc).__name__}: {one_line(str(exc))} (a bug: please report "
                f"it; set {TRACEBACK_ENV}=1 to see where it happened)"
            ) from exc


def _is_database_error(exc: Exception) -> bool:
    """Whether ``exc`` is SQLAlchemy's (checked without importing SQLAlchemy when unused)."""
    if "sqlalchemy" not in sys.modules:
        return False
    from sqlalchemy.exc import SQLAlchemyError

    return isinstance(exc, SQLAlchemyError)


def _database_error(ctx: click.Context, exc: Exception) -> str:
    """A database error as one line naming the catalog (psycopg's messages span lines).

    Only a PostgreSQL catalog is told to check its server: a SQLite file
    has none, and there the cause itself (locked, read-only, corrupt) says
    what is wrong.
    """
    cause = one_line(str(getattr(exc, "orig", None) or exc))
    options = ctx.find_object(Options)
    where = options.display if options is not None else "the catalog"
    if "readonly database" in cause:
        return (
            f"The catalog is read-only: {where} cannot be written here ({cause}); "
            "nothing was changed."
        )
    if options is not None and sqlite_path(options.location) is None:
        backend = options.location.split(":", 1)[0]
        if backend.startswith("postgresql"):
            return (
                f"Cannot use the catalog {where} ({cause}). Check the --catalog URL "
                f"(or {CATALOG_ENV}) and that the database server is running."
            )
    return f"Cannot use the catalog {where} ({cause}). Check the --catalog path or {CATALOG_ENV}."


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
