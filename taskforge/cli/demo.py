"""`taskforge demo`: the embedded default job. A small mixed dataset of every family, every gold answer
verified, a summary table. No GPU, no server, no download."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from taskforge.api import generate
from taskforge.cli.app import app, console, say
from taskforge.cli.data import progress_bar
from taskforge.io import write_jsonl
from taskforge.registry import families, get_generator
from taskforge.task import Task


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), "-o", "--out", help="folder for the demo dataset"),
    per_level: int = typer.Option(5, help="tasks per family and level"),
    seed: int = typer.Option(0),
) -> None:
    """Generate a mixed dataset of every family at every level, verify every gold answer, summarise."""
    out.mkdir(parents=True, exist_ok=True)
    table = Table(title="taskforge demo: every family, every level, gold answers verified")
    for col in ("family", "levels", "tasks", "gold passes", "difficulty", "gen ms/task", "verify ms/task"):
        table.add_column(col, no_wrap=col == "family")
    all_tasks: list[Task] = []
    failures = 0
    examples = {}
    with progress_bar() as bar:
        for family in families():
            gen = get_generator(family)
            n_levels = len(gen.levels)
            job = bar.add_task(family, total=n_levels * per_level * 2)
            t0 = time.perf_counter()
            tasks = []
            for level in range(n_levels):
                tasks.extend(generate(family, per_level, level=level, seed=seed))
                bar.advance(job, per_level)
            gen_time = time.perf_counter() - t0
            t0 = time.perf_counter()
            passed = 0
            for t in tasks:
                passed += gen.safe_verify(t, gen.gold_response(t)).passed
                bar.advance(job, 1)
            ver_time = time.perf_counter() - t0
            failures += len(tasks) - passed
            all_tasks.extend(tasks)
            examples[family] = tasks[len(tasks) // 2]
            diffs = [t.difficulty for t in tasks]
            table.add_row(
                family,
                str(n_levels),
                str(len(tasks)),
                f"{passed}/{len(tasks)}",
                f"{min(diffs):.1f}-{max(diffs):.1f}",
                f"{1e3 * gen_time / len(tasks):.2f}",
                f"{1e3 * ver_time / len(tasks):.3f}",
            )
    path = out / "demo.jsonl"
    write_jsonl(path, (t.to_dict() for t in all_tasks))
    for family, task in examples.items():
        prompt = task.prompt if len(task.prompt) < 600 else task.prompt[:600] + " [...]"
        console.rule(f"[bold]{family}[/] example (difficulty {task.difficulty:.1f})")
        console.print(prompt, highlight=False, markup=False)
    console.print(table)
    say(f"wrote {path} ({len(all_tasks)} tasks); try `taskforge stats {path}`")
    if failures:
        console.print(f"[red]{failures} gold answers failed their verifier[/]")
        raise typer.Exit(1)
