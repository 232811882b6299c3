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
        filt._pending.setdefault(easy, __import__("collections").deque()).append(0.0)
        filt.observe(easy, [1.0] * 4)
        assert filt.select_probability(i) == pytest.approx(0.5**z)
    filt._pending[easy].append(0.0)
    filt.observe(easy, [0.0] * 4)  # all wrong now: a new run, of the hard kind
    assert filt.run[i] == 1 and filt.select_probability(i) == pytest.approx(filt.p["hard"])
    filt._pending[easy].append(0.0)
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
    assert records and records[0]["event"] == "greso"
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
    assert rows[0]["task_id"] in from_file._pending  # handed out, waiting for its group
    with pytest.raises(ValueError, match="non-empty"):
        GresoFilter([], seed=0)
