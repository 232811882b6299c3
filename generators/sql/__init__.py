"""SQL over DuckDB: a generated retail database, a question in English, a gold SELECT.

The task records the database as a schema spec plus one data seed per instance (check["schema"],
check["seeds"]); `build_rows` is a pure, versioned function of (spec, seed) that uses only
`random.Random(int).random()`, so any process rebuilds the same rows. Every task has at least two
instances with different rows: an answer must return the gold query's result on each, so a query that
hard-codes the result of one instance fails. The question is rendered from the query's structure.

Verification: the last ```sql block (or <answer> block), one read-only SELECT, run on each instance
through generators/sql/box.py (read-only, locked DuckDB with an interrupt), results compared as the gold
query defines them: a multiset, in sequence on the sort keys when the gold query orders its rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from taskforge.errors import GenerationError, KnobError
from taskforge.extract import extract_block
from taskforge.generator import Generator, Knob
from taskforge.generators.sql import box as sqlbox
from taskforge.registry import register
from taskforge.task import Task, Verdict, canonical_json

BUILDER_VERSION = 1  # bump when build_rows changes; verify refuses a record built by another version
MAX_DRAWS = 200  # query redraws per task before giving up
# Verdicts remembered per task (0: off; benchmarks that repeat one response should turn it off).
MEMO_SIZE = int(os.environ.get("TASKFORGE_SQL_MEMO", "256"))
EPOCH = dt.date(2020, 1, 1).toordinal()

# ---- the catalog: eight tables of a small retail company, connected by foreign keys ----------------
CITIES = ["Oslo", "Lima", "Pune", "Kyoto", "Accra", "Quito", "Perth", "Turin", "Dakar", "Leeds", "Cork", "Graz"]
COUNTRIES = ["Norway", "Peru", "India", "Japan", "Ghana", "Ecuador", "Australia", "Italy"]
PEOPLE = ["Ada", "Ben", "Chen", "Dana", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jo", "Kai", "Lea", "Mo", "Nia"]
PRODUCTS = ["Lamp", "Desk", "Chair", "Mug", "Kettle", "Rug", "Clock", "Vase", "Shelf", "Stool", "Fan", "Tray"]
CATEGORIES = ["Home", "Office", "Kitchen", "Garden", "Toys", "Sports", "Books"]
STATUSES = ["pending", "paid", "shipped", "returned", "cancelled"]
CARRIERS = ["DHL", "UPS", "FedEx", "Posten", "Aramex"]

# column: (name, kind, arg) with kind pk | fk (arg: parent) | int/dec (arg: range; dec in cents) |
# text (arg: vocabulary) | date | bool. Size: rows relative to the `rows` knob.
CATALOG: dict[str, tuple[float, list[tuple[str, str, Any]]]] = {
    "regions": (0.3, [("id", "pk", None), ("name", "text", CITIES), ("country", "text", COUNTRIES),
                      ("population", "int", (50, 5000))]),
    "customers": (1.0, [("id", "pk", None), ("name", "text", PEOPLE), ("region_id", "fk", "regions"),
                        ("signup_date", "date", None), ("is_member", "bool", None),
                        ("credit_limit", "dec", (100_00, 5000_00))]),
    "employees": (0.6, [("id", "pk", None), ("name", "text", PEOPLE), ("region_id", "fk", "regions"),
                        ("hire_date", "date", None), ("salary", "dec", (30000_00, 120000_00)),
                        ("is_manager", "bool", None)]),
    "products": (0.8, [("id", "pk", None), ("name", "text", PRODUCTS), ("category", "text", CATEGORIES),
                       ("price", "dec", (1_00, 500_00)), ("stock", "int", (0, 300)), ("discontinued", "bool", None)]),
    "orders": (1.5, [("id", "pk", None), ("customer_id", "fk", "customers"), ("employee_id", "fk", "employees"),
                     ("order_date", "date", None), ("status", "text", STATUSES), ("shipping_cost", "dec", (0, 50_00))]),
    "order_items": (2.5, [("id", "pk", None), ("order_id", "fk", "orders"), ("product_id", "fk", "products"),
                          ("quantity", "int", (1, 20)), ("unit_price", "dec", (1_00, 500_00))]),
    "reviews": (1.5, [("id", "pk", None), ("product_id", "fk", "products"), ("customer_id", "fk", "customers"),
                      ("rating", "int", (1, 5)), ("review_date", "date", None), ("verified", "bool", None)]),
    "shipments": (1.2, [("id", "pk", None), ("order_id", "fk", "orders"), ("carrier", "text", CARRIERS),
                        ("shipped_date", "date", None), ("weight_kg", "dec", (10, 5000)), ("delivered", "bool", None)]),
}
SQL_TYPES = {"pk": "INTEGER", "fk": "INTEGER", "int": "INTEGER", "dec": "DECIMAL(10,2)", "text": "VARCHAR",
             "date": "DATE", "bool": "BOOLEAN"}
ARROW_TYPES = {"pk": pa.int32(), "fk": pa.int32(), "int": pa.int32(), "dec": pa.decimal128(10, 2),
               "text": pa.string(), "date": pa.date32(), "bool": pa.bool_()}


def draw_schema(rng: random.Random, n_tables: int, rows: int) -> list[dict[str, Any]]:
    """A connected set of catalog tables with per-column null rates, skews and ranges."""
    edges = {t: {c[2] for c in cols if c[1] == "fk"} for t, (_, cols) in CATALOG.items()}
    chosen = [rng.choice(sorted(CATALOG))]
    while len(chosen) < n_tables:
        frontier = sorted({t for t in CATALOG if t not in chosen
                           and (edges[t] & set(chosen) or any(t in edges[c] for c in chosen))})
        chosen.append(rng.choice(frontier))
    # Parents before children, so the DDL's REFERENCES and the inserts are in a valid order.
    order = [t for t in CATALOG if t in chosen]
    schema = []
    for t in order:
        size, cols = CATALOG[t]
        n = max(3, round(rows * size * (0.7 + 0.6 * rng.random())))
        columns = []
        for name, kind, arg in cols:
            if kind == "fk" and arg not in chosen:
                continue
            spec: dict[str, Any] = {"name": name, "kind": kind}
            if kind != "pk":
                spec["null"] = round(rng.choice([0.0, 0.0, 0.05, 0.15]), 2)
                spec["skew"] = round(rng.random() * 2, 2)
            if kind == "fk":
                spec["ref"] = arg
            elif kind in ("int", "dec"):
                spec["lo"], spec["hi"] = arg
            elif kind == "text":
                k = min(len(arg), rng.randint(3, 7))
                spec["values"] = sorted(rng.sample(arg, k))
            elif kind == "date":
                spec["start"], spec["span"] = rng.randint(0, 700), rng.choice([90, 365, 1000])
            columns.append(spec)
        schema.append({"name": t, "rows": n, "columns": columns})
    return schema


def _sub_rng(seed: int, table: str) -> random.Random:
    digest = hashlib.blake2b(f"{BUILDER_VERSION}:{seed}:{table}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


def build_rows(schema: list[dict[str, Any]], seed: int, table: str) -> dict[str, list[Any]]:
    """The rows of one table of one instance, column by column. Pure and versioned (BUILDER_VERSION):
    only `Random.random()` is used, whose stream Python keeps stable across versions."""
    spec = next(t for t in schema if t["name"] == table)
    sizes = {t["name"]: t["rows"] for t in schema}
    rng = _sub_rng(seed, table)
    n = spec["rows"]
    out: dict[str, list[Any]] = {}
    for col in spec["columns"]:
        kind = col["kind"]
        if kind == "pk":
            out[col["name"]] = list(range(1, n + 1))
            continue
        values: list[Any] = []
        for _ in range(n):
            u, skewed = rng.random(), rng.random() ** (1.0 + col["skew"])  # skew piles mass at the low end
            if u < col["null"]:
                values.append(None)
            elif kind == "fk":
                values.append(1 + int(skewed * sizes[col["ref"]]))
            elif kind in ("int", "dec"):
                v = col["lo"] + int(skewed * (col["hi"] - col["lo"] + 1))
                values.append(v if kind == "int" else Decimal(v).scaleb(-2))
            elif kind == "text":
                values.append(col["values"][int(skewed * len(col["values"]))])
            elif kind == "date":
                values.append(dt.date.fromordinal(EPOCH + col["start"] + int(skewed * col["span"])))
            else:
                values.append(skewed < 0.5)
        out[col["name"]] = values
    return out


def arrow_table(schema: list[dict[str, Any]], rows: dict[str, list[Any]], table: str) -> pa.Table:
    spec = next(t for t in schema if t["name"] == table)
    return pa.table({c["name"]: pa.array(rows[c["name"]], ARROW_TYPES[c["kind"]]) for c in spec["columns"]})


def ddl(schema: list[dict[str, Any]]) -> list[str]:
    out = []
    for t in schema:
        cols = []
        for c in t["columns"]:
            line = f"{c['name']} {SQL_TYPES[c['kind']]}"
            if c["kind"] == "pk":
                line += " PRIMARY KEY"
            elif c["kind"] == "fk":
                line += f" REFERENCES {c['ref']}(id)"
            cols.append(line)
        out.append(f"CREATE TABLE {t['name']} (" + ", ".join(cols) + ");")
    return out


# ---- query grammar -----------------------------------------------------------------------------
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
            text = (f"Take the distinct values of {cols[0]} from {self.scope_en()}. {self.set_op[1]} "
                    f"the distinct values of {right.select[0][1]} from {right.scope_en()}. "
                    "Return one column with the resulting distinct values.")
        elif self.group:
            text = (f"Consider {self.scope_en()}. Group them by " + " and ".join(e for _, e in self.group)
                    + " (a missing value forms its own group)")
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


def _lit(kind: str, v: Any) -> tuple[str, str]:
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

    def cols(self, table: str, kinds: str) -> list[Col]:
        return [Col(table, c["name"], c["kind"]) for c in self.spec[table]["columns"] if c["kind"] in kinds.split()]

    def neighbours(self, table: str) -> list[tuple[str, str]]:
        """(other table, join condition) along foreign keys in both directions."""
        out = [(c["ref"], f"{table}.{c['name']} = {c['ref']}.id")
               for c in self.spec[table]["columns"] if c["kind"] == "fk"]
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
            return (f"{col.sql} IS {'NOT ' if neg else ''}NULL",
                    f"{col.sql} is {'known (not NULL)' if neg else 'missing (NULL)'}")
        op, word = rng.choice([(">", "greater than"), ("<", "less than"), (">=", "at least"), ("<=", "at most")])
        if col.kind in ("int", "dec", "date"):
            # A literal that keeps roughly 40 to 90% of the rows, so a few predicates rarely empty the result.
            ranked = sorted(present)
            low = 0.1 if op.startswith(">") else 0.4
            v = ranked[min(len(ranked) - 1, int((low + 0.5 * rng.random()) * len(ranked)))]
        else:
            v = rng.choice(present)
        lit, en = _lit(col.kind, v)
        if col.kind == "bool":
            return f"{col.sql} = {lit}", f"{col.sql} is {en}"
        if col.kind == "text":
            choice = rng.randrange(3)
            if choice == 0:
                return f"{col.sql} = {lit}", f"{col.sql} equals {en}"
            if choice == 1:
                return f"{col.sql} <> {lit}", f"{col.sql} is known and different from {en}"
            others = sorted({x for x in present if x != v})[:2]
            items = [v, *others]
            return (f"{col.sql} IN ({', '.join(_lit('text', x)[0] for x in items)})",
                    f"{col.sql} is one of {', '.join(_lit('text', x)[1] for x in items)}")
        if col.kind == "date":
            word = {">": "after", "<": "before", ">=": "on or after", "<=": "on or before"}[op]
        return f"{col.sql} {op} {lit}", f"{col.sql} is {word} {en}"

    def predicate(self, table: str, depth: int) -> tuple[str, str]:
        """A predicate on `table`; depth > 0 makes it a (nested) subquery predicate."""
        rng = self.rng
        if depth <= 0:
            return self.atom(rng.choice(self.cols(table, "int dec text date bool")))
        parents = [(c["ref"], c["name"]) for c in self.spec[table]["columns"] if c["kind"] == "fk"]
        children = [(t, c["name"]) for t in self.spec for c in self.spec[t]["columns"]
                    if c["kind"] == "fk" and c["ref"] == table]
        numeric = self.cols(table, "int dec")
        forms = ["avg"] * bool(numeric) + ["in"] * bool(parents) + ["exists"] * bool(children)
        form = rng.choice(forms)
        if form == "avg":
            col = rng.choice(numeric)
            op, word = rng.choice([(">", "greater than"), ("<", "less than")])
            inner_sql, inner_en = f"SELECT AVG({col.name}) FROM {table}", f"the average {col.sql} over all {table}"
            if depth > 1:
                p_sql, p_en = self.predicate(table, depth - 1)
                inner_sql += f" WHERE {p_sql}"
                inner_en = f"the average {col.sql} over the {table} rows where {p_en}"
            return f"{col.sql} {op} ({inner_sql})", f"{col.sql} is {word} {inner_en}"
        if form == "in":
            parent, fk = rng.choice(parents)
            p_sql, p_en = self.predicate(parent, depth - 1)
            return (f"{table}.{fk} IN (SELECT id FROM {parent} WHERE {p_sql})",
                    f"{table}.{fk} refers to a {parent} row (by id) where {p_en}")
        child, fk = rng.choice(children)
        p_sql, p_en = self.predicate(child, depth - 1)
        neg = rng.random() < 0.4
        return (f"{'NOT ' if neg else ''}EXISTS (SELECT 1 FROM {child} WHERE {child}.{fk} = {table}.id AND {p_sql})",
                f"there is {'no' if neg else 'at least one'} {child} row with {child}.{fk} equal to this "
                f"{table}.id and where {p_en}")

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
        op, en = rng.choice([("UNION", "Add to them"), ("INTERSECT", "Keep only those that are also among"),
                             ("EXCEPT", "Remove from them")])
        q.set_op = (op, en, right)

    def _aggregate(self, q: Query, p: dict[str, Any]) -> None:
        rng = self.rng
        keys = [c for t in q.tables for c in self.cols(t, "text bool")]
        key = rng.choice(keys) if keys else rng.choice([c for t in q.tables for c in self.cols(t, "fk int")])
        q.group = [(key.sql, key.sql)]
        numeric = [c for t in q.tables for c in self.cols(t, "int dec")]
        aggs = [("COUNT(*)", "the number of rows")]
        for c in rng.sample(numeric, min(len(numeric), rng.randint(1, 2))):
            fn, en = rng.choice([("SUM", "the sum"), ("AVG", "the average"), ("MIN", "the minimum"),
                                 ("MAX", "the maximum")])
            aggs.append((f"{fn}({c.sql})", f"{en} of {c.sql} (ignoring missing values)"))
        if p["distinct"]:
            c = rng.choice([c for t in q.tables for c in self.cols(t, "text date int dec")])
            aggs.append((f"COUNT(DISTINCT {c.sql})", f"the number of distinct non-missing values of {c.sql}"))
        rng.shuffle(aggs)
        aggs = aggs[: rng.randint(1, len(aggs))]
        q.select = [(key.sql, key.sql), *aggs]
        if p["window"]:
            agg_sql, agg_en = aggs[0]
            q.select.append((f"RANK() OVER (ORDER BY {agg_sql} DESC NULLS LAST)",
                             f"the rank of the group by {agg_en}, highest first, missing last, ties sharing a "
                             "rank with gaps after them (RANK)"))
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
            win = (f"RANK() OVER ({over}ORDER BY {x.sql} DESC NULLS LAST)",
                   f"the rank of {x.sql} {over_en} (RANK: largest first, missing last, ties share a rank)")
        q.select = [*head, win]


# ---- executing gold queries during generation (trusted SQL, views over Arrow tables) --------------
_scratch: dict[int, duckdb.DuckDBPyConnection] = {}


class _GoldRunner:
    """Runs trusted gold queries while generating: one cursor per instance, each table registered as an
    Arrow view on first use (registering costs about as much as a query, so only what is read)."""

    def __init__(self, schema: list[dict[str, Any]], rows_of: Any, n: int) -> None:
        con = _scratch.get(os.getpid())
        if con is None:
            con = _scratch[os.getpid()] = duckdb.connect(":memory:", config={"threads": 1})
        self.schema, self.rows_of = schema, rows_of
        self.cursors = [con.cursor() for _ in range(n)]
        self.names = [(t["name"], re.compile(rf"\b{t['name']}\b")) for t in schema]
        self.registered: set[tuple[int, str]] = set()
        self.parsed: tuple[str, Any] = ("", None)

    def run(self, i: int, sql: str) -> list[tuple] | None:
        for name, pattern in self.names:
            if (i, name) not in self.registered and pattern.search(sql):
                self.cursors[i].register(name, arrow_table(self.schema, self.rows_of(i, name), name))
                self.registered.add((i, name))
        try:
            if self.parsed[0] != sql:  # the same gold text runs on every instance: parse it once
                self.parsed = (sql, self.cursors[i].extract_statements(sql)[0])
            return self.cursors[i].execute(self.parsed[1]).fetchall()
        except duckdb.Error:
            return None

    def close(self) -> None:
        for cur in self.cursors:
            cur.close()


def result_digest(rows: list[tuple], order_keys: list[int] | None) -> str:
    """A fingerprint of a result as `compare` sees it: the multiset of rows, plus the sequence of sort
    keys when the query orders (rows tied on the keys may come in any order)."""
    norm = sqlbox.normalise(rows)
    keys = [tuple(r[k] for k in order_keys) for r in norm] if order_keys else []
    return hashlib.blake2b(repr([sorted(norm), keys]).encode(), digest_size=8).hexdigest()


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
        return (1.0 * (p["joins"] - 1) + 0.5 * p["predicates"] + 1.0 * p["aggregate"] + 0.5 * p["order"]
                + 1.5 * p["subquery"] + 1.5 * p["window"] + 1.5 * p["set_op"] + 0.5 * p["distinct"]
                + 0.1 * p["tables"] + 0.002 * p["rows"])

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
        runner = _GoldRunner(schema, rows_of, len(seeds))
        try:
            for _ in range(MAX_DRAWS):
                q = qb.draw(params)
                if q.having is not None and not self._fill_having(q, runner, rng):
                    continue
                gold = q.to_sql()
                results: list[list[tuple]] = []
                for i in range(len(seeds)):  # instance 0 first: most degenerate draws stop there
                    r = runner.run(i, gold)
                    if r is None or not r or len(r) > params["max_rows"] or all(v is None for row in r for v in row):
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
    def _fill_having(q: Query, runner: _GoldRunner, rng: random.Random) -> bool:
        """Pick a HAVING threshold from the first instance's group values, so some groups pass."""
        agg_sql, agg_en = q.having
        probe = Query(**{**q.__dict__, "select": [(agg_sql, "")], "having": None, "set_op": None,
                         "order": [], "limit": None})
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
        sql = extract_block(response, "sql")
        if sql is None:
            return Verdict.fail("no_answer")
        sql = sql.strip()
        if len(sql) > sqlbox.MAX_SQL_CHARS:
            return Verdict.fail("malformed", parsed=sql[:200], error="query too long")
        chk = task.check
        if chk.get("builder") != BUILDER_VERSION:
            return Verdict.fail("error", error=f"task built by data builder {chk.get('builder')}")
        key = task_key(chk)
        memo = _memo.setdefault(key, {}) if MEMO_SIZE else {}
        known = memo.get(sql)
        if known is not None:  # the same text for the same task: the G samples of a prompt often agree
            return known
        verdict = _worker.judge(key, chk, sql) if ISOLATE else judge_here(chk, sql)
        if verdict.reason != "timeout":
            memo[sql] = verdict
            if len(memo) > MEMO_SIZE:
                memo.pop(next(iter(memo)))
            if len(_memo) > 256:
                _memo.pop(next(iter(_memo)))
        return verdict

    @staticmethod
    def _judge(dbs: _Instances, sql: str, chk: dict[str, Any]) -> Verdict:
        shown = sql[:200]
        try:
            stmt = sqlbox.parse_statement(sql)
        except sqlbox.Rejected as exc:
            return Verdict.fail("rejected", parsed=shown, error=str(exc))
        except sqlbox.Malformed as exc:
            return Verdict.fail("malformed", parsed=shown, error=str(exc))
        for i, (con, gold) in enumerate(zip(dbs.connections, dbs.gold, strict=True)):
            if gold is None:
                return Verdict.fail("error", parsed=shown, error=f"gold result of instance {i} does not match")
            out = sqlbox.run_query(con, stmt, timeout_s=chk["timeout_s"], max_rows=len(gold))
            if out.reason == "too_many":
                return Verdict.fail("wrong", parsed=shown, instance=i, error=out.error)
            if out.reason != "ok":
                return Verdict.fail(out.reason, parsed=shown, instance=i, error=out.error)
            diff = sqlbox.compare(out.rows, gold, chk["order_keys"], dbs.gold_sorted[i])
            if diff:
                return Verdict.fail("wrong", parsed=shown, instance=i, error=diff)
        return Verdict.ok(parsed=shown, instances=len(dbs.connections))

    def gold_response(self, task: Task) -> str:
        return f"```sql\n{task.answer}\n```"

    def corrupt_answer(self, task: Task, rng: random.Random) -> str | None:
        # Both are wrong whatever the data: gold results are never empty, and the width must match.
        wrong = rng.choice([f"SELECT * FROM ({task.answer}) AS q WHERE FALSE",
                            f"SELECT *, 1 AS extra FROM ({task.answer}) AS q"])
        return f"```sql\n{wrong}\n```"


# ---- the per-task database cache used by verify -----------------------------------------------
@dataclass
class _Instances:
    connections: list[duckdb.DuckDBPyConnection]
    gold: list[list[tuple] | None]  # None where the rebuilt gold result does not match the record
    gold_sorted: list[list[tuple] | None] = field(default_factory=list)  # each in compare's order, once
    owner: duckdb.DuckDBPyConnection | None = None  # the locked connection the cursors belong to
    memo: dict[str, Verdict] = field(default_factory=dict)  # query text -> verdict, oldest first

    def close(self) -> None:
        for con in [*self.connections, self.owner]:
            if con is not None:
                con.close()


_cache = sqlbox.DatabaseCache(capacity=32)


_keys: dict[int, tuple[dict[str, Any], str]] = {}  # id(check) -> (check, key): skips re-hashing a record
_memo: dict[str, dict[str, Verdict]] = {}  # task key -> {query text: verdict}, oldest first


def task_key(check: dict[str, Any]) -> str:
    known = _keys.get(id(check))
    if known is not None and known[0] is check:
        return known[1]
    key = hashlib.blake2b(canonical_json(check).encode(), digest_size=16).hexdigest()
    if len(_keys) >= 1024:
        _keys.pop(next(iter(_keys)))
    _keys[id(check)] = (check, key)  # holding `check` keeps its id from being reused
    return key


def instances(check: dict[str, Any]) -> _Instances:
    """The task's locked database instances and gold results, built once and kept in an LRU."""
    key = task_key(check)
    return _cache.get(key, lambda: _build_instances(check, key))


def judge_here(check: dict[str, Any], sql: str) -> Verdict:
    """Judge in this process (what the worker runs; tests call it to look inside)."""
    return SQL._judge(instances(check), sql, check)


def fingerprint(check: dict[str, Any]) -> list[str]:
    """A digest of every table of every instance as the locked connections read them."""
    out = []
    for con in instances(check).connections:
        for t in check["schema"]:
            name = t["name"]
            row = con.execute(f"SELECT count(*), md5(string_agg({name}::VARCHAR, '|' ORDER BY id)) FROM {name}")
            out.append(repr(row.fetchone()))
    return out


# Answers run in a worker process by default: DuckDB's interrupt cannot stop work inside one function
# call, and a single call can allocate gigabytes outside its memory limit (nested replace() was killed by
# the kernel here). The worker has an address-space limit and is killed at a hard deadline.
ISOLATE = os.environ.get("TASKFORGE_SQL_ISOLATE", "1") != "0"
_worker = sqlbox.Worker("taskforge.generators.sql")


def _worker_ops() -> dict[str, Any]:
    return {
        "judge": lambda check, sql: judge_here(check, sql).to_dict(),
        "fingerprint": lambda check, sql: fingerprint(check),
        "build": lambda check, sql: bool(instances(check).connections),
    }


def _build_instances(check: dict[str, Any], key: str) -> _Instances:
    schema, statements = check["schema"], ddl(check["schema"])
    data = [[(t["name"], stmt, arrow_table(schema, build_rows(schema, seed, t["name"]), t["name"]))
             for t, stmt in zip(schema, statements, strict=True)] for seed in check["seeds"]]
    owner, cursors = sqlbox.build_locked(data, _cache.directory(), key)
    golds: list[list[tuple] | None] = []
    for i, cur in enumerate(cursors):
        out = sqlbox.run_query(cur, check["gold"], timeout_s=30.0, max_rows=100_000)
        ok = out.reason == "ok" and result_digest(out.rows, check["order_keys"]) == check["digests"][i]
        golds.append(out.rows if ok else None)
    ordered = [None if g is None else sqlbox.sort_rows(g) for g in golds]
    return _Instances(cursors, golds, ordered, owner=owner)
