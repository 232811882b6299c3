"""Exact Python evaluation of a drawn query's rows, to skip DuckDB for draws certain to be rejected.

Generation redraws a query until DuckDB's results pass the screen (see `SQL.generate`): non-empty, at
most max_rows, and, with HAVING, a threshold between two of the first instance's group values (the
"probe"). Each rejected draw cost DuckDB plans and runs for nothing (at level 7, 1.5 of 3 probes failed
and a fifth of the gold pairs came back empty on the second instance). `Screen` computes the same from
the same rows in Python: the rows of FROM / JOIN / WHERE, the probe's values, the gold result's size.
It answers only when it is certain: every value is exact (ints, Decimals, Fractions; DuckDB's AVG is a
double, but equal exact averages give equal doubles and unequal ones are far apart at these sizes), and
where DuckDB compares doubles and the exact sides tie, or a predicate has no structure, it raises
`Unsure` and DuckDB decides. So generation makes the same draws and the same tasks, byte for byte
(tests/generators/test_sql_digest.py), and DuckDB still computes every result a task records (the gold
result and digest of each instance). tests/generators/test_sql_screen.py compares this with DuckDB.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from taskforge.generators.sql.query import Query

_JOIN = re.compile(r"(\w+)\.(\w+) = (\w+)\.id")
_AGG = re.compile(r"(COUNT|SUM|AVG|MIN|MAX)\((DISTINCT )?(?:\*|(\w+)\.(\w+))\)")
_COLUMN = re.compile(r"(\w+)\.(\w+)")
_HAVING = re.compile(r"(.+) > (\d+(?:\.\d+)?)")

Row = dict[str, Any]


class Unsure(Exception):
    """The evaluator cannot say exactly what DuckDB gives here: DuckDB decides."""


class Screen:
    """One instance's rows (`columns(table)` -> {column: values}) and the predicates a QueryBuilder drew
    (`nodes`: SQL text -> structure); evaluates queries drawn from them."""

    def __init__(self, nodes: dict[str, tuple], columns: Callable[[str], dict[str, list[Any]]]) -> None:
        self.nodes, self.columns = nodes, columns
        self._rows: dict[str, list[Row]] = {}
        self._memo: dict[tuple, Any] = {}  # subquery results, per predicate structure

    def rows(self, table: str) -> list[Row]:
        if table not in self._rows:
            cols = self.columns(table)
            self._rows[table] = [
                dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)
            ]
        return self._rows[table]

    # ---- predicates: True, False or None (SQL's unknown), evaluated on one row of their table ----
    def holds(self, node: tuple, row: Row) -> bool | None:
        kind = node[0]
        if kind == "null":
            _, _, col, neg = node
            return (row[col] is not None) if neg else (row[col] is None)
        if kind == "exists":
            _, _, child, fk, inner, neg = node
            found = row["id"] in self._referring(child, fk, inner)
            return not found if neg else found
        v = row[node[2]]
        if v is None:
            return None
        if kind == "cmp":
            _, _, _, op, lit = node
            if op == "=":
                return v == lit
            if op == "<>":
                return v != lit
            if op == ">":
                return v > lit
            if op == "<":
                return v < lit
            if op == ">=":
                return v >= lit
            if op == "<=":
                return v <= lit
            raise Unsure(op)
        if kind == "in":
            return v in node[3]
        if kind == "avg":
            _, table, col, op, inner = node
            mean = self._average(table, col, inner)
            if mean is None:
                return None
            num, den = v.as_integer_ratio()  # exact for ints and Decimals; cheaper than a Fraction
            left, right = num * mean.denominator, mean.numerator * den
            if left == right:  # DuckDB compares doubles here: a tie could go either way
                raise Unsure("a value equals the average")
            return left > right if op == ">" else left < right
        if kind == "sub_in":
            _, _, _, parent, inner = node
            return v in self._ids(parent, inner)
        raise Unsure(kind)

    def where(self, table: str, node: tuple | None) -> list[Row]:
        """The rows of `table` where `node` holds (all rows for None)."""
        rows = self.rows(table)
        return rows if node is None else [r for r in rows if self.holds(node, r) is True]

    def _average(self, table: str, col: str, inner: tuple | None) -> Fraction | None:
        key = ("avg", table, col, inner)
        if key not in self._memo:
            values = [r[col] for r in self.where(table, inner) if r[col] is not None]
            self._memo[key] = Fraction(sum(values)) / len(values) if values else None
        return self._memo[key]

    def _ids(self, table: str, inner: tuple) -> set[int]:
        key = ("ids", table, inner)
        if key not in self._memo:
            self._memo[key] = {r["id"] for r in self.where(table, inner)}
        return self._memo[key]

    def _referring(self, child: str, fk: str, inner: tuple) -> set[int]:
        key = ("ref", child, fk, inner)
        if key not in self._memo:
            self._memo[key] = {r[fk] for r in self.where(child, inner) if r[fk] is not None}
        return self._memo[key]

    # ---- queries ----
    def scope(self, q: Query) -> list[dict[str, Row]]:
        """The rows of q's FROM / JOIN / WHERE, each as {table: row}. Every WHERE predicate reads one
        table, so filtering each table before the inner equi-joins gives the same rows."""
        key = ("scope", tuple(q.tables), tuple(q.joins), tuple(q.where))
        if key not in self._memo:  # the probe and the size of one draw read the same rows
            self._memo[key] = self._scope(q)
        return self._memo[key]

    def _scope(self, q: Query) -> list[dict[str, Row]]:
        conds: dict[str, list[tuple]] = defaultdict(list)
        for sql, _ in q.where:
            node = self.nodes.get(sql)
            if node is None:
                raise Unsure("a predicate without structure")
            conds[node[1]].append(node)

        def kept(table: str) -> list[Row]:
            rows = self.rows(table)
            for node in conds.get(table, ()):  # most joined tables have no predicate of their own
                rows = [r for r in rows if self.holds(node, r) is True]
            return rows

        base = q.tables[0]
        envs = [{base: r} for r in kept(base)]
        for table, on in q.joins:
            m = _JOIN.fullmatch(on)
            if m is None:
                raise Unsure(on)
            left, col, right = m.groups()
            index: dict[Any, list[Row]] = defaultdict(list)
            if left == table:  # table.col = right.id: the new table's rows by their foreign key
                for r in kept(table):
                    if r[col] is not None:
                        index[r[col]].append(r)
                envs = [{**e, table: r} for e in envs for r in index.get(e[right]["id"], ())]
            elif right == table:  # left.col = table.id
                for r in kept(table):
                    index[r["id"]].append(r)
                envs = [
                    {**e, table: r}
                    for e in envs
                    if e[left][col] is not None
                    for r in index.get(e[left][col], ())
                ]
            else:
                raise Unsure(on)
        return envs

    def _key(self, q: Query) -> tuple[str, str]:
        if len(q.group) != 1 or (key := _COLUMN.fullmatch(q.group[0][0])) is None:
            raise Unsure("group key")
        return key.group(1), key.group(2)

    def aggregates(self, q: Query, agg_sql: str) -> list[Fraction | None]:
        """`agg_sql` over each of q's groups (HAVING aside), exactly; None for an all-NULL group."""
        key = ("aggregates", tuple(q.tables), tuple(q.joins), tuple(q.where), tuple(q.group), agg_sql)
        if key not in self._memo:
            self._memo[key] = self._aggregates(q, agg_sql)
        return self._memo[key]

    def _aggregates(self, q: Query, agg_sql: str) -> list[Fraction | None]:
        m = _AGG.fullmatch(agg_sql)
        if m is None:
            raise Unsure(agg_sql)
        fn, distinct, t, c = m.groups()
        kt, kc = self._key(q)
        groups: dict[Any, list[Any]] = defaultdict(list)
        for env in self.scope(q):
            groups[env[kt][kc]].append(env[t][c] if t else 1)
        out: list[Fraction | None] = []
        for values in groups.values():
            known = [v for v in values if v is not None]
            if fn == "COUNT":
                out.append(
                    Fraction(len(values) if t is None else len(set(known)) if distinct else len(known))
                )
            elif not known:
                out.append(None)
            elif fn == "SUM":  # ints and two-place Decimals, far below the context's 28 digits: exact
                out.append(Fraction(sum(known)))
            elif fn == "AVG":
                out.append(Fraction(sum(known)) / len(known))
            else:
                out.append(Fraction(min(known) if fn == "MIN" else max(known)))
        return out

    def probe_values(self, q: Query, agg_sql: str) -> set[Fraction]:
        """The distinct non-NULL values of `agg_sql` over q's groups (what the HAVING probe returns)."""
        return {v for v in self.aggregates(q, agg_sql) if v is not None}

    def probe_floats(self, q: Query, agg_sql: str) -> list[float]:
        """What generation reads from the HAVING probe: the sorted distinct values as floats, which it
        formats with two decimals. Equal to DuckDB's: integers and DECIMALs convert alike, and an
        average DuckDB computes as a double is within a few units in the last place of the exact one,
        which changes neither order nor distinctness at these sizes, nor the two-decimal text unless the
        exact average lies on a rounding boundary (x.xx5): then Unsure."""
        values = self.probe_values(q, agg_sql)
        if agg_sql.startswith("AVG(") and any((v * 200).denominator == 1 and (v * 200) % 2 for v in values):
            raise Unsure("an average on a two-decimal rounding boundary")
        return sorted(float(v) for v in values)

    def size(self, q: Query) -> int:
        """How many rows q returns (its gold query, LIMIT included)."""
        if q.set_op:
            n = len(self._set_values(q))
        elif q.group:
            if q.having is None:
                self._key(q)
                n = len(self.aggregates(q, "COUNT(*)"))
            else:
                m = _HAVING.fullmatch(q.having[0])
                if m is None:
                    raise Unsure(q.having[0])
                cut = Fraction(m.group(2))
                values = self.aggregates(q, m.group(1))
                # The threshold is one of the first instance's values, so ties are common. They are exact
                # for COUNT, SUM, MIN and MAX (integers and DECIMALs against a DECIMAL literal); AVG is a
                # double in DuckDB, so a tie with it could go either way.
                if m.group(1).startswith("AVG(") and cut in values:
                    raise Unsure("an average equals the HAVING threshold")
                n = sum(1 for v in values if v is not None and v > cut)
        elif q.distinct:
            cols = [self._column(s) for s, _ in q.select]
            n = len({tuple(env[t][c] for t, c in cols) for env in self.scope(q)})
        else:
            n = len(self.scope(q))
        return n if q.limit is None else min(n, q.limit)

    def rejects(self, q: Query, max_rows: int) -> bool:
        """Whether q's result here is certain to fail generation's screen: empty, or over `max_rows`."""
        try:
            n = self.size(q)
        except Unsure:
            return False
        return n == 0 or n > max_rows

    def _column(self, sql: str) -> tuple[str, str]:
        m = _COLUMN.fullmatch(sql)
        if m is None:
            raise Unsure(sql)
        return m.group(1), m.group(2)

    def _set_values(self, q: Query) -> set[Any]:
        """UNION / INTERSECT / EXCEPT of one column: set semantics, NULL equal to NULL."""
        op, _, right = q.set_op
        t, c = self._column(q.select[0][0])
        if right.select[0][0] != q.select[0][0]:
            raise Unsure("branches select different columns")
        left_values = {env[t][c] for env in self.scope(q)}
        right_values = {env[t][c] for env in self.scope(right)}
        if op == "UNION":
            return left_values | right_values
        if op == "INTERSECT":
            return left_values & right_values
        if op == "EXCEPT":
            return left_values - right_values
        raise Unsure(op)
