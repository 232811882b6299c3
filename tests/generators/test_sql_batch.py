"""SQL's batch path: `SQL.verify_many` gives exactly the one-at-a-time Verdicts from one worker round."""

from __future__ import annotations

import random
import time

import pytest

import taskforge
from taskforge.api import verify_many
from taskforge.generators import sql as S
from taskforge.generators.sql import box, judge
from taskforge.registry import get_generator
from taskforge.task import Task

GEN = get_generator("sql")


def fenced(sql: str) -> str:
    return f"```sql\n{sql}\n```"


def cross(task: Task, copies: int) -> str:
    table = max(task.check["schema"], key=lambda t: t["rows"])["name"]
    return "SELECT count(*) FROM " + ", ".join(f"{table} AS t{i}" for i in range(copies))


def fresh_tasks(seed: int) -> list[Task]:
    """Tasks no other test has verified (the memo is per task record), at two levels."""
    return [
        t
        for level in (0, 2)
        for t in taskforge.generate("sql", 1, level=level, seed=seed, params={"timeout_s": 0.3})
    ]


@pytest.fixture(scope="module")
def pool() -> list[Task]:
    return fresh_tasks(seed=13)


def mixed_batch(pool: list[Task]) -> tuple[list[Task], list[object]]:
    """Gold, corrupted, garbage, hostile and duplicate responses, interleaved across tasks."""
    pairs: list[tuple[Task, object]] = []
    for k, t in enumerate(pool):
        rng = random.Random(k)
        table = t.check["schema"][0]["name"]
        pairs += [
            (t, GEN.gold_response(t)),
            (t, GEN.corrupt_answer(t, rng)),
            (t, "I am not sure."),  # no answer
            (t, None),  # not text
            (t, "x" * (GEN.max_response_chars + 1)),  # refused unread
            (t, fenced("SELEC nonsense FROM")),  # malformed
            (t, fenced("x" * (box.MAX_SQL_CHARS + 1))),  # too long
            (t, fenced(f"SELECT 1; DROP TABLE {table}")),  # two statements
            (t, fenced(f"WITH d AS (DELETE FROM {table} RETURNING *) SELECT * FROM d")),  # writing CTE
            (t, fenced("SELECT * FROM read_csv('/etc/passwd')")),  # host access
            (t, fenced(f"SELECT * FROM {table}")),  # runs, wrong
            (t, GEN.gold_response(t)),  # a duplicate of the first
            (t, fenced(f"{t.answer}\n-- same query, other text")),
        ]
    pairs.append((pool[0], fenced(cross(pool[0], 12))))  # a runaway: 10^15 rows, interrupted
    pairs.append((pool[1], fenced(pool[1].answer)))  # after the runaway, on another task
    order = random.Random(0).sample(range(len(pairs)), len(pairs))  # tasks interleaved
    return [pairs[i][0] for i in order], [pairs[i][1] for i in order]


@pytest.mark.parametrize("isolate", [True, False], ids=["worker", "in-process"])
def test_batch_gives_the_one_at_a_time_verdicts(monkeypatch: pytest.MonkeyPatch, isolate: bool) -> None:
    monkeypatch.setattr(S.settings, "isolate", isolate)
    pool = fresh_tasks(seed=11 if isolate else 12)
    tasks, responses = mixed_batch(pool)
    monkeypatch.setattr(S.settings, "memo_size", 0)  # the reference runs every response itself
    serial = [GEN.safe_verify(t, r).to_dict() for t, r in zip(tasks, responses, strict=True)]
    rounds = []
    real_round = S.WORKER._round
    monkeypatch.setattr(S.WORKER, "_round", lambda *a: rounds.append(len(a[2])) or real_round(*a))
    for memo_size in (0, 256):  # without the memo, then with it (duplicates run once)
        monkeypatch.setattr(S.settings, "memo_size", memo_size)
        rounds.clear()
        batch = [v.to_dict() for v in GEN.verify_many(tasks, responses)]
        assert batch == serial
        if isolate:  # one request for everything that reached the worker
            assert len(rounds) == 1, rounds
    reasons = {v["reason"] for v in serial}
    assert {"ok", "wrong", "no_answer", "malformed", "rejected", "timeout"} <= reasons, reasons
    assert sum(v["passed"] for v in serial) == 3 * len(pool) + 1
    # The API's mixed-family entry point takes the family's batch path.
    assert [v.to_dict() for v in verify_many(tasks, responses)] == serial


def test_a_runaway_is_killed_alone_and_the_rest_still_judged(pool: list[Task]) -> None:
    """A query that outlives its deadline in the worker (here: a tiny deadline the in-worker interrupt
    cannot meet) gets `timeout`; answers before it keep their results and answers after it go to a fresh
    worker (which starts and rebuilds the databases: seconds on a loaded machine)."""
    if not S.settings.isolate:
        pytest.skip("answers run in-process (TASKFORGE_SQL_ISOLATE=0)")
    items = []
    for t in pool:
        deadline = judge.worker_deadline(t.check)
        items += [(judge.task_key(t.check), t.check, t.answer, deadline)]
    runaway = (judge.task_key(pool[0].check), pool[0].check, cross(pool[0], 12), 0.05)
    items = [items[0], runaway, items[1], items[0], items[1]]  # the runaway amid its own task's group
    S.WORKER.call_many("build", items[:1])  # worker up, the first task built
    first = S.WORKER.pid
    start = time.monotonic()
    out = S.WORKER.call_many("judge", items, retry_errors=True, replace=judge.worker_spent)
    elapsed = time.monotonic() - start
    assert out[1] == ("timeout", None)
    for i in (0, 2, 3, 4):
        status, result = out[i]
        assert status == "ok" and result["passed"], (i, out[i])
    assert S.WORKER.pid not in (None, first)  # the runaway's worker was killed, a fresh one judged the rest
    assert elapsed < 60, elapsed  # not the sum of every answer's deadline times retries
    verdict = judge.from_worker(*out[1], items[1][2], items[1][3])
    assert verdict.reason == "timeout" and not verdict.passed


def test_a_worker_outcome_that_spends_the_worker_replaces_it() -> None:
    assert judge.worker_spent("ok", {"details": {"error": "Out of Memory Error: failed to allocate"}})
    assert judge.worker_spent("error", "MemoryError: ")
    assert not judge.worker_spent("ok", {"details": {"instances": 2}})
    assert not judge.worker_spent("timeout", None)


def test_a_broken_record_gets_an_error_verdict_and_the_others_theirs(pool: list[Task]) -> None:
    good = pool[0]
    broken = Task.from_dict({**good.to_dict(), "check": {**good.check, "seeds": "not a list"}})
    no_builder = Task.from_dict({**good.to_dict(), "check": {"gold": "SELECT 1"}})
    tasks = [good, broken, no_builder, good]
    responses = [GEN.gold_response(good), GEN.gold_response(broken), GEN.gold_response(no_builder), "?"]
    batch = GEN.verify_many(tasks, responses)
    assert [v.reason for v in batch] == ["ok", "error", "error", "no_answer"]
    assert [v.to_dict() for v in batch] == [
        GEN.safe_verify(t, r).to_dict() for t, r in zip(tasks, responses, strict=True)
    ]
    assert GEN.verify_many([], []) == []
