"""GRESO's pre-rollout filter: the skip rule, exploration, adaptation, logging, determinism and resume."""

from __future__ import annotations

import json

import pytest

import taskforge
from taskforge.curricula.greso import GresoFilter


@pytest.fixture(scope="module")
def tasks():
    return list(taskforge.generate("arithmetic", 8, level=1, seed=3))


def drive(filt, steps, outcome):
    """Draw `steps` prompts and feed each its group; outcome(task) -> rewards."""
    seen = []
    for _ in range(steps):
        t = next(filt)
        seen.append(t.id)
        assert filt.observe(t.id, outcome(t))
    return seen


def test_skip_probability_grows_with_the_run_of_uninformative_groups(tasks):
    filt = GresoFilter(tasks, seed=0, p_start=0.5, adapt_every=10_000)
    easy = tasks[0].id
    i = filt.index[easy]
    assert filt.select_probability(i) == 1.0
    for z in (1, 2, 3):
        filt._hand_out(i, 0, 0.0)
        filt.observe(easy, [1.0] * 4)
        assert filt.select_probability(i) == pytest.approx(0.5**z)
    filt._hand_out(i, 0, 0.0)
    filt.observe(easy, [0.0] * 4)  # all wrong now: a new run, of the hard kind
    assert filt.run[i] == 1 and filt.select_probability(i) == pytest.approx(filt.p["hard"])
    assert filt.select_probability(i) == pytest.approx(0.5)  # p ** 1: the new run counts from one
    filt._hand_out(i, 0, 0.0)
    filt.observe(easy, [1.0, 0.0, 1.0, 1.0])  # a mixed group resets the run
    assert filt.select_probability(i) == 1.0
    assert not filt.observe("not-a-task", [1.0])


def test_uninformative_prompts_are_skipped_yet_retried(tasks, tmp_path):
    solved = {t.id for t in tasks[:4]}  # always all correct; the rest always mixed
    log = tmp_path / "run_log.jsonl"
    filt = GresoFilter(tasks, seed=1, adapt_every=16, log_path=log)
    seen = drive(filt, 400, lambda t: [1.0] * 4 if t.id in solved else [1.0, 0.0, 0.0, 1.0])
    late = seen[200:]
    share = sum(s in solved for s in late) / len(late)
    assert share < 0.25  # without the filter it would be one half
    assert all(late.count(s) > 0 for s in solved)  # exploration retries every prompt
    assert 0 < filt.skip_rate < 1
    # Adaptive exploration: a target of 0 zero-var groups lowers p_easy; the hard kind never occurs, so p_hard rises.
    strict = GresoFilter(tasks, seed=1, adapt_every=16, target=0.0, step=0.05)
    drive(strict, 64, lambda t: [1.0] * 4 if t.id in solved else [1.0, 0.0, 0.0, 1.0])
    assert strict.p["easy"] < 0.5 < strict.p["hard"]
    records = [json.loads(x) for x in log.read_text().splitlines()]
    assert sum(r["event"] == "observe" for r in records) == 400
    records = [r for r in records if r["event"] == "greso"]
    assert len(records) == 400 // 16
    for key in ("skip_rate", "predicted_zero_var", "observed_zero_var", "p_easy", "p_hard"):
        assert key in records[-1]
    # The prediction learns that a zero-var prompt stays zero-var here: late windows predict what they see.
    assert records[-1]["predicted_zero_var"] == pytest.approx(records[-1]["observed_zero_var"], abs=0.15)


def test_same_seed_same_choices_and_exact_resume(tasks):
    def outcome(t):
        return [1.0] * 4 if t.id in {tasks[0].id, tasks[1].id} else [0.0, 1.0, 0.0, 0.0]

    a, b = GresoFilter(tasks, seed=5, adapt_every=8), GresoFilter(tasks, seed=5, adapt_every=8)
    assert drive(a, 60, outcome) == drive(b, 60, outcome)
    state = json.loads(json.dumps(a.state_dict()))
    c = GresoFilter(tasks, seed=5, adapt_every=8)
    c.load_state_dict(state)
    assert drive(a, 60, outcome) == drive(c, 60, outcome)


def test_reads_a_file_and_a_hf_dataset_and_feeds_trl_columns(tasks, tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(t.to_json() + "\n" for t in tasks))
    from_file = GresoFilter(path, seed=0)
    from_hf = GresoFilter(datasets.Dataset.from_list([t.to_dict() for t in tasks]), seed=0)
    assert [t.id for t in from_file.tasks] == [t.id for t in tasks] == [t.id for t in from_hf.tasks]
    rows = list(from_file.as_hf_dataset().take(3))
    assert {"prompt", "task", "task_id", "family"} <= set(rows[0])
    assert rows[0]["task_id"] in {p[0] for p in from_file._pending}  # handed out, waiting for its group
    with pytest.raises(ValueError, match="non-empty"):
        GresoFilter([], seed=0)


def test_prediction_formula_on_a_hand_made_history(tasks):
    """P(zero-var next | zero-var last) and P(zero-var next | mixed or unseen), Laplace-smoothed counts."""
    filt = GresoFilter(tasks, seed=0, adapt_every=10_000)
    a, b = filt.index[tasks[0].id], filt.index[tasks[1].id]
    assert filt.predict_zero_var(a) == 0.5  # the prior: one of each transition
    # a: unseen -> all correct -> all correct; b: unseen -> mixed -> mixed.
    for i, rewards in ((a, [1.0] * 4), (a, [1.0] * 4), (b, [1.0, 0.0] * 2), (b, [0.0, 1.0] * 2)):
        filt._hand_out(i, 0, filt.predict_zero_var(i))
        assert filt.observe(tasks[i].id, rewards)
    # From "not zero-var" (unseen or mixed): 1 zero-var (a's first), 2 mixed (b's) + prior -> 2 / 5.
    # From "zero-var": 1 zero-var (a's second) + prior -> 2 / 3.
    assert filt.transitions.tolist() == [[3, 2], [1, 2]]
    assert filt.predict_zero_var(b) == pytest.approx(2 / 5)
    assert filt.predict_zero_var(a) == pytest.approx(2 / 3)
    assert filt.observed == 4


def test_resume_replays_the_prompts_that_were_out_and_logs_observations(tasks, tmp_path):
    """A trainer's dataloader pulls prompts before the checkpoint is written: after a resume they are
    handed out again first, in order, not counted twice, and the run continues as the uninterrupted one."""

    def outcome(t):
        return [1.0] * 4 if t.id == tasks[2].id else [1.0, 0.0, 0.0, 0.0]

    log = tmp_path / "log.jsonl"
    a = GresoFilter(tasks, seed=2, adapt_every=4, log_path=log)
    drive(a, 20, outcome)
    out = [next(a) for _ in range(3)]  # pulled, not yet observed
    assert out[0].meta["dataset_epoch"] == a._pending[0][1] and "predicted_zero_var" in out[0].meta
    assert out[0].id == tasks[a.index[out[0].id]].id  # the id is the dataset's
    state = json.loads(json.dumps(a.state_dict()))
    b = GresoFilter(tasks, seed=2, adapt_every=4)
    b.load_state_dict(state, replay=True)
    again = [next(b) for _ in range(3)]
    assert [t.to_json() for t in again] == [t.to_json() for t in out]
    assert b.considered == a.considered
    for t in out:
        assert a.observe(t.id, outcome(t), step=7) and b.observe(t.id, outcome(t))
    assert drive(a, 30, outcome) == drive(b, 30, outcome)
    assert a.state_dict() == b.state_dict()
    recs = [json.loads(x) for x in log.read_text().splitlines()]
    obs = [r for r in recs if r["event"] == "observe"]
    assert len(obs) == 20 + 3 + 30 and [r["step"] for r in obs[20:23]] == [7, 7, 7]
    assert {"task_id", "rewards", "pass_rate", "predicted_zero_var", "epoch"} <= set(obs[0])


def test_plain_never_skips(tasks):
    filt = GresoFilter.plain(tasks, seed=4)
    seen = drive(filt, 3 * len(tasks), lambda t: [1.0] * 4)  # all uninformative: GRESO would skip
    assert filt.skipped == 0 and sorted(seen) == sorted(t.id for t in tasks for _ in range(3))
