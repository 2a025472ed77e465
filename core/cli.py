"""What every command shares: our errors become one line on stderr and exit code 1 (DESIGN §7)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from impeccable.core.errors import ImpeccableError


def one_line_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command body: an ImpeccableError prints ``Error: <message>`` and exits 1, no traceback.

    Place it under ``@click.command`` (it wraps the plain function). Ctrl-C exits 130 with one line too.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ImpeccableError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Error: interrupted | nothing half-written was kept", err=True)
            sys.exit(130)

    return wrapper


def parse_shape(text: str, n: int = 3, name: str = "shape") -> tuple[int, ...]:
    """Parse ``"1259,300,300"`` (or ``"64x128"``) into a tuple of ``n`` positive ints, or raise a click error."""
    parts = text.replace("x", ",").split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != n or min(values, default=0) <= 0:
        raise click.BadParameter(f"received {text!r}, expected {n} positive integers like "
                                 f"{','.join(['64'] * n)}", param_hint=name)
    return values
