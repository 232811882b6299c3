"""SQL over DuckDB: a generated retail database, a question in English, a gold SELECT.

The task records the database as a schema spec plus one data seed per instance (check["schema"],
check["seeds"]); the rows are rebuilt from them in any process (catalog.py). Every task has at least two
instances with different rows: an answer must return the gold query's result on each, so a query that
hard-codes the result of one instance fails. The question is rendered from the query's structure (query.py).

Verification: the last ```sql block (or <answer> block), one read-only SELECT, run on each instance
(judge.py) in a worker process through box.py (read-only, locked DuckDB with an interrupt), results
compared as the gold query defines them: a multiset, in sequence on the sort keys when the gold query
orders its rows.
"""

from __future__ import annotations

import os
import random
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from taskforge.errors import GenerationError, KnobError
from taskforge.extract import extract_block
from taskforge.generator import Generator, Knob, error_verdict
from taskforge.generators.sql import box, judge
from taskforge.generators.sql.catalog import BUILDER_VERSION, GoldRunner, build_rows, ddl, draw_schema
from taskforge.generators.sql.judge import fingerprint, instances, result_digest, task_key
from taskforge.generators.sql.query import Query, QueryBuilder
from taskforge.generators.sql.screen import Screen, Unsure
from taskforge.registry import register
from taskforge.task import Task, Verdict

MAX_DRAWS = 200  # query redraws per task before giving up


@dataclass
class Settings:
    """How answers are verified in this process. Read from the environment once, here; tests and
    benchmarks may change the fields of `settings`."""

    # Answers run in a worker process by default: DuckDB's interrupt cannot stop work inside one function
    # call, and a single call can allocate gigabytes outside its memory limit (nested replace() was killed
    # by the kernel here). The worker has an address-space limit and is killed at a hard deadline.
    isolate: bool = True  # TASKFORGE_SQL_ISOLATE=0 runs answers in this process
    # Verdicts remembered per task (0: off; benchmarks that repeat one response should turn it off).
    memo_size: int = 256  # TASKFORGE_SQL_MEMO

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            isolate=os.environ.get("TASKFORGE_SQL_ISOLATE", "1") != "0",
            memo_size=int(os.environ.get("TASKFORGE_SQL_MEMO", "256")),
        )


settings = Settings.from_env()
WORKER = box.Worker(judge.TARGET)
_memo_lock = threading.Lock()  # verifiers run on threads (the trainer's batch verification)


@dataclass
class _Job:
    """An answer that must run: its task record, its query text, and the task's memo (None: memo off)."""

    chk: dict[str, Any]
    sql: str
    memo: OrderedDict[str, Verdict] | None


@register
class SQL(Generator):
    family = "sql"
    version = "1"
    description = "Write a DuckDB SELECT over a generated database; checked on several data instances."
    knobs = (
        Knob("tables", int, 3, low=2, high=8, help="tables in the database"),
        Knob("rows", int, 20, low=4, high=200, help="base rows per table (scaled per table)"),
        Knob("instances", int, 2, low=2, high=5, help="database instances the answer must match on"),
        Knob("joins", int, 1, low=1, high=4, help="tables joined in the query"),
        Knob("predicates", int, 1, low=0, high=4, help="simple WHERE predicates"),
        Knob("aggregate", int, 0, low=0, high=2, help="0 none, 1 GROUP BY, 2 GROUP BY + HAVING"),
        Knob("order", int, 0, low=0, high=2, help="0 none, 1 ORDER BY, 2 ORDER BY + LIMIT"),
        Knob("subquery", int, 0, low=0, high=3, help="nesting depth of a subquery predicate"),
        Knob("window", bool, False, help="a window function column"),
        Knob("set_op", bool, False, help="UNION / INTERSECT / EXCEPT of two selects"),
        Knob("distinct", bool, False, help="SELECT DISTINCT / COUNT(DISTINCT)"),
        Knob("max_rows", int, 30, low=1, high=1000, help="results with more rows are redrawn"),
        Knob("timeout_s", float, 2.0, low=0.05, high=60.0, help="per-instance deadline when verifying"),
    )
    levels = (
        {"tables": 2, "joins": 1, "predicates": 1},
        {"tables": 3, "joins": 1, "predicates": 2, "order": 1},
        {"tables": 3, "joins": 2, "predicates": 1, "aggregate": 1},
        {"tables": 4, "joins": 2, "predicates": 1, "subquery": 1, "distinct": True, "order": 1},
        {"tables": 5, "joins": 2, "predicates": 2, "aggregate": 2, "order": 2},
        {"tables": 5, "joins": 3, "predicates": 1, "aggregate": 1, "window": True, "order": 1},
        {"tables": 6, "joins": 2, "predicates": 2, "set_op": True, "subquery": 1, "order": 1},
        {"tables": 8, "joins": 3, "predicates": 2, "aggregate": 2, "subquery": 2, "window": True, "order": 2},
    )

    def difficulty(self, params: dict[str, Any]) -> float:
        p = params
        return (
            1.0 * (p["joins"] - 1)
            + 0.5 * p["predicates"]
            + 1.0 * p["aggregate"]
            + 0.5 * p["order"]
            + 1.5 * p["subquery"]
            + 1.5 * p["window"]
            + 1.5 * p["set_op"]
            + 0.5 * p["distinct"]
            + 0.1 * p["tables"]
            + 0.002 * p["rows"]
        )

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        # `joins` counts the tables the query reads; the database must have that many.
        if params["joins"] > params["tables"]:
            raise KnobError(f"joins={params['joins']} needs tables >= joins, got tables={params['tables']}")

    def generate(self, params: dict[str, Any], rng: random.Random) -> Task:
        schema = draw_schema(rng, params["tables"], params["rows"])
        seeds = [rng.getrandbits(52) for _ in range(params["instances"])]
        built: dict[tuple[int, str], dict[str, list[Any]]] = {}

        def rows_of(i: int, table: str) -> dict[str, list[Any]]:
            if (i, table) not in built:
                built[(i, table)] = build_rows(schema, seeds[i], table)
            return built[(i, table)]

        qb = QueryBuilder(schema, lambda t: rows_of(0, t), rng)
        # The same rows in Python, per instance: a draw these show to be degenerate skips DuckDB (screen.py).
        screens = [Screen(qb.nodes, lambda t, i=i: rows_of(i, t)) for i in range(len(seeds))]
        runner = GoldRunner(schema, rows_of, len(seeds))
        try:
            for _ in range(MAX_DRAWS):
                q = qb.draw(params)
                if q.having is not None and not self._fill_having(q, runner, rng, screens[0]):
                    continue
                if any(s.rejects(q, params["max_rows"]) for s in screens):  # empty or too long somewhere
                    continue
                gold = q.to_sql()
                results: list[list[tuple]] = []
                for i in range(len(seeds)):  # instance 0 first: most degenerate draws stop there
                    r = runner.run(i, gold)
                    if (
                        r is None
                        or not r
                        or len(r) > params["max_rows"]
                        or all(v is None for row in r for v in row)
                    ):
                        break
                    results.append(r)
                if len(results) < len(seeds):
                    continue
                order_keys = [k - 1 for k, _ in q.order] or None
                digests = [result_digest(r, order_keys) for r in results]
                if len(set(digests)) > 1:  # identical on every instance: a hard-coded answer would pass
                    break
            else:
                raise GenerationError(f"sql: no non-degenerate query in {MAX_DRAWS} draws for {params}")
        finally:
            runner.close()
        question = q.to_english()
        prompt = (
            "You are given a DuckDB database with this schema:\n\n" + "\n".join(ddl(schema)) + "\n\n"
            f"Question: {question}\n\n"
            f"Write one DuckDB SELECT statement that answers the question. It will be run on {len(seeds)} "
            "databases with this schema but different rows and must give the right result on each. "
            "Put the query in a ```sql fenced block."
        )
        check = {
            "builder": BUILDER_VERSION,
            "schema": schema,
            "seeds": seeds,
            "gold": gold,
            "order_keys": order_keys,
            "digests": digests,
            "max_rows": params["max_rows"],
            "timeout_s": params["timeout_s"],
        }
        meta = {"rows": [len(r) for r in results], "question": question}
        return self.make_task(params, prompt=prompt, answer=gold, check=check, meta=meta)

    @staticmethod
    def _fill_having(q: Query, runner: GoldRunner, rng: random.Random, screen: Screen) -> bool:
        """Pick a HAVING threshold from the first instance's group values, so some groups pass."""
        agg_sql, agg_en = q.having
        try:  # the group values from the Python screen, exact (screen.py); DuckDB where it is unsure
            present = screen.probe_floats(q, agg_sql)
        except Unsure:
            probe = Query(
                **{
                    **q.__dict__,
                    "select": [(agg_sql, "")],
                    "having": None,
                    "set_op": None,
                    "order": [],
                    "limit": None,
                }
            )
            values = runner.run(0, probe.to_sql())
            present = sorted({float(v[0]) for v in values or [] if v[0] is not None})
        if len(present) < 2:
            return False
        cut = present[rng.randrange(len(present) - 1)]
        text = f"{cut:.2f}".rstrip("0").rstrip(".")
        q.having = (f"{agg_sql} > {text}", f"{agg_en} is greater than {text}")
        return True

    # ---- verification ------------------------------------------------------------------------
    def verify(self, task: Task, response: str) -> Verdict:
        job = self._prepare(task, response)
        return job if isinstance(job, Verdict) else self._judge([job])[0]

    def verify_many(self, tasks: Sequence[Task], responses: Sequence[Any]) -> list[Verdict]:
        """The Verdicts `safe_verify` gives one at a time, from one worker round: answers are extracted
        and checked here (memo hits never reach the worker), the rest go to the worker in one request,
        grouped by task so each task's databases are built or found once. Each answer keeps its own
        deadline inside the round, so a runaway answer gets `timeout` and the others their verdicts."""
        if len(tasks) != len(responses):
            raise ValueError(f"{len(tasks)} tasks for {len(responses)} responses")
        verdicts: list[Verdict | None] = [None] * len(tasks)
        jobs: list[tuple[int, _Job]] = []
        for i, (task, response) in enumerate(zip(tasks, responses, strict=True)):
            if (refused := self.screen(response)) is not None:  # not text, or too long to read
                verdicts[i] = refused
                continue
            try:
                job = self._prepare(task, response)
            except Exception:  # a bad record: safe_verify below says what, as it would one at a time
                job = None
            if isinstance(job, _Job):
                jobs.append((i, job))
            else:
                verdicts[i] = job or self.safe_verify(task, response)
        try:
            for (i, _), verdict in zip(jobs, self._judge([job for _, job in jobs]), strict=True):
                verdicts[i] = verdict
        except Exception:  # a verifier bug must not take the batch down: the total path, one at a time
            for i, _ in jobs:
                verdicts[i] = verdicts[i] or self.safe_verify(tasks[i], responses[i])
        return verdicts  # type: ignore[return-value]

    @staticmethod
    def _prepare(task: Task, response: str) -> Verdict | _Job:
        """What is decided without running the answer: its extraction, its length, the record's builder
        version and the memo; else the job to run."""
        sql = extract_block(response, "sql")
        if sql is None:
            return Verdict.fail("no_answer")
        sql = sql.strip()
        if len(sql) > box.MAX_SQL_CHARS:
            return Verdict.fail("malformed", parsed=sql[:200], error="query too long")
        chk = task.check
        if chk.get("builder") != BUILDER_VERSION:
            return Verdict.fail("error", error=f"task built by data builder {chk.get('builder')}")
        memo = judge.TASKS.get(chk, OrderedDict) if settings.memo_size else None
        if memo is not None:
            with _memo_lock:
                known = memo.get(sql)
            if known is not None:  # the same text for the same task: the G samples of a prompt often agree
                return known
        return _Job(chk, sql, memo)

    @staticmethod
    def _judge(jobs: list[_Job]) -> list[Verdict]:
        """Run the jobs (in the worker, in one request, or in this process) and memoise their verdicts."""
        # With the memo on, a text repeated for the same task runs once, as it would one at a time (the
        # second copy would be a memo hit).
        first: dict[tuple[int, str], int] = {}
        slot = [
            first.setdefault((id(j.memo), j.sql), k) if j.memo is not None else k for k, j in enumerate(jobs)
        ]
        unique = [j for k, j in enumerate(jobs) if slot[k] == k]
        raised: set[int] = set()
        if settings.isolate:
            deadlines = [judge.worker_deadline(j.chk) for j in unique]
            outcomes = WORKER.call_many(
                "judge",
                [(task_key(j.chk), j.chk, j.sql, d) for j, d in zip(unique, deadlines, strict=True)],
                retry_errors=True,
                replace=judge.worker_spent,
            )
            ran = [
                judge.from_worker(*o, j.sql, d) for o, j, d in zip(outcomes, unique, deadlines, strict=True)
            ]
        else:
            # Grouped by task, so a batch wider than the database cache does not rebuild a task twice.
            order = sorted(range(len(unique)), key=lambda k: task_key(unique[k].chk))
            ran = [None] * len(unique)
            for k in order:
                try:
                    ran[k] = judge.judge_check(unique[k].chk, unique[k].sql)
                except Exception as exc:  # this answer's record is broken, not the batch; not memoised
                    ran[k] = error_verdict(exc)
                    raised.add(k)
        size = settings.memo_size
        for k, (j, verdict) in enumerate(zip(unique, ran, strict=True)):
            if j.memo is not None and verdict.reason != "timeout" and k not in raised:
                with _memo_lock:
                    j.memo[j.sql] = verdict
                    while len(j.memo) > size:
                        j.memo.popitem(last=False)
        by_slot = dict(zip([k for k in range(len(jobs)) if slot[k] == k], ran, strict=True))
        return [by_slot[k] for k in slot]

    def gold_response(self, task: Task) -> str:
        return f"```sql\n{task.answer}\n```"

    def corrupt_answer(self, task: Task, rng: random.Random) -> str | None:
        # Both are wrong whatever the data: gold results are never empty, and the width must match.
        wrong = rng.choice(
            [
                f"SELECT * FROM ({task.answer}) AS q WHERE FALSE",
                f"SELECT *, 1 AS extra FROM ({task.answer}) AS q",
            ]
        )
        return f"```sql\n{wrong}\n```"


__all__ = ["SQL", "WORKER", "Settings", "build_rows", "fingerprint", "instances", "settings", "task_key"]
