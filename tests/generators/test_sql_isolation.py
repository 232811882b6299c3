"""SQL hardening (issue 10): table functions on an allow-list (SQL hidden in string arguments included),
exact comparison of ints and DECIMALs, and nothing of an earlier answer or the gold query visible to a
later answer on the same connection."""

from __future__ import annotations

import time
from decimal import Decimal

import pyarrow as pa
import pytest

import taskforge
from taskforge.generators.sql import box as sqlbox
from taskforge.registry import get_generator
from taskforge.task import Task

GEN = get_generator("sql")


@pytest.fixture(scope="module")
def task() -> Task:
    return next(iter(taskforge.generate("sql", 1, level=2, seed=5, params={"timeout_s": 0.5})))


def fenced(sql: str) -> str:
    return f"```sql\n{sql}\n```"


SMUGGLED = [
    # a denied builder inside the string given to query(): only a constant in the outer tree
    "SELECT * FROM query('SELECT list_reduce(range(12000000), lambda a, b: a + b)')",
    "SELECT * FROM query('SELECT 1')",
    "SELECT * FROM \"query\" /* spaced */ ('SELECT 1')",
    "SELECT * FROM system.main.query_table('t')",
    "SELECT * FROM GLOB -- a comment\n('/etc/*')",
    "SELECT * FROM json_execute_serialized_sql('{}')",
    "SELECT * FROM unnest(['SELECT * FROM query(''SELECT 1'')'])",  # SQL in a string of an allowed one
    # the catalogue, settings, earlier statements
    "SELECT * FROM duckdb_tables()",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM duckdb_prepared_statements()",
    "SELECT * FROM duckdb_variables()",
    "SELECT * FROM pragma_table_info('t')",
    "SELECT 1 FROM (SELECT 1) WHERE 1 IN (SELECT 1 FROM duckdb_logs())",
    "SELECT pg_get_viewdef(1)",  # a built-in macro whose body reads duckdb_views()
    "SELECT setseed(0.5)",  # connection state a later answer would inherit
]


@pytest.mark.parametrize("sql", SMUGGLED)
def test_table_functions_off_the_allow_list_are_rejected(sql: str) -> None:
    with pytest.raises(sqlbox.Rejected):
        sqlbox.parse_statement(sql)


def test_plain_queries_and_unnest_still_parse() -> None:
    for sql in (
        "SELECT a, count(*), sum(b), avg(c) FROM t WHERE a IN (SELECT 1) AND s GLOB 'x*' GROUP BY a",
        "SELECT CAST(a AS BIGINT), coalesce(b, 0), row_number() OVER (ORDER BY a) FROM t",
        "SELECT * FROM t, LATERAL unnest(t.l) AS u(x)",
        "SELECT unnest([1, 2, 3])",
    ):
        sqlbox.parse_statement(sql)


def test_query_smuggling_is_rejected_fast_in_process(task: Task, monkeypatch) -> None:
    from taskforge.generators import sql as S

    monkeypatch.setattr(S.settings, "isolate", False)
    start = time.monotonic()
    verdict = GEN.safe_verify(task, fenced(SMUGGLED[0]))
    assert verdict.reason == "rejected", verdict
    assert time.monotonic() - start < 5.0  # it ran 10 s past a 0.5 s deadline before


def test_ints_and_decimals_compare_exactly() -> None:
    compare = sqlbox.compare
    assert compare([(1234568,)], [(1234567,)], None) != ""
    assert compare([(Decimal("250000.01"),)], [(Decimal("250000.00"),)], None) != ""
    assert compare([(5,)], [(Decimal("5.00"),)], None) == ""  # the same number, exactly
    assert compare([(10**20 + 1,)], [(10**20,)], None) != ""
    # ints that round alike still match as multisets in any order
    assert compare([(1234568, "b"), (1234567, "a")], [(1234567, "a"), (1234568, "b")], None) == ""
    # a float is approximate on either side: the tolerance applies
    assert compare([(0.1 + 0.2,)], [(Decimal("0.3"),)], None) == ""
    assert compare([(1234567.0000001,)], [(1234567,)], None) == ""


def _answer(cur, sql: str) -> sqlbox.Outcome:
    """An answer as the judge runs it: checked, then executed on the instance's cursor."""
    try:
        stmt = sqlbox.parse_statement(sql)
    except (sqlbox.Rejected, sqlbox.Malformed) as exc:
        return sqlbox.Outcome(None, "rejected", str(exc))
    return sqlbox.run_query(cur, stmt, timeout_s=2.0, max_rows=100)


def test_a_later_answer_sees_nothing_of_earlier_ones_or_the_gold(tmp_path) -> None:
    data = [[("t", "CREATE TABLE t (a INTEGER)", pa.table({"a": [1, 2]}))]]
    owner, (cur,) = sqlbox.build_locked(data, str(tmp_path), "k")
    try:
        gold = "SELECT 'GOLD-7f3a' AS g, a FROM t ORDER BY a"
        assert sqlbox.run_query(cur, gold, timeout_s=2.0, max_rows=10).rows  # the gold ran here first
        # earlier answers try to leave something behind: each is refused before it runs
        for sql in (
            "SET VARIABLE leak = 'x'",
            "CREATE TEMP TABLE leak AS SELECT 1",
            "PREPARE leak AS SELECT 1",
            "SELECT setseed(0.25)",
            "SELECT * FROM query('SET VARIABLE leak = 1')",
        ):
            assert _answer(cur, sql).reason == "rejected", sql
        later = _answer(cur, "SELECT getvariable('leak') AS v, current_query() AS q")
        assert later.rows is not None and later.rows[0][0] is None
        assert "GOLD" not in later.rows[0][1]
        for sql in ("SELECT * FROM duckdb_prepared_statements()", "SELECT * FROM duckdb_temporary_files()"):
            assert _answer(cur, sql).reason == "rejected", sql
    finally:
        for c in (cur, owner):
            c.close()


def test_worker_keeps_no_state_between_answers(task: Task) -> None:
    """The same through the worker process that judges real answers."""
    gold = task.answer.strip().rstrip(";")
    assert GEN.safe_verify(task, fenced("SET VARIABLE leak = 1")).reason == "rejected"
    probe = f"SELECT * FROM ({gold}) AS g WHERE getvariable('leak') = 1"
    assert not GEN.safe_verify(task, fenced(probe)).passed
    assert GEN.safe_verify(task, fenced(gold)).passed
