"""`taskforge check MODULE:CLASS`: the conformance suite on any generator."""

from __future__ import annotations

import typer

from taskforge.cli.app import app, console, fail
from taskforge.conformance import CheckResult, check_generator
from taskforge.registry import UnknownFamilyError


@app.command()
def check(
    target: str = typer.Argument(..., help="module:Class of a Generator, or a registered family name"),
    samples: int = typer.Option(4, help="tasks per level"),
    seed: int = typer.Option(0),
) -> None:
    """Determinism, gold passes, corrupted answers fail, garbage never crashes, monotone difficulty, disjoint seeds and splits."""

    def show(result: CheckResult) -> None:
        mark = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
        console.print(f"{mark} {result.name}" + (f": {result.detail}" if result.detail else ""), highlight=False)

    try:
        report = check_generator(target, samples=samples, seed=seed, on_check=show)
    except (ValueError, UnknownFamilyError) as exc:
        fail(str(exc))
    bad = len(report.failures())
    console.print(f"{report.family}: {len(report.results) - bad} passed, {bad} failed")
    if bad:
        raise typer.Exit(1)
