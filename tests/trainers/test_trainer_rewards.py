"""Reward adapters: verifier rewards per completion, groups routed to the controller, separate format reward."""

from __future__ import annotations

import random

import taskforge
from taskforge.api import level_label, verify_many
from taskforge.trainers.rewards import TaskReward, completion_text, format_reward


def _batch(tasks, answers_per_task):
    cols, comps = [], []
    for t, answers in zip(tasks, answers_per_task, strict=True):
        for a in answers:
            cols.append(t.to_json())
            comps.append([{"role": "assistant", "content": a}])
    return cols, comps


def test_rewards_and_groups_reach_the_observer():
    tasks = list(taskforge.generate("arithmetic", 3, level=2, seed=0))
    seen = []
    reward = TaskReward(4, lambda tid, rs, step=None: seen.append((tid, rs)))
    answers = [
        [f"<answer>{tasks[0].answer}</answer>"] * 4,
        [f"<answer>{tasks[1].answer}</answer>", "no", "<answer>1</answer>", f"\\boxed{{{tasks[1].answer}}}"],
        ["<answer>0</answer>"] * 4,
    ]
    cols, comps = _batch(tasks, answers)
    out = reward(prompts=None, completions=comps, task=cols, trainer_state=None)
    assert out == [1.0] * 4 + [1.0, 0.0, 0.0, 1.0] + [0.0] * 4
    assert seen == [(tasks[0].id, [1.0] * 4), (tasks[1].id, [1.0, 0.0, 0.0, 1.0]), (tasks[2].id, [0.0] * 4)]
    stats = reward.stats.drain()
    assert stats["pass_rate/arithmetic"] == 6 / 12
    assert stats[f"pass_rate/arithmetic/{level_label(tasks[0])}"] == 6 / 12
    assert stats["taskforge/frac_groups_zero_var"] == 2 / 3 and stats["taskforge/groups"] == 3
    assert stats[f"cells/arithmetic/{level_label(tasks[0])}"] == 1.0  # every group at that level
    assert reward.stats.drain() == {}  # drained


def test_groups_split_across_ranks_are_gathered_and_routed_once_in_global_order():
    """Two simulated ranks, G=4, 6 completions each: the middle task's group straddles the ranks. Each rank
    scores its own slice; the gather gives both the global list, and both route the same three groups."""
    tasks = list(taskforge.generate("arithmetic", 3, level=1, seed=3))
    answers = [[f"<answer>{t.answer}</answer>", "x", "x", "x"] for t in tasks]
    cols, comps = _batch(tasks, answers)
    halves = [(cols[:6], comps[:6]), (cols[6:], comps[6:])]
    scored_by_rank = [None, None]
    seen = [[], []]
    rewards = [
        TaskReward(
            4,
            lambda tid, rs, step=None, r=r: seen[r].append((tid, rs, step)),
            gather=lambda local, r=r: [s for rank in scored_by_rank for s in rank],
        )
        for r in range(2)
    ]
    for r in range(2):  # what gather_object returns on each rank: every rank's outcomes in rank order
        scored_by_rank[r] = TaskReward(4).score(halves[r][1], halves[r][0])
    logged = {}
    state = type("State", (), {"global_step": 6})()
    outs = [
        rewards[r](
            completions=halves[r][1],
            task=halves[r][0],
            trainer_state=state,
            log_metric=lambda k, v: logged.__setitem__(k, v),
        )
        for r in range(2)
    ]
    assert outs == [[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]]  # each rank its own slice
    expected = [(t.id, [1.0, 0.0, 0.0, 0.0], 7) for t in tasks]
    assert seen[0] == seen[1] == expected
    assert logged["pass_rate/arithmetic"] == 3 / 12 and logged["taskforge/groups"] == 3


def test_group_split_across_calls_and_repeated_task():
    (task,) = taskforge.generate("arithmetic", 1, level=0, seed=1)
    seen = []
    reward = TaskReward(4, lambda tid, rs, step=None: seen.append(rs))
    good, bad = f"<answer>{task.answer}</answer>", "<answer>x</answer>"
    cols, comps = _batch([task], [[good, bad]])
    reward(completions=comps, task=cols)
    assert seen == []  # half a group: wait for the rest
    cols, comps = _batch([task, task], [[good, good], [bad] * 4])  # the same task drawn twice in a row
    reward(completions=comps, task=cols)
    assert seen == [[1.0, 0.0, 1.0, 1.0], [0.0] * 4]


def test_format_reward_is_separate_and_text_forms():
    comps = [[{"role": "assistant", "content": "<answer>3</answer>"}], "\\boxed{4}", "plain", None]
    assert format_reward(completions=comps) == [1.0, 1.0, 0.0, 0.0]
    assert (
        completion_text([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}])
        == "ab"
    )
    assert completion_text(12) == ""


def test_verify_batch_threads_match_serial():
    tasks = list(taskforge.generate("arithmetic", 20, level=3, seed=2))
    responses = [f"<answer>{t.answer}</answer>" if i % 3 else "junk" for i, t in enumerate(tasks)]
    serial = verify_many(tasks, responses)
    threaded = verify_many(tasks, responses, workers=4)
    assert [v.to_dict() for v in serial] == [v.to_dict() for v in threaded]
    assert sum(v.passed for v in serial) == sum(1 for i in range(20) if i % 3)


def test_code_rewards_take_the_batch_path_in_one_sandbox_round(monkeypatch):
    """The trainer's reward function hands the code family's completions to `Code.verify_many`, which
    runs one sandbox round for the whole batch, with the same Verdicts as one-at-a-time verification."""
    import taskforge.generators.code as code

    tasks = list(taskforge.generate("code", 3, level=0, seed=4))
    gen, rng = taskforge.get_generator("code"), random.Random(0)
    pairs = [(t, r) for t in tasks for r in (gen.gold_response(t), gen.corrupt_answer(t, rng), "no code")]
    texts = [r for _, r in pairs]
    one_by_one = [gen.safe_verify(t, r) for t, r in pairs]

    rounds = []
    real = code.default_sandbox

    class Counting:
        def run(self, samples):
            rounds.append(len(samples))
            return real().run(samples)

    monkeypatch.setattr(code, "default_sandbox", Counting)
    reward = TaskReward(3)
    out = reward(completions=texts, task=[t.to_json() for t, _ in pairs])
    assert rounds == [6], "one sandbox round, for the six completions that hold code"
    assert out == [v.score for v in one_by_one] == [1.0, 0.0, 0.0] * 3
