"""`taskforge check MODULE:CLASS`: the conformance suite on any generator."""

from __future__ import annotations

import typer
from rich.markup import escape

from taskforge.cli.app import app, console, say
from taskforge.conformance import CheckResult, check_generator


@app.command()
def check(
    target: str = typer.Argument(..., help="module:Class of a Generator, or a registered family name"),
    samples: int = typer.Option(4, help="tasks per level"),
    seed: int = typer.Option(0),
) -> None:
    """Determinism, gold passes, corrupted answers fail, garbage never crashes, monotone difficulty, disjoint seeds and splits."""

    def show(result: CheckResult) -> None:
        mark = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
        detail = f": {escape(result.detail)}" if result.detail else ""
        console.print(f"{mark} {escape(result.name)}{detail}", highlight=False)

    report = check_generator(target, samples=samples, seed=seed, on_check=show)
    bad = len(report.failures())
    say(f"{report.family}: {len(report.results) - bad} passed, {bad} failed")
    if bad:
        raise typer.Exit(1)
