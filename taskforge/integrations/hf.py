"""Hugging Face `datasets`: tasks as a `datasets.Dataset` that TRL's GRPOTrainer trains on as it is.

Rows carry the columns of the curriculum stream's `as_hf_dataset` (so a file and a live stream are
interchangeable for the trainer): `prompt` (chat messages), `task` (the Task's JSON, what our reward
function `taskforge.trainers.rewards.TaskReward` reads), `task_id` and `family`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from taskforge.api import as_task
from taskforge.errors import MissingExtraError
from taskforge.io import read_tasks
from taskforge.task import Task


def features() -> Any:
    from datasets import Features, Value

    return Features(
        {
            "prompt": [{"role": Value("string"), "content": Value("string")}],
            "task": Value("string"),
            "task_id": Value("string"),
            "family": Value("string"),
        }
    )


def trainer_row(task: Task | dict[str, Any]) -> dict[str, Any]:
    """One trainer row from a Task or from a row of a file we wrote (e.g. read by `datasets.load_dataset`);
    usable with `Dataset.map(trainer_row, remove_columns=...)`."""
    task = as_task(task)
    return {
        "prompt": [{"role": m["role"], "content": m["content"]} for m in task.messages],
        "task": task.to_json(),
        "task_id": task.id,
        "family": task.family,
    }


def to_hf_dataset(path_or_tasks: str | Path | Iterable[Task]) -> Any:
    """A `datasets.Dataset` of trainer rows from a file `taskforge generate` wrote, or from Tasks."""
    try:
        from datasets import Dataset
    except ImportError:  # pragma: no cover - depends on the install
        raise MissingExtraError("to_hf_dataset needs `datasets`: pip install 'taskforge[train]'") from None
    tasks = read_tasks(path_or_tasks) if isinstance(path_or_tasks, str | Path) else path_or_tasks
    rows = [trainer_row(t) for t in tasks]
    return Dataset.from_list(rows, features=features())
