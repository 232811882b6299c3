"""TaskStream: deterministic, cells recorded, feedback routed, run log, checkpoints, HF datasets, TRL."""

from __future__ import annotations

import json
import os

import pytest

from taskforge import verify
from taskforge.curricula import KnobSpace, Mixture, make_controller
from taskforge.curricula.stream import TaskStream
from taskforge.generators.arithmetic import Arithmetic
from taskforge.task import Task


def answer_all(stream: TaskStream, n: int, solve_below: float = 30.0) -> list[Task]:
    """Consume n tasks; a pretend learner passes every task easier than `solve_below`."""
    out = []
    for _ in range(n):
        t = next(stream)
        out.append(t)
        stream.observe(t.id, [1.0] * 8 if t.difficulty < solve_below else [0.0] * 8)
    return out


def test_cells_recorded_and_tasks_match_them() -> None:
    stream = TaskStream.from_families("arithmetic", "adaptive", seed=1)
    space = stream.mixture.controllers["arithmetic"].space
    for task in answer_all(stream, 20):
        assert task.meta["family"] == "arithmetic"
        cell = task.meta["cell"]
        assert task.params == Arithmetic.resolve_params(None, space.to_params(cell))
        assert 0.0 <= task.meta["predicted_p"] <= 1.0
        assert verify(task, f"<answer>{task.answer}</answer>").passed


def test_deterministic_given_seed_and_observations() -> None:
    a = [t.id for t in answer_all(TaskStream.from_families("arithmetic", "adaptive", seed=5), 48)]
    b = [t.id for t in answer_all(TaskStream.from_families("arithmetic", "adaptive", seed=5), 48)]
    c = [t.id for t in answer_all(TaskStream.from_families("arithmetic", "adaptive", seed=6), 48)]
    assert a == b and a != c


def test_workers_give_the_same_tasks() -> None:
    with TaskStream.from_families("arithmetic", "adaptive", seed=2, workers=2) as pooled:
        a = [t.to_json() for t in answer_all(pooled, 40)]
    b = [t.to_json() for t in answer_all(TaskStream.from_families("arithmetic", "adaptive", seed=2), 40)]
    assert a == b


def test_observe_routes_to_the_controller_and_moves_difficulty() -> None:
    import math
    import random

    stream = TaskStream.from_families("arithmetic", "adaptive", seed=0, batch=8)
    ctrl = stream.mixture.controllers["arithmetic"]
    rng = random.Random(0)
    late = []
    for i in range(240):
        t = next(stream)
        # A pretend learner whose pass rate falls through 0.5 at difficulty 30 (digit products).
        p = 1.0 / (1.0 + math.exp((t.difficulty - 30.0) / 6.0))
        assert stream.observe(t.id, [float(rng.random() < p) for _ in range(8)])
        if i >= 176:
            late.append(p)
    assert ctrl.observed == 240 and ctrl.rollouts == 1920
    # Most late prompts come from cells whose groups are likely to be mixed.
    assert sum(0.1 <= p <= 0.9 for p in late) / len(late) > 0.6
    t = next(stream)
    assert stream.observe(t, [1.0] * 8) is True
    assert stream.observe(t.id, [1.0] * 8) is False  # already observed
    assert stream.observe("no-such-task", [1.0]) is False
    assert ctrl.observed == 241


def test_run_log_written(tmp_path) -> None:
    log = tmp_path / "run.jsonl"
    stream = TaskStream.from_families("arithmetic", "uniform", seed=0, log_path=log, batch=4)
    answer_all(stream, 10)
    stream.close()
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    obs = [r for r in recs if r["event"] == "observe"]
    props = [r for r in recs if r["event"] == "propose"]
    assert len(obs) == 10 and len(props) >= 10
    r = obs[0]
    for key in (
        "step",
        "family",
        "cell",
        "params",
        "difficulty",
        "rewards",
        "pass_rate",
        "predicted_p",
        "predicted_zero_var",
    ):
        assert key in r
    assert r["pass_rate"] in (0.0, 1.0) and len(r["rewards"]) == 8


def test_plot_command(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from typer.testing import CliRunner

    from taskforge.cli import app

    log = tmp_path / "run.jsonl"
    stream = TaskStream.from_families(["arithmetic"], "adaptive", seed=0, log_path=log)
    answer_all(stream, 40)
    stream.close()
    out = tmp_path / "run.png"
    res = CliRunner().invoke(app, ["plot", str(log), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    res = CliRunner().invoke(app, ["plot", str(bad), "-o", str(out)])
    assert res.exit_code == 2 and "not a JSON line" in res.output


def test_state_round_trip_resumes_exactly() -> None:
    a = TaskStream.from_families("arithmetic", "adaptive", seed=3, batch=8)
    answer_all(a, 30)
    held = next(a)  # handed out, not yet observed, when the checkpoint is taken
    state = json.loads(json.dumps(a.state_dict()))
    b = TaskStream.from_families("arithmetic", "adaptive", seed=3, batch=8)
    b.load_state_dict(state)
    assert b.observe(held.id, [1.0] * 8) and a.observe(held.id, [1.0] * 8)
    assert [t.id for t in answer_all(a, 30)] == [t.id for t in answer_all(b, 30)]


def test_mixture_stream_and_saturn_needs_an_evaluator() -> None:
    space = KnobSpace.from_generator(Arithmetic)
    mix = Mixture({"arithmetic": make_controller("fixed", space=space, per_level=4)}, seed=0)
    stream = TaskStream(mix, seed=0, batch=4)
    tasks = answer_all(stream, 12)
    assert [space.nearest_level(t.meta["cell"]) for t in tasks] == [0] * 4 + [1] * 4 + [2] * 4
    with pytest.raises(ValueError, match="evaluator"):
        TaskStream.from_families("arithmetic", "saturn", seed=0)
    calls = []

    def evaluator(tasks: list[Task]) -> list[float]:
        calls.append(len(tasks))
        assert all(t.split == "val" for t in tasks)
        return [1.0] * len(tasks)

    s = TaskStream.from_families(
        "arithmetic",
        "saturn",
        seed=0,
        evaluator=evaluator,
        controller_settings={"check_every": 4, "eval_size": 3},
    )
    answer_all(s, 8)
    ctrl = s.mixture.controllers["arithmetic"]
    assert calls == [3, 3] and ctrl.eval_rollouts == 6 and ctrl.level == 2


def test_as_hf_dataset_columns() -> None:
    pytest.importorskip("datasets")
    stream = TaskStream.from_families("arithmetic", "adaptive", seed=0)
    ds = stream.as_hf_dataset()
    it = iter(ds)
    rows = [next(it) for _ in range(3)]
    for row in rows:
        assert set(row) >= {"prompt", "task", "task_id"}
        assert row["prompt"][-1]["role"] == "user" and "Compute" in row["prompt"][-1]["content"]
        task = Task.from_json(row["task"])
        assert task.id == row["task_id"] and "cell" in task.meta
    # The rows come from the live stream: observing them reaches its controller.
    assert stream.observe(rows[0]["task_id"], [1.0, 0.0]) is True


def test_trl_grpo_trainer_accepts_the_stream(tmp_path, tiny_causal_lm) -> None:
    pytest.importorskip("trl")
    os.environ["OMP_NUM_THREADS"] = "1"
    from trl import GRPOConfig, GRPOTrainer

    model, tokenizer = tiny_causal_lm
    stream = TaskStream.from_families("arithmetic", "adaptive", seed=0, group_size=4, batch=4)
    seen: list[str] = []

    def reward(completions, task, task_id, **kwargs):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        scores = [verify(json.loads(t), x).score for t, x in zip(task, texts, strict=True)]
        groups: dict[str, list[float]] = {}
        for tid, s in zip(task_id, scores, strict=True):
            groups.setdefault(tid, []).append(s)
        for tid, rs in groups.items():
            seen.append(tid)
            stream.observe(tid, rs)
        return scores

    config = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        max_steps=2,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        shuffle_dataset=False,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=stream.as_hf_dataset(),
        processing_class=tokenizer,
    )
    trainer.train()
    assert trainer.state.global_step == 2
    ctrl = stream.mixture.controllers["arithmetic"]
    assert len(seen) >= 2 and ctrl.observed == len(seen)
    assert ctrl.rollouts == 4 * len(seen)  # one group of num_generations per prompt


def test_two_families_share_the_stream() -> None:
    from taskforge.registry import families

    if "sat" not in families():
        pytest.skip("sat family not installed")
    stream = TaskStream.from_families(["sat", "arithmetic"], "adaptive", seed=0, weights="adaptive", batch=8)
    tasks = answer_all(stream, 48, solve_below=10.0)
    fams = {t.family for t in tasks}
    assert fams == {"sat", "arithmetic"}
    for t in tasks:
        assert t.meta["family"] == t.family
        assert verify(t, stream.generators[t.family].gold_response(t)).passed
    ctrls = stream.mixture.controllers
    assert ctrls["sat"].observed + ctrls["arithmetic"].observed == 48
    assert ctrls["sat"].observed > 0 and ctrls["arithmetic"].observed > 0


def test_replay_hands_out_again_what_a_restarted_consumer_lost() -> None:
    """A trainer's dataloader pulls the next step's prompts before the checkpoint: after a restart they
    are gone with the old process. `replay=True` hands them out again, in order, so the restored stream
    goes on exactly as the uninterrupted one."""
    a = TaskStream.from_families("arithmetic", "adaptive", seed=4, batch=4)
    answer_all(a, 12)
    lost = [next(a) for _ in range(3)]  # pulled ahead, not yet observed
    state = json.loads(json.dumps(a.state_dict()))
    b = TaskStream.from_families("arithmetic", "adaptive", seed=4, batch=4)
    b.load_state_dict(state, replay=True)
    again = [next(b) for _ in range(3)]
    assert [t.to_json() for t in again] == [t.to_json() for t in lost]
    assert b.consumed == a.consumed
    for t in lost:
        assert a.observe(t.id, [1.0] * 8) and b.observe(t.id, [1.0] * 8)
    assert [t.id for t in answer_all(a, 20)] == [t.id for t in answer_all(b, 20)]
    assert json.dumps(a.state_dict()) == json.dumps(b.state_dict())


def test_proposal_travels_in_meta_and_stream_is_released() -> None:
    import gc
    import weakref

    from taskforge.curricula.stream import Proposal, _Handle

    stream = TaskStream.from_families("arithmetic", "adaptive", seed=0, batch=2)
    task = next(stream)
    prop = Proposal.from_meta(task.meta)
    assert prop.family == "arithmetic" and prop.index == 0 and prop.record()["cell"] == task.meta["cell"]
    assert Proposal.from_meta(json.loads(json.dumps(prop.record()))) == prop
    with pytest.raises(TypeError, match="from_families"):
        TaskStream("arithmetic")  # type: ignore[arg-type]
    stream.as_hf_dataset()
    assert id(stream) in _Handle._live
    ref = weakref.ref(stream)
    stream.close()
    del stream, task
    gc.collect()
    assert ref() is None  # neither the registry nor a dropped dataset keeps a finished stream alive
