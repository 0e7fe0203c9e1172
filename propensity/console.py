"""Shared pieces of the command line: one-line user errors, progress output, options."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from propensity.config import CONFIG_FILE, ConfigError
from propensity.faults import disk_fault

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help=f"Config file (default: ./{CONFIG_FILE} if present, else built-in defaults)."),
]

F = TypeVar("F", bound=Callable[..., Any])


class _NamedArgument(TyperArgument):
    """An argument shown by its metavar alone (CUSTOMER_ID), without a `<str>` type beside it."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def _help_conventions(params: list) -> list:
    """Flags (--help, --force, --write/--no-write) take no value: no `<bool>` beside them; an
    argument with a metavar is shown by that name alone."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
        elif type(param) is TyperArgument and param.metavar is not None:
            param.__class__ = _NamedArgument
    return params


class Command(TyperCommand):
    """A command whose help shows flags as flags, without a `<bool>` value."""

    def get_params(self, ctx: Any) -> list:
        return _help_conventions(super().get_params(ctx))


class Group(TyperGroup):
    """A command group whose help shows flags as flags, without a `<bool>` value."""

    def get_params(self, ctx: Any) -> list:
        return _help_conventions(super().get_params(ctx))


class App(typer.Typer):
    """`typer.Typer` whose groups and commands are `Group` and `Command` (the CLI's help conventions)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", Group)
        super().__init__(**kwargs)

    def command(self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any):
        return super().command(name, cls=cls or Command, **kwargs)


def _user_errors() -> tuple[type[Exception], ...]:
    from features.importer import ImportRefused
    from features.snapshots import CutoffError
    from features.load import WarehouseError
    from serving.sink import ScoringError
    from serving.target import TargetingError
    from training.customer_reasons import UnknownCustomer
    from training.dataset import TrainingDataError
    from training.track import RegistryError

    return (ConfigError, CutoffError, ImportRefused, WarehouseError, TrainingDataError, RegistryError, UnknownCustomer, ScoringError,
            TargetingError)


def friendly(fn: F) -> F:
    """Turn user-caused errors (and disk or permission faults) into one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _user_errors() as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
        except Exception as e:
            # A full disk, a read-only mount, a folder we may not write: the environment's
            # fault, not a bug; anything else keeps its traceback.
            fault = disk_fault(e)
            if fault is None:
                raise
            typer.echo(f"error: {fault.line()}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def say(message: str) -> None:
    """Progress and results go to stderr, so stdout stays clean for data."""
    typer.echo(message, err=True)


def parse_date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: use a date like 2024-06-30") from None
