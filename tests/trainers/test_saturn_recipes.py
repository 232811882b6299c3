"""Saturn's recipes and curriculum on CPU: both recipes load, run 2 GRPO steps with the tiny model in place
of the base model (short generations), evaluate on entering the start level with the policy, and hand
Saturn's -1 to GRPO; `controller: {name: saturn}` works from a plain YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("trl")

from taskforge.trainers.config import ConfigError, load_config  # noqa: E402
from taskforge.trainers.grpo import train  # noqa: E402
from taskforge.trainers.policy_eval import PolicyEvaluator  # noqa: E402

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from taskforge.trainers.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def cpu_recipe(name: str, model: Path, out: Path) -> dict:
    """The recipe as shipped, with the tiny model, no vLLM and lengths a CPU test can afford."""
    raw = yaml.safe_load((RECIPES / name).read_text())
    raw.update(model=str(model), output_dir=str(out), use_vllm=False)
    raw["grpo"].update(max_steps=2, max_completion_length=8, save_strategy="no", gradient_checkpointing=False)
    raw["controller"].update(eval_size=2, eval_samples=2, eval_max_tokens=8)
    return raw


@pytest.mark.parametrize(
    ("name", "start", "lr", "temperature", "length"),
    [("saturn-1.5b.yaml", (3, 5, 5), 5e-7, 0.8, 10_000), ("saturn-7b.yaml", (3, 5, 13), 4e-7, 1.0, 8192)],
)
def test_recipe_loads_and_runs_two_steps(tiny_model, tmp_path, name, start, lr, temperature, length):
    shipped = yaml.safe_load((RECIPES / name).read_text())
    g = shipped["grpo"]
    assert (g["num_generations"], g["per_device_train_batch_size"], g["steps_per_generation"]) == (8, 2, 8)
    assert (g["learning_rate"], g["beta"], g["temperature"], g["max_completion_length"]) == (
        lr,
        1e-3,
        temperature,
        length,
    )
    assert shipped["reward"] == "saturn" and shipped["controller"]["iterations"] == 2

    cfg = load_config(cpu_recipe(name, tiny_model, tmp_path / "run"))
    result = train(cfg)
    assert result.global_step == 2
    ctrl = result.stream.mixture.controllers["sat"]
    assert ctrl.space.cell(ctrl.current) == dict(zip("nkl", start, strict=True))
    # Only l moves, and Saturn's benchmark levels (3,5,20), (3,5,25) are not on the ladder.
    ladder = [ctrl.space.cell(c) for c in ctrl.ladder]
    assert {(c["n"], c["k"]) for c in ladder} == {(3, 5)}
    assert not {c["l"] for c in ladder} & {20, 25}
    # The estimation step ran before training: 2 held-out tasks x 2 samples, recorded, at the start level.
    assert ctrl.history and ctrl.history[0][1] == ctrl.ladder.index(ctrl.current) and ctrl.eval_rollouts >= 4
    log = [json.loads(line) for line in Path(result.log_path).read_text().splitlines()]
    evals = [r for r in log if r.get("event") == "eval"]
    first_observe = next(i for i, r in enumerate(log) if r.get("event") == "observe")
    assert evals and log.index(evals[0]) < first_observe
    # Saturn's reward reaches GRPO as it is: a random tiny model writes no box, so -1 shows up.
    rewards = {r for rec in log if rec.get("event") == "observe" for r in rec["rewards"]}
    assert rewards <= {-1.0, 0.0, 1.0} and -1.0 in rewards


def test_saturn_controller_works_from_a_plain_yaml(tiny_model, tmp_path):
    """`controller: {name: saturn}` with nothing else: a held-out evaluator is built from the policy."""
    cfg_path = tmp_path / "run.yaml"
    cfg_path.write_text(
        yaml.safe_dump(
            {
                "model": str(tiny_model),
                "output_dir": str(tmp_path / "out"),
                "tasks": [{"family": "sat", "curriculum": True}],
                "controller": {"name": "saturn", "check_every": 2, "eval_size": 2, "eval_max_tokens": 4},
                "grpo": {
                    "max_steps": 2,
                    "num_generations": 2,
                    "per_device_train_batch_size": 4,
                    "max_completion_length": 4,
                    "learning_rate": 1e-4,
                },
            }
        )
    )
    result = train(load_config(cfg_path))
    assert result.global_step == 2
    assert isinstance(result.stream.evaluator, PolicyEvaluator) and result.stream.evaluator.calls >= 1
    ctrl = result.stream.mixture.controllers["sat"]
    assert ctrl.eval_rollouts >= 2 and ctrl.history
    # Saturn's ten benchmark levels stay off the default (D-sorted) ladder too.
    cells = [ctrl.space.cell(c) for c in ctrl.ladder]
    assert not [c for c in cells if (c["n"], c["k"], c["l"]) in {(3, 5, 20), (4, 8, 40), (6, 7, 40)}]


def test_reward_saturn_needs_a_sat_task(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match="no `sat` family"):
        load_config(
            {
                "model": str(tiny_model),
                "output_dir": str(tmp_path),
                "reward": "saturn",
                "tasks": [{"family": "arithmetic"}],
                "grpo": {"max_steps": 1},
            }
        )
    with pytest.raises(ConfigError, match="reward must be"):
        load_config(
            {
                "model": str(tiny_model),
                "output_dir": str(tmp_path),
                "reward": "lenient",
                "tasks": [{"family": "sat"}],
                "grpo": {"max_steps": 1},
            }
        )
