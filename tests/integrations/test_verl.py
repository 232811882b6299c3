"""verl: the exported parquet follows verl's RL schema and gives back the task; compute_score is verl's
custom_reward_function. With the real `verl` importable, its RLHFDataset reads our file and its reward
loader calls our function (skipped otherwise: verl 0.9 pins transformers < 5.11, this project 5.23)."""

import json
import random

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import taskforge
from taskforge.cli import app
from taskforge.integrations.verl import compute_score, compute_verdict, task_from_verl_row
from taskforge.registry import get_generator

FAMILIES = {"arithmetic": 2, "sat": 2, "code": 1, "sql": 0, "json_schema": 1}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verl")
    tasks = []
    for family, level in FAMILIES.items():
        tasks += list(taskforge.generate(family, 2, level=level, seed=1))
        tasks += list(taskforge.generate(family, 1, level=level, seed=1, split="test"))
    src = tmp / "tasks.jsonl"
    src.write_text("".join(t.to_json() + "\n" for t in tasks))
    result = CliRunner().invoke(app, ["export", "verl", str(src), "--out", str(tmp / "verl")])
    assert result.exit_code == 0, result.output
    return tasks, tmp / "verl"


def test_rows_follow_verls_schema_and_give_back_the_task(exported):
    tasks, out = exported
    assert sorted(p.name for p in out.iterdir()) == ["test.parquet", "train.parquet"]
    table = pq.read_table(out / "train.parquet")
    assert table.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    rows = table.to_pylist() + pq.read_table(out / "test.parquet").to_pylist()
    by_id = {t.id: t for t in tasks}
    assert len(rows) == len(tasks)
    for row in rows:
        task = task_from_verl_row(row)
        assert task == by_id[task.id]
        assert row["data_source"] == f"taskforge/{task.family}" and row["ability"] == task.family
        assert row["prompt"] == task.messages and row["prompt"][-1]["role"] == "user"
        assert row["reward_model"]["style"] == "rule"
        assert row["extra_info"]["index"] == task.index and row["extra_info"]["task_id"] == task.id


def test_compute_score_gives_our_verdicts(exported):
    tasks, out = exported
    rng = random.Random(0)
    for row in pq.read_table(out / "train.parquet").to_pylist():
        task = task_from_verl_row(row)
        gen = get_generator(task.family)
        truth = row["reward_model"]["ground_truth"]
        kwargs = {"data_source": row["data_source"], "ground_truth": truth, "extra_info": row["extra_info"]}
        assert compute_score(solution_str=gen.gold_response(task), **kwargs) == {"score": 1.0, "acc": 1.0}
        wrong = gen.corrupt_answer(task, rng)
        if wrong is not None:
            assert compute_score(solution_str=wrong, **kwargs)["score"] == 0.0
        # verl passes extra keyword arguments (reward_kwargs, a router address): ignored, never an error
        assert compute_score(solution_str="", reward_router_address=None, **kwargs)["score"] == 0.0


@pytest.mark.parametrize("solution", [None, b"\x00", "<answer>" * 10_000, "\\boxed{" * 500, 12, ["x"]])
def test_compute_score_never_raises(exported, solution):
    tasks, _ = exported
    for truth in (
        tasks[0].to_json(),
        "",
        "{not json",
        json.dumps({"family": "nope"}),
        "[1, 2]",
        "null",
        None,
        7,
        [1],
    ):
        result = compute_score("taskforge/x", solution, truth, None)
        assert result["score"] == 0.0 and set(result) == {"score", "acc"}
    assert compute_verdict(solution, "{not json").reason == "error"


def test_export_verl_user_errors(tmp_path):
    result = CliRunner().invoke(
        app, ["export", "verl", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "no such file" in result.output
    (tmp_path / "bad.jsonl").write_text("{}\n")
    result = CliRunner().invoke(
        app, ["export", "verl", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "not a task record" in result.output


def test_real_verl_reads_our_files_and_calls_our_reward(exported, tmp_path):
    pytest.importorskip("verl", reason="verl is not installed (its 0.9 pins conflict with transformers 5.23)")
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.utils.dataset.rl_dataset import RLHFDataset

    import taskforge.integrations.verl as ours
    from taskforge.trainers.tiny import build_tiny_model

    tasks, out = exported
    tokenizer = AutoTokenizer.from_pretrained(build_tiny_model(tmp_path / "tiny"))
    config = OmegaConf.create(
        {"max_prompt_length": 100_000, "filter_overlong_prompts_workers": 1, "cache_dir": str(tmp_path / "c")}
    )
    dataset = RLHFDataset([str(out / "train.parquet")], tokenizer, config)
    assert len(dataset) == 2 * len(FAMILIES)
    for path in ("pkg://taskforge.integrations.verl", ours.__file__):
        reward_config = OmegaConf.create(
            {"reward": {"custom_reward_function": {"path": path, "name": "compute_score"}}}
        )
        score = get_custom_reward_fn(reward_config)
        for i in range(len(dataset)):
            item = dataset[i]
            task = taskforge.Task.from_json(item["reward_model"]["ground_truth"])
            assert item["raw_prompt"] == task.messages and item["index"] == task.index
            gold = get_generator(task.family).gold_response(task)
            # as verl's naive reward manager calls it, extra_info grown by the rollout
            extra = dict(item["extra_info"], num_turns=2, rollout_reward_scores={})
            got = score(
                data_source=item["data_source"],
                solution_str=gold,
                ground_truth=task.to_json(),
                extra_info=extra,
            )
            assert got == {"score": 1.0, "acc": 1.0}
            assert (
                score(data_source=item["data_source"], solution_str="no", ground_truth=task.to_json())[
                    "score"
                ]
                == 0.0
            )
