"""Judging one SQL answer against a task record: what runs in the worker process (`OPS`).

A task's databases are rebuilt from its record (schema spec + one seed per instance), locked, and kept in
an LRU; the gold query runs once per instance and must reproduce the digests the record holds, so a record
whose data no longer rebuilds the same is refused rather than judged. An answer is parsed once, run on
every instance with the record's deadline, and compared with the gold result as the gold query defines it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import duckdb

from taskforge.cache import IdentityLRU
from taskforge.generators.sql import box
from taskforge.generators.sql.catalog import arrow_table, build_rows, ddl
from taskforge.task import Verdict

# The task records this process has seen: each one's content key (hashed once per record object) and, in
# the parent, the verdicts memoised for it (query text -> verdict, oldest first).
TASKS: IdentityLRU[OrderedDict[str, Verdict]] = IdentityLRU(256, identities=1024)
DATABASES = box.DatabaseCache(capacity=32)


def task_key(check: dict[str, Any]) -> str:
    """The content key of a task record: names its databases here and in the worker."""
    return TASKS.key(check)


def result_digest(rows: list[tuple], order_keys: list[int] | None) -> str:
    """A fingerprint of a result as `compare` sees it: the multiset of rows, plus the sequence of sort
    keys when the query orders (rows tied on the keys may come in any order)."""
    norm = box.normalise(rows)
    keys = [tuple(r[k] for k in order_keys) for r in norm] if order_keys else []
    return hashlib.blake2b(repr([sorted(norm), keys]).encode(), digest_size=8).hexdigest()


@dataclass
class Instances:
    """A task's locked database instances and their gold results."""

    connections: list[duckdb.DuckDBPyConnection]
    gold: list[list[tuple] | None]  # None where the rebuilt gold result does not match the record
    gold_sorted: list[list[tuple] | None]  # each in compare's order, computed once
    owner: duckdb.DuckDBPyConnection  # the locked connection the cursors belong to

    def close(self) -> None:
        for con in [*self.connections, self.owner]:
            con.close()


def instances(check: dict[str, Any]) -> Instances:
    """The task's locked database instances and gold results, built once and kept in an LRU."""
    key = task_key(check)
    return DATABASES.get(key, lambda: _build(check, key))


def _build(check: dict[str, Any], key: str) -> Instances:
    schema, statements = check["schema"], ddl(check["schema"])
    data = [
        [
            (t["name"], stmt, arrow_table(schema, build_rows(schema, seed, t["name"]), t["name"]))
            for t, stmt in zip(schema, statements, strict=True)
        ]
        for seed in check["seeds"]
    ]
    owner, cursors = box.build_locked(data, DATABASES.directory(), key)
    golds: list[list[tuple] | None] = []
    for i, cur in enumerate(cursors):
        out = box.run_query(cur, check["gold"], timeout_s=30.0, max_rows=100_000)
        ok = out.reason == "ok" and result_digest(out.rows, check["order_keys"]) == check["digests"][i]
        golds.append(out.rows if ok else None)
    ordered = [None if g is None else box.sort_rows(g) for g in golds]
    return Instances(cursors, golds, ordered, owner)


def judge(dbs: Instances, sql: str, check: dict[str, Any]) -> Verdict:
    """The verdict on one answer's text, run on every instance of the task."""
    shown = sql[:200]
    try:
        stmt = box.parse_statement(sql)
    except box.Rejected as exc:
        return Verdict.fail("rejected", parsed=shown, error=str(exc))
    except box.Malformed as exc:
        return Verdict.fail("malformed", parsed=shown, error=str(exc))
    for i, (con, gold) in enumerate(zip(dbs.connections, dbs.gold, strict=True)):
        if gold is None:
            return Verdict.fail("error", parsed=shown, error=f"gold result of instance {i} does not match")
        out = box.run_query(con, stmt, timeout_s=check["timeout_s"], max_rows=len(gold))
        if out.reason == "too_many":
            return Verdict.fail("wrong", parsed=shown, instance=i, error=out.error)
        if out.reason != "ok":
            return Verdict.fail(out.reason, parsed=shown, instance=i, error=out.error)
        diff = box.compare(out.rows, gold, check["order_keys"], dbs.gold_sorted[i])
        if diff:
            return Verdict.fail("wrong", parsed=shown, instance=i, error=diff)
    return Verdict.ok(parsed=shown, instances=len(dbs.connections))


def judge_check(check: dict[str, Any], sql: str) -> Verdict:
    """Judge in this process: what the worker runs, and what verify runs when answers are not isolated."""
    return judge(instances(check), sql, check)


def fingerprint(check: dict[str, Any]) -> list[str]:
    """A digest of every table of every instance as the locked connections read them."""
    out = []
    for con in instances(check).connections:
        for t in check["schema"]:
            name = t["name"]
            row = con.execute(
                f"SELECT count(*), md5(string_agg({name}::VARCHAR, '|' ORDER BY id)) FROM {name}"
            )
            out.append(repr(row.fetchone()))
    return out


def worker_deadline(check: dict[str, Any]) -> float:
    """Seconds the worker gets for one answer: every instance's deadline, plus a grace."""
    return len(check["seeds"]) * float(check["timeout_s"]) + box.WORKER_GRACE_S


def from_worker(status: str, result: Any, sql: str, deadline_s: float) -> Verdict:
    """The verdict for what `box.Worker.judge` reported: the one place a worker outcome becomes a Verdict."""
    shown = sql[:200]
    if status == "ok":
        return Verdict(**result)
    if status == "timeout":
        return Verdict.fail("timeout", parsed=shown, error=f"worker killed after {deadline_s:.1f}s")
    if status == "crashed":
        return Verdict.fail("rejected", parsed=shown, error="the query brought down the sandbox")
    return Verdict.fail("error", parsed=shown, error=str(result)[:300])


# The worker's operations, each fn(check, sql) -> JSON-able; `box.Worker` names this table by its target.
OPS = {
    "build": lambda check, sql: bool(instances(check).connections),
    "judge": lambda check, sql: judge_check(check, sql).to_dict(),
    "fingerprint": lambda check, sql: fingerprint(check),
}
TARGET = f"{__name__}:OPS"
