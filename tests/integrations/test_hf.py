"""`taskforge.to_hf_dataset`: a datasets.Dataset whose rows our TRL reward function scores as they are."""

import pytest

import taskforge
from taskforge.io import DatasetSpec, write_dataset
from taskforge.registry import get_generator

datasets = pytest.importorskip(
    "datasets", reason="datasets is not installed (pip install 'taskforge[train]')"
)

from taskforge.integrations.hf import trainer_row  # noqa: E402
from taskforge.trainers.rewards import TaskReward  # noqa: E402


def _score(ds):
    """Score every row the way TRL's GRPOTrainer calls a reward function: extra columns as kwargs."""
    tasks = [taskforge.Task.from_json(t) for t in ds["task"]]
    gold = [get_generator(t.family).gold_response(t) for t in tasks]
    reward = TaskReward(group_size=1)
    return reward(prompts=ds["prompt"], completions=gold, task=ds["task"]), reward(
        prompts=ds["prompt"], completions=["no idea"] * len(ds), task=ds["task"]
    )


@pytest.mark.parametrize("ext", [".jsonl", ".parquet"])
def test_rows_from_a_file_verify_as_they_are(tmp_path, ext):
    spec = DatasetSpec(n=12, mix={"arithmetic": 1, "sat": 1, "json_schema": 1}, level=1, seed=3)
    write_dataset(spec, tmp_path / f"t{ext}")
    ds = taskforge.to_hf_dataset(tmp_path / f"t{ext}")
    assert isinstance(ds, datasets.Dataset) and len(ds) == 12
    assert ds.column_names == ["prompt", "task", "task_id", "family"]
    assert ds[0]["prompt"][-1]["role"] == "user"
    good, bad = _score(ds)
    assert good == [1.0] * 12 and bad == [0.0] * 12


def test_tasks_and_load_dataset_paths_agree(tmp_path):
    tasks = list(taskforge.generate("arithmetic", 5, level=2, seed=8))
    from_tasks = taskforge.to_hf_dataset(tasks)
    assert from_tasks["task"] == [t.to_json() for t in tasks]
    # The README's path: `datasets.load_dataset` on what `taskforge generate` wrote, then `trainer_row`.
    write_dataset(DatasetSpec(n=5, family="arithmetic", level=2, seed=8), tmp_path / "t.parquet")
    raw = datasets.load_dataset("parquet", data_files=str(tmp_path / "t.parquet"), split="train")
    mapped = raw.map(trainer_row, remove_columns=raw.column_names)
    assert mapped["task"] == from_tasks["task"] and mapped["prompt"] == from_tasks["prompt"]
    good, _ = _score(mapped)
    assert good == [1.0] * 5


def test_a_plain_trl_grpo_trainer_trains_on_it(tiny_causal_lm, tmp_path):
    """The README's path: generate -> to_hf_dataset -> TRL's GRPOTrainer with our TaskReward, unchanged."""
    trl = pytest.importorskip("trl")
    model, tokenizer = tiny_causal_lm
    write_dataset(DatasetSpec(n=8, family="arithmetic", level=0, seed=2), tmp_path / "t.parquet")
    reward = TaskReward(group_size=4)
    config = trl.GRPOConfig(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        max_steps=2,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        report_to=[],
        save_strategy="no",
        seed=0,
    )
    trainer = trl.GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=config,
        train_dataset=taskforge.to_hf_dataset(tmp_path / "t.parquet"),
        processing_class=tokenizer,
    )
    trainer.train()
    assert trainer.state.global_step == 2
    assert sum(n for _, n in reward.history) == 2 * 4  # every completion of both steps got our reward
