"""`taskforge generate`, `verify` and `stats`: datasets in, datasets out."""

from __future__ import annotations

import json
import multiprocessing as mp
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from taskforge.api import level_label, verify_many
from taskforge.cli.app import app, console, fail, say
from taskforge.errors import DatasetError, TaskforgeError
from taskforge.io import (
    DatasetComplete,
    DatasetSpec,
    check_writable,
    distinct_estimate,
    read_jsonl,
    read_tasks,
    rows_kept,
    write_dataset,
    write_jsonl,
)
from taskforge.registry import generator_class, get_generator
from taskforge.task import Task


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def parse_params(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--param expects knob=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def parse_mix(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    mix = {}
    for part in text.split(","):
        name, sep, weight = part.partition("=")
        try:
            mix[name.strip()] = float(weight) if sep else 1.0
        except ValueError:
            fail(f"--mix expects family=weight,..., got {part!r}")
    return mix


@app.command()
def generate(
    family: str = typer.Argument(None, help="family name (see `taskforge list`); omit with --mix"),
    n: int = typer.Option(..., "-n", "--n", help="number of tasks"),
    out: Path = typer.Option(..., "-o", "--out", help="OUT.jsonl or OUT.parquet"),
    level: int = typer.Option(None, "--level", "-l", help="ladder level (0 = easiest)"),
    param: list[str] = typer.Option([], "--param", "-p", help="knob=value, repeatable"),
    mix: str = typer.Option(None, help="family=weight,... (each family at --level, or its default)"),
    seed: int = typer.Option(0, help="base seed"),
    split: str = typer.Option("train", help="train, val, test (disjoint) or any name"),
    workers: int = typer.Option(1, "--workers", "-w", help="generation processes"),
    resume: bool = typer.Option(False, help="complete a killed run of the same command"),
    ray: bool = typer.Option(
        False, "--ray", help="render blocks on a Ray cluster (pip install 'taskforge[ray]')"
    ),
    ray_address: str = typer.Option(
        "local", help="with --ray: local (start one), auto, or a cluster address"
    ),
    unique: bool = typer.Option(
        False, help="drop repeated task ids (first kept) and report how many distinct tasks the level holds"
    ),
) -> None:
    """Generate a dataset, streamed to disk, atomically, resumable."""
    if mix and param:
        fail("--param applies to one family; with --mix use --level")
    if mix and family:
        fail("give a family or --mix, not both")
    if ray and unique:
        fail("--unique is not available with --ray; generate without --ray to drop repeated ids")
    spec = DatasetSpec(
        n=n,
        family=family,
        mix=parse_mix(mix),
        level=level,
        params=parse_params(param),
        seed=seed,
        split=split,
        unique=unique,
    )
    if ray:
        from taskforge.cli.integrations import generate_on_ray

        return generate_on_ray(spec, out, ray_address, resume)
    try:
        spec.validate()
        bar, jobs = progress_bar(), []  # the bar starts with the first rows, not before a refusal

        def advance(k: int) -> None:
            if not jobs:
                bar.start()
                jobs.append(bar.add_task(f"generate {family or mix}", total=n))
            bar.advance(jobs[0], k)

        try:
            written = write_dataset(spec, out, workers=workers, resume=resume, progress=advance)
        finally:
            if jobs:
                bar.stop()
    except DatasetComplete:
        say(f"{out} is already complete ({n} tasks); nothing to do")
        return
    except KeyboardInterrupt:
        say(f"interrupted: {rows_kept(out)} of {n} rows kept; run the same command with --resume to finish")
        raise typer.Exit(130) from None
    if unique:
        say(unique_report(out, n))
        return
    say(f"wrote {out} ({n} tasks, {written} generated now)")


def unique_report(out: Path, n: int) -> str:
    kept = sum(1 for _ in read_tasks(out))
    if kept == n:
        return f"wrote {out} ({n} distinct tasks; no id repeated, so the level holds at least {n})"
    estimate = distinct_estimate(n, kept)
    return (
        f"wrote {out} ({kept} distinct tasks of {n} drawn, {n - kept} repeats dropped); "
        f"the level holds about {estimate} distinct tasks for this split"
    )


# ---- verify -------------------------------------------------------------------------------------
def _verify_chunk(items: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    tasks = [Task.from_json(task_json) for task_json, _ in items]
    pairs = [
        (task, k, response)
        for task, (_, responses) in zip(tasks, items, strict=True)
        for k, response in enumerate(responses)
    ]
    verdicts = verify_many([t for t, _, _ in pairs], [r for _, _, r in pairs])
    rows = []
    for (task, k, _), v in zip(pairs, verdicts, strict=True):
        parsed = v.parsed if isinstance(v.parsed, str | int | float | bool | type(None)) else str(v.parsed)
        rows.append(
            {
                "id": task.id,
                "sample": k,
                "passed": v.passed,
                "score": v.score,
                "reason": v.reason,
                "parsed": parsed,
                "details": v.details,
            }
        )
    return rows


def _response_lists(path: Path) -> Iterator[tuple[str, list[Any]]]:
    for row in read_jsonl(path):
        if "id" not in row or ("response" not in row and "responses" not in row):
            raise DatasetError(f"{path}: each line needs 'id' and 'response' or 'responses'")
        responses = row["responses"] if "responses" in row else [row["response"]]
        if not isinstance(responses, list):
            raise DatasetError(f"{path}: 'responses' must be a list")
        yield str(row["id"]), responses


@app.command()
def verify(
    tasks: Path = typer.Argument(..., help="tasks file (.jsonl or .parquet)"),
    responses: Path = typer.Argument(None, help='JSONL of {"id", "response"} or {"id", "responses": [...]}'),
    out: Path = typer.Option(None, "-o", "--out", help="write verdicts JSONL here"),
    gold: bool = typer.Option(False, help="verify every task's own gold answer"),
    workers: int = typer.Option(1, "--workers", "-w"),
) -> None:
    """Verify responses (or the gold answers) and print pass rates by family and level."""
    if responses is None and not gold:
        fail("give a RESPONSES file or --gold")
    if out is not None:
        check_writable(out)
    by_id = {t.id: t for t in read_tasks(tasks)}
    if not by_id:
        raise DatasetError(f"{tasks} holds no tasks: nothing to verify")
    if gold:
        pairs = [(t, [get_generator(t.family).gold_response(t)]) for t in by_id.values()]
    else:
        pairs = []
        for task_id, resp in _response_lists(responses):
            if task_id not in by_id:
                raise DatasetError(f"{responses}: response for unknown task id {task_id!r}")
            pairs.append((by_id[task_id], resp))
        if not pairs:
            raise DatasetError(f"{responses} holds no responses: nothing to verify")
    chunks = [[(t.to_json(), r) for t, r in pairs[i : i + 64]] for i in range(0, len(pairs), 64)]
    total = sum(len(r) for _, r in pairs)
    verdicts: list[dict[str, Any]] = []
    with progress_bar() as bar:
        job = bar.add_task("verify", total=total)
        if workers > 1:
            with mp.get_context("fork").Pool(workers) as pool:
                for rows in pool.imap(_verify_chunk, chunks):
                    verdicts.extend(rows)
                    bar.advance(job, len(rows))
        else:
            for chunk in chunks:
                rows = _verify_chunk(chunk)
                verdicts.extend(rows)
                bar.advance(job, len(rows))
    if out:
        write_jsonl(out, verdicts)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in verdicts:
        task = by_id[row["id"]]
        groups[(task.family, level_label(task))].append(row)
    table = Table(title="pass rate by family and level")
    for col in ("family", "level", "responses", "pass rate", "reasons"):
        table.add_column(col)
    for (family, level), rows in sorted(groups.items()):
        reasons = Counter(r["reason"] for r in rows)
        rate = sum(r["passed"] for r in rows) / len(rows)
        table.add_row(
            escape(family),
            escape(level),
            str(len(rows)),
            f"{rate:.3f}",
            ", ".join(f"{k} {v}" for k, v in reasons.most_common()),
        )
    console.print(table)
    if out:
        say(f"wrote {out} ({len(verdicts)} verdicts)")


# ---- stats --------------------------------------------------------------------------------------
@app.command()
def stats(file: Path = typer.Argument(..., help="tasks file (.jsonl or .parquet)")) -> None:
    """Counts by family, level and difficulty (DuckDB over the file)."""
    import duckdb

    if not file.exists():
        fail(f"no such file: {file}")
    if file.suffix == ".parquet":
        source = "read_parquet(?)"
    elif file.suffix == ".jsonl":
        source = (
            "read_json(?, format='newline_delimited', columns={family: 'VARCHAR', params: 'JSON', "
            "difficulty: 'DOUBLE', split: 'VARCHAR'})"
        )
    else:
        fail(f"stats reads .jsonl or .parquet files, got {file.name!r}")
    query = f"""
        SELECT family, split, CAST(params AS VARCHAR) AS params, difficulty, count(*) AS n
        FROM {source} GROUP BY ALL ORDER BY family, difficulty, split
    """
    try:
        rows = duckdb.connect().execute(query, [str(file)]).fetchall()
    except duckdb.Error as exc:
        fail(f"cannot read {file}: {str(exc).splitlines()[0]}")
    table = Table(title=escape(f"{file.name}: {sum(r[4] for r in rows)} tasks"))
    for col in ("family", "level", "split", "difficulty", "tasks", "params"):
        table.add_column(col, overflow="fold")
    for family, split, params, difficulty, count in rows:
        try:
            level = generator_class(family).level_of(json.loads(params))
        except (TaskforgeError, ValueError):
            level = None
        table.add_row(
            escape(family),
            "custom" if level is None else f"L{level}",
            escape(split),
            f"{difficulty:.2f}",
            str(count),
            escape(params),
        )
    console.print(table)
