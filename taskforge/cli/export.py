"""`taskforge export saturn`: SAT tasks written as Saturn's released data (file names, fields, prompt, split)."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from taskforge.cli.app import app, fail, say
from taskforge.cli.data import progress_bar
from taskforge.generators.sat.records import export_saturn
from taskforge.generators.sat.saturn import (
    MAX_LETTER_VARS,
    SATURN_TEST_LEVELS,
    SATURN_TRAIN_LEVELS,
    TEST_TAIL,
)
from taskforge.io import check_writable

export_app = typer.Typer(help="Export tasks in other projects' formats.", no_args_is_help=True)
app.add_typer(export_app, name="export")

_LEVEL = re.compile(r"\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*")


def parse_levels(items: list[str]) -> list[tuple[int, int, int]]:
    """`--level 3,5,20` (repeatable; one value may also hold several, separated by spaces or ';')."""
    levels = []
    for item in items:
        for part in re.split(r"[;\s]+", item.strip()):
            m = _LEVEL.fullmatch(part)
            if not m:
                fail(f"--level expects n,k,l (e.g. 3,5,20), got {part!r}")
            n, k, l = (int(g) for g in m.groups())
            if not 1 <= n <= k <= MAX_LETTER_VARS or l < 1:
                fail(
                    f"--level {part}: Saturn's letters format needs 1 <= n <= k <= {MAX_LETTER_VARS} and l >= 1"
                )
            levels.append((n, k, l))
    return levels


@export_app.command("saturn")
def saturn(
    out: Path = typer.Option(..., "--out", "-o", help="output folder (gets train/ and/or test/)"),
    level: list[str] = typer.Option([], "--level", help="n,k,l (repeatable); default: Saturn's own levels"),
    per_level: int = typer.Option(
        100, "--per-level", help="records per level (train levels: last 20 -> test.jsonl)"
    ),
    seed: int = typer.Option(0, help="base seed"),
    kind: str = typer.Option(
        "both", help="train: Train_prompt_* folders; test: test/n*_k*_length*_sample*.jsonl; both"
    ),
    mode: str = typer.Option("planted", help="planted (Saturn's construction), random or unique"),
) -> None:
    """Write SAT tasks in Saturn's layout: train/Train_prompt_{n}_{k}_{l}_{m}/{train,test}.jsonl and
    test/n{n}_k{k}_length{l}_sample{m}.jsonl, records {id, n_sat, k, solution, clause, prompt}.

    Without --level: Saturn's four training levels and ten evaluation levels."""
    if kind not in ("train", "test", "both"):
        fail(f"--kind expects train, test or both, got {kind!r}")
    if mode not in ("planted", "random", "unique"):
        fail(f"--mode expects planted, random or unique, got {mode!r}")
    if per_level < 1:
        fail(f"--per-level must be at least 1, got {per_level}")
    levels = parse_levels(level)
    train_levels = (levels or list(SATURN_TRAIN_LEVELS)) if kind in ("train", "both") else []
    test_levels = (levels or list(SATURN_TEST_LEVELS)) if kind in ("test", "both") else []
    if train_levels and per_level <= TEST_TAIL:
        fail(
            f"a training level keeps its last {TEST_TAIL} records for test.jsonl: --per-level must exceed "
            f"{TEST_TAIL} (or use --kind test)"
        )
    total = per_level * (len(train_levels) + len(test_levels))
    check_writable(out, folder=True)
    with progress_bar() as bar:
        job = bar.add_task("export saturn", total=total)
        written = export_saturn(
            out,
            train_levels=train_levels,
            test_levels=test_levels,
            per_level=per_level,
            seed=seed,
            mode=mode,
            on_record=lambda: bar.advance(job),
        )
    for path in written:
        say(f"wrote {path}")
