"""What every command shares: our errors become one line on stderr and exit code 1 (DESIGN §7).

Signals that end a run (SIGINT, SIGTERM from ``kill``/batch schedulers/``timeout``, SIGHUP from a closed
terminal) all become :class:`Interrupted`, a ``KeyboardInterrupt`` raised in the main thread, so every
``finally`` and ``except BaseException`` on the way out removes its temporary files; the command then prints
one line and exits ``128 + signal`` (130, 143, 129) as shells do. Signals arriving during that cleanup are
ignored, so a storm of Ctrl-C cannot cut it short or print a traceback.
"""

from __future__ import annotations

import functools
import re
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import click

from impeccable.core.errors import ImpeccableError


#: The signals that end a command like Ctrl-C.
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """A signal ended the run (a KeyboardInterrupt, so cleanup code written for Ctrl-C runs for all of them).

    Attributes:
        signum: The signal number.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame: object) -> None:
    # Later signals must not cut the cleanup short (nor print a traceback from a thread's join).
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


def one_line_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command body: an ImpeccableError prints ``Error: <message>`` and exits 1, no traceback.

    Place it under ``@click.command`` (it wraps the plain function). SIGINT, SIGTERM and SIGHUP end it with
    one line too, after the cleanup, and exit ``128 + signal`` (Ctrl-C 130, ``kill`` 143, hang-up 129).
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        main = threading.current_thread() is threading.main_thread()
        previous = {sig: signal.signal(sig, _raise_interrupted) for sig in SIGNALS} if main else {}
        try:
            return command(*args, **kwargs)
        except ImpeccableError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt as exc:
            signum = getattr(exc, "signum", signal.SIGINT)
            click.echo(f"Error: interrupted by {signal.Signals(signum).name} | temporary files removed, "
                       f"nothing half-written was kept", err=True)
            previous = {}  # keep ignoring: the process is on its way out, quietly
            sys.exit(128 + signum)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    return wrapper


class UsageLineError(click.ClickException):
    """A wrong command line, shown as our one ``Error:`` line with exit code 1 (not click's usage block, exit 2)."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.message}", err=True)


def usage_line(exc: click.UsageError, command: str) -> str:
    """Click's usage error as ``what | received | expected | what to do``."""
    message = exc.format_message().rstrip(".")
    todo = f"see {command} --help"
    choice = re.match(r"Invalid value for '(.+?)': '(.*)' is not one of (.+)$", message)
    if choice:
        return f"invalid {choice[1]} | received {choice[2]} | expected one of {choice[3]} | {todo}"
    invalid = re.match(r"Invalid value for '(.+?)': (.+)$", message, re.S)
    if invalid:
        return f"invalid {invalid[1]} | {' '.join(invalid[2].split())} | {todo}"
    option = re.match(r"No such option:? '?([^'\s]+)'?\.?\s*(.*)$", message)
    if option:
        hint = f" ({option[2].rstrip('?').lower()}?)" if option[2] else ""
        return f"unknown option | received {option[1]} | expected an option of {command}{hint} | {todo}"
    missing = re.match(r"Missing (argument|option) '(.+?)'", message)
    if missing:
        return f"missing {missing[2]} | received nothing | expected {missing[2]} | {todo}"
    return f"{' '.join(message.split())} | {todo}"


class OneLineCommand(click.Command):
    """A click command whose usage errors (bad option value, unknown option, missing argument) are one line,
    exit 1, like every other error of the project (DESIGN §7); ``--help`` is click's."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise UsageLineError(usage_line(exc, ctx.command_path)) from exc


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
