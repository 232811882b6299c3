"""The typer application object and the helpers every command shares."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

app = typer.Typer(
    name="taskforge",
    help="Procedural verifiable tasks, curricula and GRPO training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> NoReturn:
    """Bad input: one clear line on stderr and exit code 2."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.callback()
def _root() -> None:
    """Procedural verifiable tasks, curricula and GRPO training."""
