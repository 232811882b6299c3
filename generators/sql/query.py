"""The SQL family's query grammar: a SELECT as structure (`Query`), rendered to SQL and to the English
question, and `QueryBuilder`, which draws one for a schema with literals taken from the data."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Col:
    table: str
    name: str
    kind: str

    @property
    def sql(self) -> str:
        return f"{self.table}.{self.name}"


@dataclass
class Query:
    """A SELECT as structure, rendered both to SQL and to English."""

    tables: list[str]
    joins: list[tuple[str, str]] = field(default_factory=list)  # (table, ON condition)
    where: list[tuple[str, str]] = field(default_factory=list)  # (sql, english)
    select: list[tuple[str, str]] = field(default_factory=list)
    distinct: bool = False
    group: list[tuple[str, str]] = field(default_factory=list)
    having: tuple[str, str] | None = None
    set_op: tuple[str, str, Query] | None = None  # (SQL operator, English connective, right branch)
    order: list[tuple[int, bool]] = field(default_factory=list)  # (1-based output position, descending)
    limit: int | None = None

    def body_sql(self) -> str:
        sql = "SELECT " + ("DISTINCT " if self.distinct else "") + ", ".join(s for s, _ in self.select)
        sql += f" FROM {self.tables[0]}" + "".join(f" JOIN {t} ON {on}" for t, on in self.joins)
        if self.where:
            sql += " WHERE " + " AND ".join(s for s, _ in self.where)
        if self.group:
            sql += " GROUP BY " + ", ".join(s for s, _ in self.group)
        if self.having:
            sql += f" HAVING {self.having[0]}"
        return sql

    def to_sql(self) -> str:
        sql = self.body_sql()
        if self.set_op:
            sql = f"{sql} {self.set_op[0]} {self.set_op[2].body_sql()}"
        if self.order:
            sql += " ORDER BY " + ", ".join(f"{p} {'DESC' if d else 'ASC'} NULLS LAST" for p, d in self.order)
        if self.limit is not None:
            sql += f" LIMIT {self.limit}"
        return sql

    def scope_en(self) -> str:
        text = f"the rows of {self.tables[0]}"
        for t, on in self.joins:
            text += f" joined with {t} on {on}"
        if self.where:
            text += ", keeping only rows where " + " and ".join(e for _, e in self.where)
        return text

    def to_english(self) -> str:
        cols = [e for _, e in self.select]
        listing = "; ".join(f"({i}) {c}" for i, c in enumerate(cols, 1))
        if self.set_op:
            right = self.set_op[2]
            text = (
                f"Take the distinct values of {cols[0]} from {self.scope_en()}. {self.set_op[1]} "
                f"the distinct values of {right.select[0][1]} from {right.scope_en()}. "
                "Return one column with the resulting distinct values."
            )
        elif self.group:
            text = (
                f"Consider {self.scope_en()}. Group them by "
                + " and ".join(e for _, e in self.group)
                + " (a missing value forms its own group)"
            )
            if self.having:
                text += f", and keep only groups where {self.having[1]}"
            text += f". For each group return these columns: {listing}."
        else:
            text = f"Consider {self.scope_en()}. Return these columns: {listing}."
            if self.distinct:
                text += " Return each distinct row only once."
        if self.order:
            keys = ", then ".join(f"column {p} {'descending' if d else 'ascending'}" for p, d in self.order)
            text += f" Sort the result by {keys}, with missing values last."
        if self.limit is not None:
            text += f" Return only the first {self.limit} rows."
        return text


def literal(kind: str, v: Any) -> tuple[str, str]:
    """SQL literal and its English spelling."""
    if kind == "date":
        return f"DATE '{v.isoformat()}'", v.isoformat()
    if kind == "text":
        return "'" + v.replace("'", "''") + "'", f"'{v}'"
    if kind == "bool":
        return ("TRUE", "true") if v else ("FALSE", "false")
    return str(v), str(v)


class QueryBuilder:
    """Draws one query for a schema; literals come from the rows of the first instance."""

    def __init__(self, schema: list[dict[str, Any]], data: Any, rng: random.Random) -> None:
        self.schema, self.data, self.rng = schema, data, rng
        self.spec = {t["name"]: t for t in schema}
        # Each WHERE predicate drawn, by its SQL text, as structure (see screen.py, which evaluates them).
        self.nodes: dict[str, tuple] = {}

    def _node(self, sql: str, en: str, node: tuple) -> tuple[str, str]:
        self.nodes[sql] = node
        return sql, en

    def cols(self, table: str, kinds: str) -> list[Col]:
        return [
            Col(table, c["name"], c["kind"])
            for c in self.spec[table]["columns"]
            if c["kind"] in kinds.split()
        ]

    def neighbours(self, table: str) -> list[tuple[str, str]]:
        """(other table, join condition) along foreign keys in both directions."""
        out = [
            (c["ref"], f"{table}.{c['name']} = {c['ref']}.id")
            for c in self.spec[table]["columns"]
            if c["kind"] == "fk"
        ]
        for t in self.spec:
            for c in self.spec[t]["columns"]:
                if c["kind"] == "fk" and c["ref"] == table:
                    out.append((t, f"{t}.{c['name']} = {table}.id"))
        return out

    def atom(self, col: Col) -> tuple[str, str]:
        """A simple predicate on one column, its literal drawn from the data."""
        rng = self.rng
        present = [v for v in self.data(col.table)[col.name] if v is not None]
        if not present or rng.random() < 0.1:
            neg = rng.random() < 0.5
            return self._node(
                f"{col.sql} IS {'NOT ' if neg else ''}NULL",
                f"{col.sql} is {'known (not NULL)' if neg else 'missing (NULL)'}",
                ("null", col.table, col.name, neg),
            )
        op, word = rng.choice(
            [(">", "greater than"), ("<", "less than"), (">=", "at least"), ("<=", "at most")]
        )
        if col.kind in ("int", "dec", "date"):
            # A literal that keeps roughly 40 to 90% of the rows, so a few predicates rarely empty the result.
            ranked = sorted(present)
            low = 0.1 if op.startswith(">") else 0.4
            v = ranked[min(len(ranked) - 1, int((low + 0.5 * rng.random()) * len(ranked)))]
        else:
            v = rng.choice(present)
        lit, en = literal(col.kind, v)
        if col.kind == "bool":
            return self._node(
                f"{col.sql} = {lit}", f"{col.sql} is {en}", ("cmp", col.table, col.name, "=", v)
            )
        if col.kind == "text":
            choice = rng.randrange(3)
            if choice == 0:
                return self._node(
                    f"{col.sql} = {lit}", f"{col.sql} equals {en}", ("cmp", col.table, col.name, "=", v)
                )
            if choice == 1:
                return self._node(
                    f"{col.sql} <> {lit}",
                    f"{col.sql} is known and different from {en}",
                    ("cmp", col.table, col.name, "<>", v),
                )
            others = sorted({x for x in present if x != v})[:2]
            items = [v, *others]
            return self._node(
                f"{col.sql} IN ({', '.join(literal('text', x)[0] for x in items)})",
                f"{col.sql} is one of {', '.join(literal('text', x)[1] for x in items)}",
                ("in", col.table, col.name, tuple(items)),
            )
        if col.kind == "date":
            word = {">": "after", "<": "before", ">=": "on or after", "<=": "on or before"}[op]
        return self._node(
            f"{col.sql} {op} {lit}", f"{col.sql} is {word} {en}", ("cmp", col.table, col.name, op, v)
        )

    def predicate(self, table: str, depth: int) -> tuple[str, str]:
        """A predicate on `table`; depth > 0 makes it a (nested) subquery predicate."""
        rng = self.rng
        if depth <= 0:
            return self.atom(rng.choice(self.cols(table, "int dec text date bool")))
        parents = [(c["ref"], c["name"]) for c in self.spec[table]["columns"] if c["kind"] == "fk"]
        children = [
            (t, c["name"])
            for t in self.spec
            for c in self.spec[t]["columns"]
            if c["kind"] == "fk" and c["ref"] == table
        ]
        numeric = self.cols(table, "int dec")
        forms = ["avg"] * bool(numeric) + ["in"] * bool(parents) + ["exists"] * bool(children)
        form = rng.choice(forms)
        if form == "avg":
            col = rng.choice(numeric)
            op, word = rng.choice([(">", "greater than"), ("<", "less than")])
            inner_sql, inner_en = (
                f"SELECT AVG({col.name}) FROM {table}",
                f"the average {col.sql} over all {table}",
            )
            inner = None
            if depth > 1:
                p_sql, p_en = self.predicate(table, depth - 1)
                inner = self.nodes[p_sql]
                inner_sql += f" WHERE {p_sql}"
                inner_en = f"the average {col.sql} over the {table} rows where {p_en}"
            return self._node(
                f"{col.sql} {op} ({inner_sql})",
                f"{col.sql} is {word} {inner_en}",
                ("avg", table, col.name, op, inner),
            )
        if form == "in":
            parent, fk = rng.choice(parents)
            p_sql, p_en = self.predicate(parent, depth - 1)
            return self._node(
                f"{table}.{fk} IN (SELECT id FROM {parent} WHERE {p_sql})",
                f"{table}.{fk} refers to a {parent} row (by id) where {p_en}",
                ("sub_in", table, fk, parent, self.nodes[p_sql]),
            )
        child, fk = rng.choice(children)
        p_sql, p_en = self.predicate(child, depth - 1)
        neg = rng.random() < 0.4
        return self._node(
            f"{'NOT ' if neg else ''}EXISTS (SELECT 1 FROM {child} WHERE {child}.{fk} = {table}.id AND {p_sql})",
            f"there is {'no' if neg else 'at least one'} {child} row with {child}.{fk} equal to this "
            f"{table}.id and where {p_en}",
            ("exists", table, child, fk, self.nodes[p_sql], neg),
        )

    def draw(self, p: dict[str, Any]) -> Query:
        rng = self.rng
        base = rng.choice(sorted(self.spec))
        q = Query(tables=[base])
        while len(q.tables) < p["joins"]:
            options = [(t, on) for src in q.tables for t, on in self.neighbours(src) if t not in q.tables]
            if not options:
                break
            t, on = rng.choice(options)
            q.tables.append(t)
            q.joins.append((t, on))
        for _ in range(p["predicates"]):
            q.where.append(self.predicate(rng.choice(q.tables), 0))
        if p["subquery"]:
            q.where.append(self.predicate(base, p["subquery"]))
        if p["set_op"]:
            self._set_op(q, p)
        elif p["aggregate"]:
            self._aggregate(q, p)
        elif p["window"]:
            self._window(q)
        else:
            cols = [c for t in q.tables for c in self.cols(t, "pk int dec text date bool")]
            picked = rng.sample(cols, min(len(cols), rng.randint(1, 3)))
            q.select = [(c.sql, c.sql) for c in picked]
            q.distinct = p["distinct"]
        width = len(q.select)
        if p["order"] == 1:
            keys = rng.sample(range(1, width + 1), min(width, rng.randint(1, 2)))
            q.order = [(k, rng.random() < 0.5) for k in keys]
        elif p["order"] == 2:
            # LIMIT needs a total order, or the cut through tied rows would be arbitrary.
            first = rng.randint(1, width)
            q.order = [(first, rng.random() < 0.5)] + [(k, False) for k in range(1, width + 1) if k != first]
            q.limit = rng.randint(2, 8)
        return q

    def _set_op(self, q: Query, p: dict[str, Any]) -> None:
        rng = self.rng
        col = rng.choice([c for t in q.tables for c in self.cols(t, "text date int")])
        q.select = [(col.sql, col.sql)]
        right = Query(tables=list(q.tables), joins=list(q.joins))
        right.select = [(col.sql, col.sql)]
        right.where = [self.predicate(rng.choice(right.tables), 0) for _ in range(max(1, p["predicates"]))]
        op, en = rng.choice(
            [
                ("UNION", "Add to them"),
                ("INTERSECT", "Keep only those that are also among"),
                ("EXCEPT", "Remove from them"),
            ]
        )
        q.set_op = (op, en, right)

    def _aggregate(self, q: Query, p: dict[str, Any]) -> None:
        rng = self.rng
        keys = [c for t in q.tables for c in self.cols(t, "text bool")]
        key = rng.choice(keys) if keys else rng.choice([c for t in q.tables for c in self.cols(t, "fk int")])
        q.group = [(key.sql, key.sql)]
        numeric = [c for t in q.tables for c in self.cols(t, "int dec")]
        aggs = [("COUNT(*)", "the number of rows")]
        for c in rng.sample(numeric, min(len(numeric), rng.randint(1, 2))):
            fn, en = rng.choice(
                [("SUM", "the sum"), ("AVG", "the average"), ("MIN", "the minimum"), ("MAX", "the maximum")]
            )
            aggs.append((f"{fn}({c.sql})", f"{en} of {c.sql} (ignoring missing values)"))
        if p["distinct"]:
            c = rng.choice([c for t in q.tables for c in self.cols(t, "text date int dec")])
            aggs.append((f"COUNT(DISTINCT {c.sql})", f"the number of distinct non-missing values of {c.sql}"))
        rng.shuffle(aggs)
        aggs = aggs[: rng.randint(1, len(aggs))]
        q.select = [(key.sql, key.sql), *aggs]
        if p["window"]:
            agg_sql, agg_en = aggs[0]
            q.select.append(
                (
                    f"RANK() OVER (ORDER BY {agg_sql} DESC NULLS LAST)",
                    f"the rank of the group by {agg_en}, highest first, missing last, ties sharing a "
                    "rank with gaps after them (RANK)",
                )
            )
        if p["aggregate"] >= 2:
            agg_sql, agg_en = rng.choice(aggs)
            q.having = (agg_sql, agg_en)  # the threshold is filled in from the data (see _fill_having)

    def _window(self, q: Query) -> None:
        rng = self.rng
        numeric = [c for t in q.tables for c in self.cols(t, "int dec date")]
        parts = [c for t in q.tables for c in self.cols(t, "text bool")]
        x = rng.choice(numeric)
        ident = Col(q.tables[0], "id", "pk")
        if parts and rng.random() < 0.8:
            g = rng.choice(parts)
            over, over_en = f"PARTITION BY {g.sql} ", f"among the rows with the same {g.sql}"
            head = [(ident.sql, ident.sql), (g.sql, g.sql), (x.sql, x.sql)]
        else:
            over, over_en = "", "among all rows"
            head = [(ident.sql, ident.sql), (x.sql, x.sql)]
        if x.kind != "date" and rng.random() < 0.4:
            win = (f"SUM({x.sql}) OVER ({over.strip()})", f"the sum of {x.sql} {over_en}")
        else:
            win = (
                f"RANK() OVER ({over}ORDER BY {x.sql} DESC NULLS LAST)",
                f"the rank of {x.sql} {over_en} (RANK: largest first, missing last, ties share a rank)",
            )
        q.select = [*head, win]
