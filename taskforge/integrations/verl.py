"""verl: our tasks as verl's RL parquet files, our verifiers as its `custom_reward_function`.

A row of verl's RL dataset (what `verl.utils.dataset.rl_dataset.RLHFDataset` reads, checked against
verl 0.9.1's source): `data_source`, `prompt` (chat messages), `ability`,
`reward_model: {style: "rule", ground_truth}` and `extra_info` (a struct; verl reads `index` from it).
verl's reward managers call `compute_score(data_source=, solution_str=, ground_truth=, extra_info=, **kw)`
with the decoded response only; a dict result must hold `score` and every other key becomes a logged
metric that verl averages, so only numbers go there. `ground_truth` is therefore the whole task (its
JSON): the reward needs nothing else, and the task is recoverable from any row.

    data.train_files=DIR/train.parquet
    reward.custom_reward_function.path=pkg://taskforge.integrations.verl
    reward.custom_reward_function.name=compute_score
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from taskforge.registry import get_generator
from taskforge.task import Task, Verdict

DATA_SOURCE_PREFIX = "taskforge/"
WRITE_ROWS = 4096
VERL_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        (
            "extra_info",
            pa.struct(
                [
                    ("index", pa.int64()),
                    ("split", pa.string()),
                    ("task_id", pa.string()),
                    ("family", pa.string()),
                    ("difficulty", pa.float64()),
                ]
            ),
        ),
    ]
)


def task_to_verl_row(task: Task) -> dict[str, Any]:
    return {
        "data_source": DATA_SOURCE_PREFIX + task.family,
        "prompt": [{"role": m["role"], "content": m["content"]} for m in task.messages],
        "ability": task.family,
        "reward_model": {"style": "rule", "ground_truth": task.to_json()},
        "extra_info": {
            "index": task.index,
            "split": task.split,
            "task_id": task.id,
            "family": task.family,
            "difficulty": task.difficulty,
        },
    }


def task_from_verl_row(row: dict[str, Any]) -> Task:
    """The task a verl row was written from."""
    return Task.from_json(row["reward_model"]["ground_truth"])


def export_verl(
    tasks: Iterable[Task], out_dir: str | Path, *, on_task: Callable[[], None] | None = None
) -> list[Path]:
    """Write `DIR/<split>.parquet` for each split among `tasks` (verl's train_files / val_files)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writers: dict[str, tuple[Path, pq.ParquetWriter]] = {}
    buffers: dict[str, list[dict[str, Any]]] = {}

    def flush(split: str) -> None:
        if buffers.get(split):
            writers[split][1].write_table(pa.Table.from_pylist(buffers[split], schema=VERL_SCHEMA))
            buffers[split] = []

    try:
        for task in tasks:
            split = task.split or "train"
            if split not in writers:
                final = out_dir / f"{split}.parquet"
                tmp = final.with_name(final.name + ".tmp")
                writers[split] = (final, pq.ParquetWriter(tmp, VERL_SCHEMA))
                buffers[split] = []
            buffers[split].append(task_to_verl_row(task))
            if len(buffers[split]) >= WRITE_ROWS:
                flush(split)
            if on_task:
                on_task()
        for split in writers:
            flush(split)
    finally:
        for _, writer in writers.values():
            writer.close()
    written = []
    for final, _ in writers.values():
        final.with_name(final.name + ".tmp").replace(final)
        written.append(final)
    return written


@functools.lru_cache(maxsize=4096)
def _task(ground_truth: str) -> Task:
    # The G responses of a prompt share one ground_truth string: parse it once.
    return Task.from_json(ground_truth)


def compute_verdict(solution_str: Any, ground_truth: Any) -> Verdict:
    """Our Verdict for a verl (solution_str, ground_truth) pair; never raises."""
    try:
        task = _task(ground_truth)
        gen = get_generator(task.family)
    except Exception as exc:  # a reward function inside verl's loop must return, whatever the row holds
        return Verdict.fail("error", error=f"ground_truth is not a taskforge task: {str(exc)[:200]}")
    return gen.safe_verify(task, solution_str)


def compute_score(
    data_source: Any = None,
    solution_str: Any = None,
    ground_truth: Any = None,
    extra_info: Any = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's `custom_reward_function`: `score` is the verdict's score (1.0 pass, 0.0 otherwise), `acc`
    whether it passed. Extra keyword arguments verl passes (reward_kwargs, router addresses) are ignored."""
    verdict = compute_verdict(solution_str, ground_truth)
    return {"score": float(verdict.score), "acc": float(verdict.passed)}
