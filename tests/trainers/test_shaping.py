"""Length-aware rewards: each method's formula on hand-made groups, its YAML validation, its checkpoint
state, and one short GRPO run that wires a method in and saves its state."""

from __future__ import annotations

import json
import math

import pytest

from taskforge.trainers import shaping
from taskforge.trainers.shaping import Hapo, Laser, LaserD, ShorterBetter, ecr_target, hapo_reward


class Outcome:
    """Stands in for the correctness reward of the same call: its last outcome is what shaping reads."""

    def __init__(self, texts, passed):
        self.last_outcome = (list(texts), list(passed))


def task_json(tid: str, **meta) -> str:
    return json.dumps({"id": tid, "family": "arithmetic", "difficulty": 1.0, "meta": meta})


def call(fn, groups, log=None):
    """groups: [(task_json, [(length, passed), ...]), ...] -> rewards, in order."""
    tasks, ids, texts, passed = [], [], [], []
    for t, rows in groups:
        for n, ok in rows:
            tasks.append(t)
            ids.append(list(range(n)))
            texts.append(f"c{len(texts)}")
            passed.append(ok)
    fn.correct = Outcome(texts, passed)
    kw = {"log_metric": log} if log else {}
    return fn(prompts=None, completions=texts, completion_ids=ids, task=tasks, **kw)


def test_laser_step_on_correct_within_target():
    r = call(Laser(4, target=10), [(task_json("a"), [(5, True), (10, True), (11, True), (3, False)])])
    assert r == [1.0, 1.0, 0.0, 0.0]


def test_ecr_target_is_smallest_length_with_one_expected_correct():
    # 8 responses, G = 4: ECR(L) = 4 * k / 8 >= 1 needs k = 2 correct within L -> the 2nd shortest correct.
    rows = [(30, True), (10, True), (20, True), (5, False), (50, False), (40, True), (1, False), (2, False)]
    assert ecr_target(rows, 4) == 20
    assert ecr_target([(5, False)] * 8, 4) is None  # nothing correct: no target
    assert ecr_target([(7, True), (9, False), (9, False), (9, False), (9, False)], 4) is None  # needs 2


def test_laser_d_buckets_and_adaptive_targets():
    fn = LaserD(4, target=100, window=8, levels=3)
    easy = task_json("e", predicted_p=0.9)
    hard = task_json("h", predicted_p=0.1)
    assert fn.bucket(fn._info(easy)) == "easy" and fn.bucket(fn._info(hard)) == "hard"
    assert fn.bucket(fn._info(task_json("l", level=2))) == "hard"  # the top of a 3-rung ladder
    assert fn.bucket(fn._info(task_json("g")), [True, True, True, False]) == "easy"  # the group's own rate
    # First batch: scored against the starting target 100, then targets move per bucket.
    r = call(
        fn,
        [
            (easy, [(20, True), (30, True), (40, True), (150, True)]),
            (hard, [(60, True), (200, False), (200, False), (200, False)]),
        ],
    )
    assert r == [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    # easy: 4 rows, ceil(4/4) = 1 correct needed -> 20; hard: 1 correct of 4 -> 60. Easy is tighter.
    assert fn.targets["easy"] == 20 and fn.targets["hard"] == 60 and fn.targets["medium"] == 100
    r = call(fn, [(easy, [(20, True), (25, True), (10, False), (10, False)])])
    assert r == [1.0, 0.0, 0.0, 0.0]
    restored = LaserD(4, target=100, window=8, levels=3)
    restored.load_state_dict(json.loads(json.dumps(fn.state_dict())))
    assert restored.targets == fn.targets and list(restored.recent["easy"]) == list(fn.recent["easy"])


def test_hapo_formula_history_and_wrong_answers():
    assert hapo_reward(10, None, True) == 0.0
    assert hapo_reward(50, 100, True) == pytest.approx(math.cos(math.pi / 4))
    assert hapo_reward(100, 100, True) == pytest.approx(0.0, abs=1e-12)
    assert hapo_reward(300, 100, True) == pytest.approx(-1.0)  # capped at pi
    assert hapo_reward(50, 100, False) == 0.0  # a short wrong answer is not rewarded, nor penalised
    assert hapo_reward(150, 100, False) == pytest.approx(math.cos(3 * math.pi / 4))

    fn = Hapo(4)
    t = task_json("p")
    assert call(fn, [(t, [(40, True), (80, True), (10, False), (90, False)])]) == [0.0] * 4  # no history yet
    assert fn.history == {"p": 40}
    r = call(fn, [(t, [(20, True), (40, True), (60, True), (10, False)])])
    assert r == pytest.approx([math.cos(math.pi / 4), 0.0, math.cos(3 * math.pi / 4), 0.0], abs=1e-12)
    assert fn.history == {"p": 20}
    call(fn, [(t, [(90, True), (5, False), (5, False), (5, False)])])
    assert fn.history == {"p": 20}  # the minimum never grows


def test_hapo_per_cell_history_and_checkpoint_state(tmp_path):
    fn = Hapo(2, key="cell")
    a = task_json("t1", family="arithmetic", cell={"level": 2})
    b = task_json("t2", family="arithmetic", cell={"level": 2})
    call(fn, [(a, [(30, True), (50, False)])])
    # A new task of the same cell is judged against the cell's history.
    assert call(fn, [(b, [(15, True), (30, True)])]) == pytest.approx([math.cos(math.pi / 4), 0.0], abs=1e-12)
    shaping.save_shaping_state(fn, tmp_path / "checkpoint-3")
    again = Hapo(2, key="cell")
    assert shaping.load_shaping_state(again, tmp_path / "checkpoint-3")
    assert again.history == fn.history == {'arithmetic:{"level":2}': 15}
    assert not shaping.load_shaping_state(Laser(2), tmp_path / "checkpoint-3")  # another method's file


def test_shorter_better_sample_optimal_length():
    fn = ShorterBetter(4, scale=100)
    r = call(fn, [(task_json("s"), [(30, True), (50, True), (10, False), (80, False)])])
    assert r == pytest.approx([0.0, -0.2, -0.2, -0.5])  # SOL = 30, the shortest correct
    r = call(fn, [(task_json("w"), [(10, False), (20, False), (30, False), (40, False)])])
    assert r == pytest.approx([-0.15, -0.05, -0.05, -0.15])  # none correct: SOL = the mean, 25


def test_groups_split_by_task_and_metric_logged():
    logged = {}
    fn = ShorterBetter(2, scale=10)
    r = call(
        fn,
        [(task_json("x"), [(1, True), (5, True)]), (task_json("y"), [(4, True), (9, False)])],
        log=lambda k, v: logged.__setitem__(k, v),
    )
    assert r == pytest.approx([0.0, -0.4, 0.0, -0.5])
    assert logged["taskforge/length_shorter_better"] == pytest.approx(-0.225)


def test_verifies_when_no_outcome_is_shared():
    from taskforge.api import get_generator

    gen = get_generator("arithmetic")
    task = gen.sample(gen.resolve_params(0, {}), 0, "train", 0)
    texts = [f"<answer>{task.answer}</answer>", "<answer>-1</answer>"]
    r = Laser(2, target=100)(completions=texts, completion_ids=[[0] * 5, [0] * 5], task=[task.to_json()] * 2)
    assert r == [1.0, 0.0]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"method": "nope"}, "length_reward.method must be one of"),
        ({"method": "hapo", "weight": -1}, "weight must be a number > 0"),
        ({"method": "hapo", "target": 5}, "unknown length_reward settings for hapo"),
        ({"method": "hapo", "key": "family"}, "key must be task or cell"),
        ({"method": "laser", "target": 0}, "target must be >= 1"),
        ("hapo", "must be a mapping"),
    ],
)
def test_bad_length_reward_is_one_line(spec, message):
    problem = shaping.check_length_reward(spec, 4)
    assert problem is not None and message in problem and "\n" not in problem
    assert shaping.check_length_reward({"method": "laser_d", "weight": 0.1, "window": 64}, 4) is None


def test_train_with_length_reward_saves_its_state(tmp_path):
    """Two GRPO steps on the tiny model with HAPO per cell: the reward is wired after correctness with its
    weight, its metric reaches the run log, its state lands in the checkpoint and is read back on resume."""
    pytest.importorskip("trl")
    from taskforge.trainers.config import ConfigError, load_config
    from taskforge.trainers.grpo import train
    from taskforge.trainers.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "model", seed=0)
    raw = {
        "model": str(model),
        "output_dir": str(tmp_path / "out"),
        "seed": 0,
        "tasks": [{"family": "arithmetic", "curriculum": True}],
        "grpo": {
            "max_steps": 2,
            "num_generations": 4,
            "per_device_train_batch_size": 8,
            "max_completion_length": 8,
            "save_strategy": "steps",
            "save_steps": 2,
        },
        "length_reward": {"method": "hapo", "weight": 0.3, "key": "cell"},
        "surface": ["qa", "distractor"],  # the stream's prompts in surface forms; the same verifier and ids
    }
    with pytest.raises(ConfigError, match="length_reward.method"):
        load_config({**raw, "length_reward": {"method": "l1"}})
    cfg = load_config(raw)
    assert cfg.grpo_kwargs()["reward_weights"] == [1.0, 0.3]
    result = train(cfg)
    assert [getattr(f, "__name__", "") for f in result.trainer.reward_funcs] == ["correct", "length_hapo"]
    saved = json.loads((tmp_path / "out" / "checkpoint-2" / shaping.SHAPING_FILE).read_text())
    assert saved["method"] == "hapo" and isinstance(saved["state"]["history"], dict)
    steps = [json.loads(x) for x in (tmp_path / "out" / "run_log.jsonl").read_text().splitlines()]
    steps = [s for s in steps if s.get("event") == "train_step" and "loss" in s]
    assert any("rewards/length_hapo/mean" in s for s in steps)
    forms = {k for s in steps for k in s if k.startswith("pass_rate/surface/")}
    assert forms and forms <= {"pass_rate/surface/qa", "pass_rate/surface/distractor"}
