"""The typer application object and the helpers every command shares.

Errors: a command raises any `TaskforgeError` (or lets one through from the library); the one handler in
`_Group.invoke` prints it as one line and exits 2. Commands catch nothing themselves.
"""

from __future__ import annotations

from typing import Any, NoReturn

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from taskforge.errors import TaskforgeError

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Bad input: one clear line on stderr and exit code 2. The message is printed as written (a path
    like `runs/x[train].jsonl` or `pip install 'taskforge[train]'` is not Rich markup)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def say(message: str) -> None:
    """A plain line on stdout, printed as written (no markup, no highlighting)."""
    console.print(message, markup=False, highlight=False, soft_wrap=True)


class _Group(TyperGroup):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TaskforgeError as exc:
            fail(str(exc))
        except OSError as exc:  # a file the user named cannot be read or written
            fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))


app = typer.Typer(
    name="taskforge",
    help="Procedural verifiable tasks, curricula and GRPO training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Group,
)


@app.callback()
def _root() -> None:
    """Procedural verifiable tasks, curricula and GRPO training."""
