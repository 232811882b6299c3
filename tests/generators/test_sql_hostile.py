"""Hostile SQL: every attack returns a Verdict and changes neither the databases nor the host."""

from __future__ import annotations

import os
import random
import time

import pytest

import taskforge
from taskforge.generators import sql as S
from taskforge.generators.sql import box, judge
from taskforge.registry import get_generator
from taskforge.task import Task

GEN = get_generator("sql")


@pytest.fixture(scope="module")
def task() -> Task:
    # A short deadline keeps the runaway-query tests quick.
    return next(iter(taskforge.generate("sql", 1, level=2, seed=5, params={"timeout_s": 0.5})))


def fingerprint(task: Task) -> list[str]:
    """A hash of every row of every table of every instance, read in the process that ran the answers."""
    if not S.settings.isolate:
        return judge.fingerprint(task.check)
    status, result = S.WORKER.call("fingerprint", judge.task_key(task.check), task.check, "", 30.0)
    assert status == "ok", (status, result)
    return result


def fenced(sql: str) -> str:
    return f"```sql\n{sql}\n```"


WRITE_ATTACKS = [  # templates: {table} a table of the task, {target} a file, {tmp} a folder
    "SELECT 1; DROP TABLE {table}",
    "SELECT * FROM {table}; DELETE FROM {table}",
    "WITH d AS (DELETE FROM {table} RETURNING *) SELECT count(*) FROM d",
    "WITH d AS (UPDATE {table} SET id = id + 1000 RETURNING *) SELECT * FROM d",
    "WITH d AS (INSERT INTO {table} (id) VALUES (99999) RETURNING *) SELECT * FROM d",
    "DELETE FROM {table}",
    "UPDATE {table} SET id = 0",
    "INSERT INTO {table} (id) VALUES (424242)",
    "DROP TABLE {table}",
    "CREATE TABLE pwn AS SELECT * FROM {table}",
    "CREATE TEMP TABLE {table} AS SELECT 1 AS id",  # would shadow the real table for later samples
    "CREATE MACRO {table}_m() AS 1",
    "ALTER TABLE {table} RENAME TO gone",
    "COPY {table} TO '{target}'",
    "COPY (SELECT 42) TO '{target}' (FORMAT csv)",
    "EXPORT DATABASE '{tmp}/dump'",
    "ATTACH '{tmp}/other.duckdb' AS other",
    "DETACH memory",
    "INSTALL httpfs",
    "LOAD httpfs",
    "PRAGMA enable_profiling",
    "PRAGMA database_list",
    "SET threads = 8",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "CALL pragma_version()",
    "CHECKPOINT",
    "EXPLAIN SELECT 1",
    "USE memory",
    "BEGIN TRANSACTION",
    "VACUUM",
]


@pytest.mark.parametrize("attack", WRITE_ATTACKS)
def test_write_attempts_are_rejected(task: Task, tmp_path, attack: str) -> None:
    sql = attack.format(table=task.check["schema"][0]["name"], target=tmp_path / "leak.csv", tmp=tmp_path)
    before, files_before = fingerprint(task), sorted(os.listdir(tmp_path))
    verdict = GEN.safe_verify(task, fenced(sql))
    assert verdict.reason == "rejected" and not verdict.passed, verdict
    assert fingerprint(task) == before
    assert sorted(os.listdir(tmp_path)) == files_before
    assert GEN.safe_verify(task, GEN.gold_response(task)).passed


def test_the_read_only_database_is_the_real_guard(task: Task) -> None:
    """Past the statement checks, a data-modifying CTE still cannot write: the database is read-only."""
    table = task.check["schema"][0]["name"]
    before = judge.fingerprint(task.check)
    con = judge.instances(task.check).connections[0]
    for sql in (
        f"WITH d AS (DELETE FROM {table} RETURNING *) SELECT count(*) FROM d",
        f"WITH d AS (UPDATE {table} SET id = -id RETURNING id) SELECT * FROM d",
    ):
        out = box.run_query(con, sql, timeout_s=2, max_rows=10)
        assert out.reason == "rejected" and "read-only" in out.error, out
    assert judge.fingerprint(task.check) == before


HOST_ATTACKS = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd', header = false)",
    "SELECT * FROM '/etc/passwd'",
    "SELECT content FROM read_text('/etc/hostname')",
    "SELECT * FROM read_blob('/etc/shadow')",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM read_parquet('https://example.com/x.parquet')",
    "SELECT * FROM read_json('/proc/self/environ')",
]


@pytest.mark.parametrize("sql", HOST_ATTACKS)
def test_host_access_is_blocked(task: Task, sql: str) -> None:
    verdict = GEN.safe_verify(task, fenced(sql))
    assert not verdict.passed and verdict.reason in ("rejected", "wrong"), verdict
    assert "root:" not in repr(verdict.details)


@pytest.mark.parametrize("inner", ["DROP TABLE {table}", "DELETE FROM {table}", "INSTALL httpfs"])
def test_query_function_cannot_smuggle_statements(task: Task, inner: str) -> None:
    before = fingerprint(task)
    inner = inner.format(table=task.check["schema"][0]["name"])
    verdict = GEN.safe_verify(task, fenced(f"SELECT * FROM query('{inner}')"))
    assert not verdict.passed, verdict
    assert fingerprint(task) == before


def cross(task: Task, copies: int, select: str) -> str:
    table = max(task.check["schema"], key=lambda t: t["rows"])["name"]
    return f"SELECT {select} FROM " + ", ".join(f"{table} AS t{i}" for i in range(copies))


def test_runaway_cross_join_times_out_and_connection_survives(task: Task) -> None:
    start = time.monotonic()
    verdict = GEN.safe_verify(task, fenced(cross(task, 12, "count(*)")))  # more than 10^15 row combinations
    elapsed = time.monotonic() - start
    # Bounded either way: the deadline interrupts it, or (with a larger table) the memory limit stops it first.
    assert not verdict.passed
    assert verdict.reason == "timeout" or "memory" in str(verdict.details).lower(), verdict
    assert elapsed < 10
    # The cached connections answer the next query, and the timeout was not memoised.
    assert GEN.safe_verify(task, GEN.gold_response(task)).passed
    recursive = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
    assert GEN.safe_verify(task, fenced(recursive)).reason == "timeout"
    assert GEN.safe_verify(task, GEN.gold_response(task)).passed


def test_billion_rows_are_bounded(task: Task) -> None:
    start = time.monotonic()
    verdict = GEN.safe_verify(task, fenced(cross(task, 7, "t0.id")))  # more than 10^9 rows, streamed
    assert verdict.reason == "wrong" and "rows" in verdict.details["error"] and time.monotonic() - start < 5
    sorted_big = GEN.safe_verify(task, fenced(cross(task, 7, "t0.id") + " ORDER BY 1 DESC"))
    assert not sorted_big.passed and sorted_big.reason in ("wrong", "timeout")
    assert GEN.safe_verify(task, GEN.gold_response(task)).passed


UNINTERRUPTIBLE = [
    "SELECT len(range(1000000000))",
    "SELECT * FROM range(1000000000)",
    "SELECT \"RePeat\"('x', 1000000000)",
    "SELECT lpad('', 1000000000, 'x')",
    "SELECT len(list_resize([1], 1000000000))",
    "SELECT printf('%1000000000d', 1)",
    "SELECT * FROM generate_series(1, 1000000000)",
]


@pytest.mark.parametrize("sql", UNINTERRUPTIBLE)
def test_uninterruptible_builders_are_refused(task: Task, sql: str) -> None:
    """DuckDB checks for interrupts between chunks, not inside one function call: these would run for
    minutes past the deadline, so they are refused by name before running."""
    # A text the memo has not seen starts the worker if needed, so only the refusal is timed.
    assert GEN.safe_verify(task, fenced(f"{task.answer}\n-- warm up")).passed
    start = time.monotonic()
    verdict = GEN.safe_verify(task, fenced(sql))
    assert verdict.reason == "rejected" and time.monotonic() - start < 2, verdict


def test_the_refused_names_alone_are_fine(task: Task) -> None:
    assert GEN.safe_verify(task, fenced("SELECT 'repeat' AS range")).reason == "wrong"


def test_memory_bomb_stays_in_the_worker(task: Task) -> None:
    """One nested replace() asks for ~27 GB in a single call, past DuckDB's memory limit and its interrupt
    (in-process it was killed by the kernel). The worker's address-space limit and hard deadline hold it."""
    lit = "'" + "x" * 3000 + "'"
    start = time.monotonic()
    verdict = GEN.safe_verify(task, fenced(f"SELECT len(replace(replace({lit}, 'x', {lit}), 'x', {lit}))"))
    assert not verdict.passed and verdict.reason in ("timeout", "rejected", "wrong"), verdict
    assert time.monotonic() - start < 15
    assert GEN.safe_verify(task, GEN.gold_response(task)).passed


def test_huge_strings(task: Task) -> None:
    for sql in (
        "SELECT string_agg(md5(a.id::VARCHAR || b.id::VARCHAR || c.id::VARCHAR), '') FROM "
        + ", ".join(f"{task.check['schema'][0]['name']} AS {x}" for x in "abc"),
    ):
        verdict = GEN.safe_verify(task, fenced(sql))
        assert not verdict.passed and verdict.reason in ("wrong", "timeout"), (sql, verdict)
    # A 50 MB response is rejected before extraction (the response limit); a long query within it is
    # refused before DuckDB sees it.
    assert GEN.safe_verify(task, "x" * 50_000_000).reason == "rejected"
    assert GEN.safe_verify(task, fenced("SELECT " + "1+" * 150_000 + "1")).reason == "malformed"
    assert GEN.safe_verify(task, fenced("SELECT '" + "x" * 300_000 + "'")).reason == "malformed"
    assert GEN.safe_verify(task, GEN.gold_response(task)).passed


def test_garbage_never_raises(task: Task) -> None:
    rng = random.Random(7)
    samples: list[object] = [
        None,
        42,
        b"SELECT 1",
        "",
        "```sql",
        "```sql\n",
        "```\n```",
        "<answer></answer>",
        "<answer>;;;</answer>",
        fenced(";"),
        fenced("-- only a comment"),
        fenced("/* unterminated"),
        fenced("SELECT '\x00'"),
        fenced("SELECT 'ünïcödé ☃', '\ud800'"),
        fenced("SELECT (((((((((((1)))))))))))"),
        fenced("SELECT " + "(" * 5000 + "1" + ")" * 5000),
    ]
    alphabet = "SELECT FROM WHERE ();,'\"`*\\\n\t-/"
    samples += [fenced("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 200)))) for _ in range(100)]
    samples += ["".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(300)) for _ in range(20)]
    before = fingerprint(task)
    for response in samples:
        verdict = GEN.safe_verify(task, response)  # type: ignore[arg-type]
        assert not verdict.passed
        assert verdict.reason in ("no_answer", "malformed", "rejected", "wrong", "timeout"), (
            response,
            verdict,
        )
    assert fingerprint(task) == before


def test_settings_stay_locked(task: Task) -> None:
    con = judge.instances(task.check).connections[0]
    settings = dict(
        con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', 'lock_configuration',"
            " 'threads', 'autoload_known_extensions', 'autoinstall_known_extensions', 'access_mode')"
        ).fetchall()
    )
    assert settings["enable_external_access"] == "false"
    assert settings["lock_configuration"] == "true"
    assert settings["threads"] == "1"
    assert settings["autoload_known_extensions"] == "false"
    assert settings["autoinstall_known_extensions"] == "false"


def test_worker_is_killed_at_the_hard_deadline_and_restarts(task: Task) -> None:
    if not S.settings.isolate:
        pytest.skip("answers run in-process (TASKFORGE_SQL_ISOLATE=0)")
    GEN.safe_verify(task, GEN.gold_response(task))  # worker up, databases built
    first = S.WORKER.pid
    assert first is not None
    key = judge.task_key(task.check)
    status, _ = S.WORKER.judge(key, task.check, cross(task, 12, "count(*)"), deadline_s=0.05)
    assert status == "timeout"
    assert S.WORKER.pid is None  # killed, not left running
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)
    again = f"```sql\n{task.answer}\n-- again\n```"  # a new text: the memo does not answer
    assert GEN.safe_verify(task, again).passed  # a fresh worker, databases rebuilt
    assert S.WORKER.pid not in (None, first)
