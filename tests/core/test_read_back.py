"""A task read back from any file we write is a Task: our Parquet rows, and rows that Hugging Face
`datasets` loads from our Parquet and JSONL files, verify like the Task itself."""

from __future__ import annotations

import dataclasses
import json

import pyarrow.parquet as pq
import pytest

import taskforge
from taskforge.io import DatasetSpec, write_dataset
from taskforge.task import Task


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The same mixed dataset (arithmetic and SAT: different params, check and meta keys) in both formats."""
    folder = tmp_path_factory.mktemp("read_back")
    spec = DatasetSpec(n=24, mix={"arithmetic": 1.0, "sat": 1.0}, level=2, seed=5)
    for suffix in (".jsonl", ".parquet"):
        write_dataset(spec, folder / f"mix{suffix}")
    tasks = [spec.task(i) for i in range(spec.n)]
    assert {t.family for t in tasks} == {"arithmetic", "sat"}
    return folder, tasks


def _assert_rows_are_the_tasks(rows, tasks, exact_floats=True):
    assert len(rows) == len(tasks)
    for row, task in zip(rows, tasks, strict=True):
        back = Task.from_dict(row)
        if not exact_floats:  # datasets' JSON reader keeps 10 decimals of a float; verifiers never read it
            assert back.difficulty == pytest.approx(task.difficulty, abs=1e-9)
            back = dataclasses.replace(back, difficulty=task.difficulty)
        assert back.to_json() == task.to_json()
        gen = taskforge.get_generator(task.family)
        assert taskforge.verify(row, gen.gold_response(task)).reason == "ok"
        assert taskforge.verify(row, "<answer>nope</answer>").passed is False


def test_a_parquet_row_is_a_task(written):
    folder, tasks = written
    rows = pq.read_table(folder / "mix.parquet").to_pylist()
    assert isinstance(rows[0]["check"], str)  # JSON text in the file
    _assert_rows_are_the_tasks(rows, tasks)


@pytest.mark.parametrize("fmt", ["parquet", "json"])
def test_rows_from_datasets_load_dataset_are_tasks(written, fmt):
    datasets = pytest.importorskip("datasets")
    folder, tasks = written
    path = folder / ("mix.parquet" if fmt == "parquet" else "mix.jsonl")
    ds = datasets.load_dataset(fmt, data_files=str(path), split="train", cache_dir=str(folder / f"hf-{fmt}"))
    _assert_rows_are_the_tasks(list(ds), tasks, exact_floats=fmt == "parquet")


def test_task_reward_scores_a_dataset_row(written):
    from taskforge.trainers.rewards import TaskReward

    folder, tasks = written
    rows = pq.read_table(folder / "mix.parquet").to_pylist()[:4]
    reward = TaskReward(group_size=1)
    gold = [taskforge.get_generator(t.family).gold_response(t) for t in tasks[:4]]
    column = [json.dumps(row) for row in rows]  # the README's recipe: the row as a `task` column
    assert reward(completions=gold, task=column) == [1.0] * 4
    assert reward(completions=["no"] * 4, task=column) == [0.0] * 4


def test_unreadable_rows_are_refused_not_guessed():
    task = next(taskforge.generate("arithmetic", 1))
    with pytest.raises(ValueError, match="check"):
        Task.from_dict({**task.to_dict(), "check": "{not json"})
    with pytest.raises(ValueError, match="lacks fields"):
        Task.from_dict({"id": task.id})
