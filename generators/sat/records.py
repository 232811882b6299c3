"""Saturn records as `sat` tasks, and `sat` tasks as Saturn's released files (`taskforge export saturn`).

The parts of Saturn compatibility that need the SAT generator; Saturn's format itself (letters, prompt,
D(n,k,l), levels, record fields and record I/O) is in saturn.py, below the generator.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from taskforge.errors import ConfigError, DatasetError, GenerationError
from taskforge.generators.sat import SAT
from taskforge.generators.sat.saturn import (
    SATURN_TEST_LEVELS,
    SATURN_TRAIN_LEVELS,
    TEST_TAIL,
    task_to_record,
    test_file,
    train_folder,
    validate_record,
    write_records,
)
from taskforge.task import Task

_SAT = SAT()


def task_from_record(row: dict[str, Any]) -> Task:
    """A taskforge task row, or a Saturn record as a `sat` task (strict verification, as `taskforge eval`
    scores it by default); DatasetError for anything else. A results.jsonl row's `completions` are ignored.
    The one reader of "a tasks file, ours or Saturn's" for evaluation and for training datasets."""
    row = {k: v for k, v in row.items() if k != "completions"}
    if "family" in row and "check" in row:
        return Task.from_dict(row)
    if {"n_sat", "k", "clause", "solution"} <= set(row):
        return record_to_task(row, strict=True)
    raise DatasetError(f"not a taskforge task or Saturn record (fields: {sorted(row)[:8]})")


def record_to_task(record: dict[str, Any], *, strict: bool = False) -> Task:
    """A Saturn record as a `sat` Task (planted mode, letters format), keeping its clause order.

    `strict=False` (the default here) verifies as Saturn's reward does (no length check)."""
    n, k, clauses = validate_record(record)
    params = SAT.resolve_params(
        None, {"n": n, "k": k, "l": len(clauses), "mode": "planted", "format": "letters", "strict": strict}
    )
    return _SAT.build_task(
        params, clauses, record["solution"], meta={"saturn_id": record["id"]}, keep_order=True
    )


def level_records(
    level: tuple[int, int, int],
    count: int,
    *,
    seed: int,
    split: str,
    mode: str = "planted",
    on_record: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """`count` Saturn records of one level with distinct formulas, ids 0..count-1."""
    n, k, l = level
    params = SAT.resolve_params(None, {"n": n, "k": k, "l": l, "mode": mode, "format": "letters"})
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    index = 0
    # Saturn keeps only distinct (solution, formula) pairs; we keep distinct formulas, within a budget.
    while len(records) < count:
        if index >= 20 * count + 100:
            raise GenerationError(f"level {level} has too few distinct formulas for {count} records")
        task = _SAT.sample(params, seed, split, index)
        index += 1
        rec = task_to_record(task, len(records))
        if rec["clause"] in seen:
            continue
        seen.add(rec["clause"])
        records.append(rec)
        if on_record:
            on_record()
    return records


def export_saturn(
    out: str | os.PathLike[str],
    *,
    train_levels: Sequence[tuple[int, int, int]] = SATURN_TRAIN_LEVELS,
    test_levels: Sequence[tuple[int, int, int]] = SATURN_TEST_LEVELS,
    per_level: int = 100,
    seed: int = 0,
    mode: str = "planted",
    on_record: Callable[[], None] | None = None,
) -> list[Path]:
    """Write Saturn's layout under `out`; returns the files written.

    A training level gets `train/Train_prompt_{n}_{k}_{l}_{m}/train.jsonl` with ids 0..m-21 and `test.jsonl`
    with the last 20 (ids m-20..m-1), as Saturn's train_prompt.py splits them; an evaluation level gets
    `test/n{n}_k{k}_length{l}_sample{m}.jsonl`. Training levels draw from our `train` split and evaluation
    levels from our `test` split, so no evaluation formula can appear in training data of the same seed.
    """
    out = Path(out)
    written: list[Path] = []
    if train_levels and per_level <= TEST_TAIL:
        raise ConfigError(f"a training level needs more than {TEST_TAIL} records (Saturn's test tail)")
    for n, k, l in train_levels:
        recs = level_records((n, k, l), per_level, seed=seed, split="train", mode=mode, on_record=on_record)
        folder = out / train_folder(n, k, l, per_level)
        write_records(folder / "train.jsonl", recs[:-TEST_TAIL])
        write_records(folder / "test.jsonl", recs[-TEST_TAIL:])
        written += [folder / "train.jsonl", folder / "test.jsonl"]
    for n, k, l in test_levels:
        recs = level_records((n, k, l), per_level, seed=seed, split="test", mode=mode, on_record=on_record)
        path = out / test_file(n, k, l, per_level)
        write_records(path, recs)
        written.append(path)
    return written
