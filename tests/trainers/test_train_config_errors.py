"""`taskforge train` on a bad YAML, as a user meets it: exit 2 and one line that names the key and what is
valid, before any model loads. The model folder here is a bare `config.json`: loading it would crash with
a traceback (exit 1), so an exit 2 also shows the check came first. Found by writing the README's YAML
by hand with one mistake at a time (issue 17's options: dataset, greso, surface, length_reward)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

import taskforge
from taskforge.cli import app

GRPO = {"max_steps": 2, "num_generations": 4, "per_device_train_batch_size": 8, "max_completion_length": 8}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    pytest.importorskip("trl")
    root = tmp_path_factory.mktemp("user")
    (root / "model").mkdir()
    (root / "model" / "config.json").write_text("{}")
    good = root / "train.jsonl"
    good.write_text("".join(t.to_json() + "\n" for t in taskforge.generate("arithmetic", 4, level=0, seed=1)))
    (root / "empty.jsonl").write_text("")
    (root / "notes.txt").write_text("3 x 6 = 18\n")
    (root / "garbage.jsonl").write_text("not json\n")
    (root / "other.jsonl").write_text(json.dumps({"question": "3 x 6", "answer": 18}) + "\n")
    (root / "no_tasks").mkdir()
    (root / "no_tasks" / "README.md").write_text("nothing here\n")
    return root


def _train(root, out, change):
    raw = {"model": str(root / "model"), "output_dir": str(out), "seed": 0}
    raw.update({"dataset": str(root / "train.jsonl"), "grpo": GRPO})
    raw.update(change)
    for key in [k for k, v in raw.items() if v is None]:
        del raw[key]
    path = out.parent / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return CliRunner().invoke(app, ["train", str(path)])


STREAM = {"dataset": None, "tasks": [{"family": "arithmetic", "curriculum": True}]}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # wrong scalar types were int()/float()/bool() conversions: a traceback, or "false" read as true
        ({"seed": "zero"}, "seed must be an integer, got 'zero'"),
        ({"format_reward": "x"}, "format_reward must be a number"),
        ({"use_vllm": "false"}, "use_vllm must be a boolean, got 'false'"),
        ({**STREAM, "eval_every": "ten"}, "eval_every must be an integer"),
        ({"grpo": [1]}, "grpo must be a mapping"),
        (
            {"dataset": None, "tasks": [{"family": "arithmetic", "weight": "x"}]},
            "arithmetic: weight must be a number",
        ),
        ({**STREAM, "eval_every": 1, "eval": {"samples": "four"}}, "eval.samples must be an integer"),
        ({**STREAM, "controller": 3}, "controller must be a name or a mapping"),
        # length_reward: a misspelt key was reported as a missing method; bad setting types as int()'s text
        ({"length_reward": {"methd": "laser"}}, "unknown length_reward keys ['methd']; valid:"),
        ({"length_reward": {"method": "lasr"}}, "length_reward.method must be one of laser, laser_d"),
        ({"length_reward": {"method": "laser", "weight": -0.2}}, "length_reward.weight must be a number > 0"),
        ({"length_reward": {"method": "laser", "weight": True}}, "length_reward.weight must be a number > 0"),
        (
            {"length_reward": {"method": "laser_d", "window": "big"}},
            "length_reward.window must be an integer",
        ),
        ({"length_reward": {"method": "laser", "target": 12.7}}, "length_reward.target must be an integer"),
        # greso: one message for five settings, a str compared with a float, 6.5 truncated, "no" as true
        (
            {"greso": {"p_min": 0.6, "p_start": 0.5}},
            "greso.p_min must be in (0, p_start] = (0, 0.5], got 0.6",
        ),
        ({"greso": {"step": -0.1}}, "greso.step must be > 0, got -0.1"),
        ({"greso": {"target": 2}}, "greso.target must be in [0, 1), got 2"),
        ({"greso": {"p_start": "half"}}, "greso.p_start must be a number, got 'half'"),
        ({"greso": {"adapt_every": 6.5}}, "greso.adapt_every must be an integer >= 1"),
        ({"greso": {"enabled": "no"}}, "greso.enabled must be a boolean, got 'no'"),
        ({"greso": {"enabld": True}}, "unknown greso keys ['enabld']; valid: enabled, p_start"),
        ({**STREAM, "greso": {"enabled": True}}, "greso filters a fixed dataset"),
        # surface: an empty list read as "unknown form(s) []"; `all` among others as unknown `all`
        ({"surface": []}, "surface must be random, all, a form name or a list of them, got []; forms: plain"),
        ({"surface": ["qa", "fancy"]}, "unknown surface form(s) ['fancy']; valid: all, plain"),
        ({"surface": ["all", "qa"]}, "`all` stands alone"),
        # dataset: "" searched the working folder; wrong files failed after TRL's import, or with int()'s text
        ({"dataset": ""}, "dataset is empty; give a tasks file (.jsonl or .parquet)"),
        ({"dataset": 5}, "dataset must be the path of a tasks file"),
        ({"dataset": ["a.jsonl"]}, "dataset takes one path"),
        ({"dataset": "missing.jsonl"}, "does not exist"),
        ({"dataset": "<root>/empty.jsonl"}, "is empty (no tasks)"),
        ({"dataset": "<root>/notes.txt"}, "unknown file type '.txt'; valid: .jsonl or .parquet"),
        ({"dataset": "<root>/garbage.jsonl"}, "garbage.jsonl:1 is not valid JSON"),
        ({"dataset": "<root>/other.jsonl"}, "other.jsonl:1 is not a task record"),
        ({"dataset": "<root>/no_tasks"}, "holds no .jsonl or .parquet files"),
        ({"tasks": [{"family": "arithmetic"}]}, "either `tasks` (a generated stream) or `dataset`"),
    ],
)
def test_bad_training_yaml_is_one_line_before_the_model(files, tmp_path, change, expected):
    change = {k: v.replace("<root>", str(files)) if isinstance(v, str) else v for k, v in change.items()}
    res = _train(files, tmp_path / "out", change)
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], res.output
    assert not (tmp_path / "out").exists()  # nothing written: it stopped before the run started


@pytest.mark.parametrize("steps", ["0", "-3"])
def test_max_steps_override_is_checked_with_the_config(files, tmp_path, steps):
    """`--max-steps` was applied after validation: 0 failed inside transformers, with a traceback, once the
    model had loaded (here the bare model folder would crash instead of exit 2)."""
    path = tmp_path / "cfg.yaml"
    raw = {"model": str(files / "model"), "output_dir": str(tmp_path / "out"), "grpo": GRPO}
    path.write_text(yaml.safe_dump({**raw, "dataset": str(files / "train.jsonl")}))
    res = CliRunner().invoke(app, ["train", str(path), "--max-steps", steps])
    assert (
        res.exit_code == 2
        and f"grpo.max_steps must be an integer > 0 (or --max-steps N), got {steps}" in res.output
    )


def test_sft_config_types_are_checked_too(files, tmp_path):
    path = tmp_path / "warm.yaml"
    raw = {"model": str(files / "model"), "output_dir": str(tmp_path / "out"), "tasks": ["arithmetic"]}
    path.write_text(yaml.safe_dump({**raw, "seed": "zero", "sft": {"max_steps": 1}}))
    res = CliRunner().invoke(app, ["sft", str(path)])
    assert res.exit_code == 2 and "seed must be an integer, got 'zero'" in res.output


def test_what_yaml_writes_naturally_is_accepted(files):
    """The strict types refuse only what was wrong: an integral float is an integer, `off`/`no` unquoted are
    YAML booleans, and a comma-separated string of forms is a list."""
    from taskforge.trainers.config import load_config

    cfg = load_config(
        {
            "model": files / "model",  # from Python, a Path
            "output_dir": str(files / "out"),
            "seed": 3.0,
            "dataset": str(files / "train.jsonl"),
            "grpo": GRPO,
            "greso": {"adapt_every": 32.0},
            "surface": "qa, numbers",
            "use_vllm": yaml.safe_load("off"),
            "length_reward": {"method": "shorter_better", "scale": 16},
        }
    )
    assert cfg.seed == 3 and isinstance(cfg.seed, int) and cfg.greso["adapt_every"] == 32
    assert cfg.surface == ["qa", "numbers"] and cfg.use_vllm is False and cfg.model == str(files / "model")
