"""The Python screen (generators/sql/screen.py) agrees with DuckDB wherever it answers.

Queries are drawn as generation draws them, at every level and at the knobs' extremes, on seeds no
reported figure uses. On two data instances of a fresh schema per query, DuckDB gives the rows of its
FROM / JOIN / WHERE, the values over the groups of each aggregate the HAVING probe could use (as
generation reads them: floats and their two-decimal text), and the number of rows of the gold query.
The screen must give the same, or say it is unsure (then generation asks DuckDB)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from taskforge.generators.sql import SQL
from taskforge.generators.sql.catalog import GoldRunner, build_rows, draw_schema
from taskforge.generators.sql.query import Query, QueryBuilder
from taskforge.generators.sql.screen import Screen, Unsure

VARIANTS = [
    *[SQL.resolve_params(level) for level in range(len(SQL.levels))],
    {**SQL.resolve_params(7), "rows": 200},
    {**SQL.resolve_params(7), "rows": 4, "subquery": 3},
    {**SQL.resolve_params(4), "distinct": True, "predicates": 4, "joins": 4, "tables": 6},
    {**SQL.resolve_params(3), "subquery": 3, "predicates": 0, "rows": 60},
]


def _compare(params: dict[str, Any], seed: int, draws: int) -> tuple[int, int]:
    """(answers compared, unsure) over `draws` queries."""
    rng = random.Random(seed)
    totals = [_compare_one(params, rng) for _ in range(draws)]
    return sum(c for c, _ in totals), sum(u for _, u in totals)


def _compare_one(params: dict[str, Any], rng: random.Random) -> tuple[int, int]:
    compared = unsure = 0
    schema = draw_schema(rng, params["tables"], params["rows"])
    data_seeds = [rng.getrandbits(52), rng.getrandbits(52)]
    built: dict[tuple[int, str], dict[str, list[Any]]] = {}

    def rows_of(i: int, table: str) -> dict[str, list[Any]]:
        if (i, table) not in built:
            built[(i, table)] = build_rows(schema, data_seeds[i], table)
        return built[(i, table)]

    qb = QueryBuilder(schema, lambda t: rows_of(0, t), rng)
    q = qb.draw(params)
    screens = [Screen(qb.nodes, lambda t, i=i: rows_of(i, t)) for i in range(2)]
    runner = GoldRunner(schema, rows_of, 2)
    try:
        scope = Query(tables=q.tables, joins=q.joins, where=q.where, select=[("COUNT(*)", "")])
        for i, screen in enumerate(screens):
            expected = runner.run(i, scope.to_sql())[0][0]
            try:
                assert len(screen.scope(q)) == expected, scope.to_sql()
                compared += 1
            except Unsure:
                unsure += 1
        if q.group:  # every aggregate the HAVING probe could use, on the first instance
            for agg in [s for s, _ in q.select[1:] if not s.startswith("RANK")]:
                probe = Query(
                    **{**q.__dict__, "select": [(agg, "")], "having": None, "order": [], "limit": None}
                )
                floats = {float(v[0]) for v in runner.run(0, probe.to_sql()) if v[0] is not None}
                try:
                    values = screens[0].probe_values(q, agg)
                except Unsure:
                    unsure += 1
                    continue
                assert len(values) == len(floats), probe.to_sql()
                assert sorted(map(float, values)) == pytest.approx(sorted(floats), rel=1e-12)
                compared += 1
                try:  # what generation reads: the values as floats, and their two-decimal text
                    mine = screens[0].probe_floats(q, agg)
                except Unsure:
                    unsure += 1
                    continue
                if not agg.startswith("AVG("):
                    assert mine == sorted(floats), probe.to_sql()
                assert [f"{x:.2f}" for x in mine] == [f"{x:.2f}" for x in sorted(floats)], probe.to_sql()
        if q.having is not None and not SQL._fill_having(q, runner, random.Random(0), screens[0]):
            return compared, unsure
        for i, screen in enumerate(screens):  # the gold query's size on each instance
            got = runner.run(i, q.to_sql())
            try:
                assert screen.size(q) == len(got), q.to_sql()
                compared += 1
            except Unsure:
                unsure += 1
    finally:
        runner.close()
    return compared, unsure


@pytest.mark.parametrize("k", range(len(VARIANTS)))
def test_screen_agrees_with_duckdb(k: int) -> None:
    draws = 25
    compared, unsure = _compare(VARIANTS[k], seed=900 + k, draws=draws)
    # Four or more answers a draw when sure (rows of FROM / JOIN / WHERE and gold size, two instances): a
    # screen that is mostly unsure would save nothing.
    assert compared >= 2 * draws, (compared, unsure)
