"""Exact resume, and the metrics where people look: a run stopped at a checkpoint and resumed equals the
uninterrupted run (task ids, controller states, run log); TensorBoard receives the curriculum and
held-out metrics; `taskforge plot` draws the held-out curve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("trl")

VOLATILE = ("time", "runtime", "per_second", "flos")  # wall-clock figures differ between any two runs


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from taskforge.trainers.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def _config(model, out, **extra):
    return {
        "model": str(model),
        "output_dir": str(out),
        "seed": 0,
        "tasks": [{"family": "arithmetic", "curriculum": True}],
        "controller": {"name": "adaptive"},
        "grpo": {
            "max_steps": 6,
            "num_generations": 4,
            "per_device_train_batch_size": 8,
            "max_completion_length": 8,
            "learning_rate": 1e-3,
            "temperature": 1.0,
            "save_strategy": "steps",
            "save_steps": 2,
            **extra,
        },
        "eval_every": 3,
        "eval": {"levels": [0, 1], "tasks_per_level": 2, "samples": 2},
    }


def _records(path: Path) -> list[dict]:
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if not any(w in k for w in VOLATILE)} for r in recs]


def _state(out: Path, step: int) -> dict:
    state = json.loads((out / f"checkpoint-{step}" / "taskforge_state.json").read_text())
    state.pop("log_offset")  # a byte count of a log that holds wall-clock times
    return state


@pytest.mark.slow
def test_resume_equals_uninterrupted_and_metrics_reach_tensorboard(tiny_model, tmp_path):
    from taskforge.trainers import train

    out = tmp_path / "run"
    cfg = _config(tiny_model, out, report_to=["tensorboard"])  # events under <output_dir>/runs/
    first = train(cfg)
    assert first.global_step == 6
    log = out / "run_log.jsonl"
    straight = _records(log)
    states = {s: _state(out, s) for s in (4, 6)}
    observed = [r for r in straight if r["event"] == "observe"]
    # Every observed group is in the log with its task id, cell, rewards and training step, once.
    assert len(observed) == 6 * 2 and len({r["task_id"] for r in observed}) == len(observed)
    assert [r["step"] for r in observed] == [s for s in range(1, 7) for _ in range(2)]
    assert all(len(r["rewards"]) == 4 and "cell" in r and "nearest_level" in r for r in observed)
    # One train_step line per step, evaluation steps included.
    assert [r["step"] for r in straight if r["event"] == "train_step" and "loss" in r] == [1, 2, 3, 4, 5, 6]

    # TensorBoard got TRL's metrics, our curriculum metrics and the held-out pass@1 per level (step 0, 3, 6).
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((out / "runs").rglob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in (
        "train/pass_rate/arithmetic",
        "train/taskforge/frac_groups_zero_var",
        "train/taskforge/predicted_zero_var",
        "train/curriculum/arithmetic/frontier_level",
        "train/loss",
    ):
        assert tag in tags, sorted(tags)
    assert any(t.startswith("train/cells/arithmetic/") for t in tags)
    assert any(t.startswith("train/pass_rate/arithmetic/L") for t in tags)
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    heldout = acc.Scalars("train/heldout/pass@1/arithmetic/L0")
    assert [e.step for e in heldout] == [0, 3, 6]
    assert all(0.0 <= e.value <= 1.0 for e in heldout)

    # Resume from step 2 in the same folder: the log is cut back to step 2, steps 3-6 are trained again
    # and must come out identical: same tasks, same rewards, same controller states, no step twice.
    resumed = train(cfg, resume=str(out / "checkpoint-2"))
    assert resumed.global_step == 6
    again = _records(log)
    assert [r["task_id"] for r in again if r["event"] == "observe"] == [r["task_id"] for r in observed]
    assert again == straight
    for s in (4, 6):
        assert _state(out, s) == states[s]
    assert resumed.reward.groups_routed == first.reward.groups_routed == 12

    # A finished run resumed with `latest` trains nothing and logs nothing.
    done = train(cfg, resume="latest")
    assert done.global_step == 6 and _records(log) == straight

    # The same figures are in the run log, and the plot draws them next to the training pass rate.
    held = [r for r in straight if r["event"] == "heldout"]
    assert [r["step"] for r in held] == [0, 3, 6] and all("heldout/pass@1/arithmetic/L1" in r for r in held)
    assert [r["heldout/pass@1/arithmetic/L0"] for r in held] == [e.value for e in heldout]

    from typer.testing import CliRunner

    from taskforge.cli import app
    from taskforge.cli.plot import read_run_log

    assert {r["level"] for r in read_run_log(log, "heldout")["arithmetic"]} == {"L0", "L1"}
    res = CliRunner().invoke(app, ["plot", str(log), "-o", str(tmp_path / "run.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_eval_settings_are_one_clear_error(tiny_model, tmp_path):
    from taskforge.trainers.config import ConfigError, load_config

    cfg = _config(tiny_model, tmp_path / "out")
    cfg["eval"] = {"levels": [0, 99]}
    with pytest.raises(ConfigError, match=r"arithmetic has levels 0\.\."):
        load_config(cfg)
    cfg["eval"] = {"sample": 3}
    with pytest.raises(ConfigError, match="unknown eval keys"):
        load_config(cfg)


def test_heldout_set_is_fixed_test_split_and_scores_any_sampler():
    """The held-out set benchmarks reuse: the same test-split tasks on every build, pass@1 per family and
    level from whatever sampler it is given (here a stub that answers level 0 right, level 1 wrong)."""
    from taskforge.trainers.heldout import HeldOut

    a = HeldOut.build({"arithmetic": [0, 1]}, tasks_per_level=3, samples=2, seed=5)
    b = HeldOut.build({"arithmetic": [0, 1]}, tasks_per_level=3, samples=2, seed=5)
    assert [it.task.id for it in a.items] == [it.task.id for it in b.items] and len(a.items) == 6
    assert {it.task.split for it in a.items} == {"test"} and [it.level for it in a.items] == ["L0"] * 3 + [
        "L1"
    ] * 3

    def sampler(items, s):
        return [
            [(f"<answer>{it.task.answer if it.level == 'L0' else -1}</answer>", 4)] * s.samples
            for it in items
        ]

    assert a.run(sampler) == {"heldout/pass@1/arithmetic/L0": 1.0, "heldout/pass@1/arithmetic/L1": 0.0}
