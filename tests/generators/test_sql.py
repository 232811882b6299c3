"""The sql family: gold passes everywhere, wrong and hard-coded answers fail, comparison semantics."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import duckdb
import pytest

import taskforge
from taskforge.generators.sql.box import compare
from taskforge.generators.sql.catalog import build_rows
from taskforge.generators.sql.judge import instances
from taskforge.registry import get_generator
from taskforge.task import Task

GEN = get_generator("sql")


def tasks(level: int, n: int = 4, seed: int = 0) -> list[Task]:
    return list(taskforge.generate("sql", n, level=level, seed=seed))


def fenced(sql: str) -> str:
    return f"Here it is.\n```sql\n{sql}\n```"


def sql_literal(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float, Decimal)):
        return str(v)
    if hasattr(v, "isoformat"):
        return f"DATE '{v.isoformat()}'"
    return "'" + str(v).replace("'", "''") + "'"


@pytest.mark.parametrize("level", range(len(GEN.levels)))
def test_gold_passes_on_every_instance(level: int) -> None:
    for task in tasks(level):
        assert len(task.check["seeds"]) >= 2
        verdict = GEN.safe_verify(task, GEN.gold_response(task))
        assert verdict.passed, (verdict, task.answer)
        assert verdict.details["instances"] == len(task.check["seeds"])
        # The gold also passes when given in an <answer> block and read back from JSON.
        again = Task.from_json(task.to_json())
        assert GEN.safe_verify(again, f"<answer>{task.answer}</answer>").passed


@pytest.mark.parametrize("level", [0, 3, 7])
def test_wrong_queries_fail(level: int) -> None:
    for task in tasks(level):
        for seed in range(2):
            verdict = GEN.safe_verify(task, GEN.corrupt_answer(task, random.Random(seed)))
            assert not verdict.passed and verdict.reason == "wrong", verdict
        # Another level's query over the same tables is (almost always) a different result.
        assert not GEN.safe_verify(task, fenced("SELECT 1")).passed


def test_hardcoded_first_instance_fails_on_the_second() -> None:
    for task in tasks(2, n=3) + tasks(5, n=3):
        dbs = instances(task.check)
        gold0 = dbs.gold[0]
        rows = ", ".join("(" + ", ".join(sql_literal(v) for v in row) + ")" for row in gold0)
        width = len(gold0[0])
        names = ", ".join(f"c{i}" for i in range(width))
        cheat = f"SELECT * FROM (VALUES {rows}) AS v({names})"
        if task.check["order_keys"]:
            cheat += " ORDER BY " + ", ".join(
                f"c{k} {'DESC' if d else 'ASC'} NULLS LAST" for k, d in _order_dirs(task)
            )
        verdict = GEN.safe_verify(task, fenced(cheat))
        assert not verdict.passed and verdict.details.get("instance", 0) >= 1, (verdict, task.answer)


def _order_dirs(task: Task) -> list[tuple[int, bool]]:
    # Recover the gold ORDER BY from its SQL: "ORDER BY 2 DESC NULLS LAST, 1 ASC NULLS LAST".
    tail = task.answer.rsplit(" ORDER BY ", 1)[1].split(" LIMIT ")[0]
    out = []
    for part in tail.split(", "):
        pos, direction = part.split()[:2]
        out.append((int(pos) - 1, direction == "DESC"))
    return out


def test_compare_semantics() -> None:
    gold = [(1, "a", Decimal("2.50")), (2, None, 1 / 3)]
    assert compare([(2, None, 0.3333333333), (1, "a", 2.5)], gold, None) == ""  # multiset, floats rounded
    assert compare([(2, None, 0.3333333333), (1, "a", 2.5)], gold, [0]) != ""  # gold orders by column 0
    assert compare([(1, "a", 2.5), (2, None, 0.33334)], gold, [0]) != ""  # beyond 1e-6 relative
    assert compare([(1, "a", 2.5), (2, None, 0.3333333333)], gold, [0]) == ""
    assert compare([(1, "a", 2.5), (2, "b", 1 / 3)], gold, None) != ""  # NULL only equals NULL
    assert compare([(1, "a"), (2, None)], gold, None) != ""  # column count
    assert compare([(1, "a", 2.5)], gold, None) != ""  # row count
    assert compare([(True,)], [(1,)], None) != ""  # booleans are not numbers
    # Ties on the sort key may come in any order.
    assert compare([(1, "y"), (1, "x"), (0, "z")], [(1, "x"), (1, "y"), (0, "z")], [0]) == ""


def _sort_keys_vary(task: Task) -> bool:
    """Whether some instance's gold result has two different sort-key values (so order is visible)."""
    keys = [k for k, _ in _order_dirs(task)]
    return any(len({tuple(r[k] for k in keys) for r in gold}) > 1 for gold in instances(task.check).gold)


def test_order_matters_only_when_gold_orders() -> None:
    ordered = next(
        t
        for t in tasks(1, n=12)
        if t.check["order_keys"] and " LIMIT " not in t.answer and _sort_keys_vary(t)
    )
    # Same rows with the sort keys in the reverse order fail on an ordered task...
    flipped = ", ".join(f"{k + 1} {'ASC' if d else 'DESC'} NULLS FIRST" for k, d in _order_dirs(ordered))
    inner = ordered.answer.rsplit(" ORDER BY ", 1)[0]
    verdict = GEN.safe_verify(ordered, fenced(f"{inner} ORDER BY {flipped}"))
    assert verdict.reason == "wrong" and "out of order" in verdict.details["error"], verdict
    # ...and any order passes on an unordered task.
    plain = next(t for t in tasks(0, n=12) if not t.check["order_keys"] and max(t.meta["rows"]) > 1)
    assert GEN.safe_verify(plain, fenced(plain.answer + " ORDER BY 1 DESC")).passed
    assert GEN.safe_verify(plain, fenced(plain.answer + " ORDER BY 1 ASC")).passed


def test_columns_compared_by_position() -> None:
    task = next(t for t in tasks(2, n=8) if len(t.answer.split(" FROM ")[0].split(",")) >= 2)
    select, rest = task.answer.split(" FROM ", 1)
    cols = [c.strip() for c in select[len("SELECT ") :].split(", ")]
    if len(cols) >= 2 and "(" not in cols[0] and "(" not in cols[1] or len(cols) >= 2:
        swapped = "SELECT " + ", ".join([cols[1], cols[0], *cols[2:]]) + " FROM " + rest
        assert not GEN.safe_verify(task, fenced(swapped)).passed
    aliased = "SELECT " + ", ".join(f"{c} AS x{i}" for i, c in enumerate(cols)) + " FROM " + rest
    assert GEN.safe_verify(task, fenced(aliased)).passed  # names do not matter


def test_answer_extraction() -> None:
    task = tasks(0, n=1)[0]
    assert GEN.safe_verify(task, "no query here").reason == "no_answer"
    assert GEN.safe_verify(task, "```sql\n\n```").reason == "no_answer"
    assert GEN.safe_verify(task, fenced("SELEC nothing")).reason == "malformed"
    both = f"```sql\nSELECT 1\n```\nactually:\n```sql\n{task.answer};\n```"
    assert GEN.safe_verify(task, both).passed  # the last block counts; a trailing ; is fine


def test_rebuilt_data_must_match_record() -> None:
    task = tasks(0, n=1)[0]
    forged = dict(task.check, digests=["0" * 16] * len(task.check["digests"]))
    bad = Task(**{**task.to_dict(), "check": forged})
    assert GEN.safe_verify(bad, GEN.gold_response(bad)).reason == "error"


def test_difficulty_monotone_along_levels() -> None:
    values = [GEN.difficulty(GEN.resolve_params(level)) for level in range(len(GEN.levels))]
    assert values == sorted(values) and len(set(values)) == len(values)


def test_database_shape() -> None:
    for level in (0, 7):
        for task in tasks(level, n=3):
            schema = task.check["schema"]
            assert len(schema) == task.params["tables"]
            kinds = {c["kind"] for t in schema for c in t["columns"]}
            assert {"pk", "fk", "text"} <= kinds  # the tables are connected by foreign keys
            if len(schema) == 8:
                assert {"int", "dec", "date", "bool"} <= kinds
            assert "CREATE TABLE" in task.prompt and task.answer not in task.prompt


def test_build_rows_is_pure() -> None:
    task = tasks(7, n=1)[0]
    schema = task.check["schema"]
    seed = task.check["seeds"][1]
    first = [build_rows(schema, seed, t["name"]) for t in schema]
    assert first == [build_rows(schema, seed, t["name"]) for t in schema]
    other = [build_rows(schema, task.check["seeds"][0], t["name"]) for t in schema]
    assert first != other
    # NULLs appear where the schema gives a column a null rate, and only there.
    nullable = {(t["name"], c["name"]) for t in schema for c in t["columns"] if c.get("null", 0) > 0}
    assert len(nullable) >= 3, schema
    with_nulls = {
        (t["name"], name)
        for t, rows in zip(schema, first, strict=True)
        for name, values in rows.items()
        if None in values
    }
    assert with_nulls and with_nulls <= nullable, (with_nulls, nullable)


def test_threads_get_the_serial_verdicts() -> None:
    """The trainer verifies on threads: the shared memo and worker must give each thread its own verdict."""
    pool = tasks(0, n=3)
    responses = [
        (t, response)
        for i, t in enumerate(pool)
        for response in (
            fenced(f"{t.answer} -- {i}"),
            GEN.corrupt_answer(t, random.Random(i)),
            fenced("SELECT 1"),
        )
    ]
    serial = [GEN.safe_verify(t, r).to_dict() for t, r in responses]
    assert [v["passed"] for v in serial] == [True, False, False] * len(pool)
    with ThreadPoolExecutor(4) as ex:
        threaded = list(ex.map(lambda pair: GEN.safe_verify(*pair).to_dict(), responses * 4))
    assert threaded == serial * 4


def test_gold_runner_reads_the_instance_asked_and_only_the_task_tables() -> None:
    """Generation's runner keeps one set of views per thread: each run reads the instance it names, a
    table outside the task's schema is refused as a missing table was, and a closed runner's views
    serve nobody."""
    from taskforge.generators.sql import catalog
    from taskforge.generators.sql.catalog import GoldRunner, draw_schema

    schema = draw_schema(random.Random(3), 2, 20)
    present = {t["name"] for t in schema}
    absent = next(name for name in ("shipments", "reviews", "order_items", "regions") if name not in present)
    table = schema[0]["name"]
    seeds = [11, 12]
    runner = GoldRunner(schema, lambda i, t: build_rows(schema, seeds[i], t), 2)
    try:
        sql = f"SELECT id, * FROM {table} ORDER BY id"
        by_instance = [runner.run(i, sql) for i in (0, 1, 0)]
        expected = [list(zip(*build_rows(schema, seed, table).values(), strict=True)) for seed in seeds]
        assert [[row[1:] for row in rows] for rows in by_instance] == [expected[0], expected[1], expected[0]]
        assert expected[0] != expected[1]
        assert runner.run(0, f"SELECT * FROM {absent}") is None
        assert runner.run(0, "SELEC nonsense") is None
        assert runner.run(1, sql) == by_instance[1]  # the statement is prepared again after a failure
    finally:
        runner.close()
    with pytest.raises(duckdb.Error):  # unbound views refuse rather than serve the last task's rows
        catalog._views.get().cursor.execute(f"SELECT * FROM {table}").fetchall()
