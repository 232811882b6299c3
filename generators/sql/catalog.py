"""The SQL family's data: a catalog of eight retail tables, schemas drawn from it, rows built from a seed.

`build_rows` is a pure, versioned function of (schema spec, seed, table) that uses only
`random.Random(int).random()`, so any process rebuilds the same rows. `GoldRunner` runs trusted gold
queries over those rows while a task is generated.
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import os
import random
import threading
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from taskforge.cache import PerProcess

BUILDER_VERSION = 1  # bump when build_rows changes; verify refuses a record built by another version
EPOCH = dt.date(2020, 1, 1).toordinal()

# ---- the catalog: eight tables of a small retail company, connected by foreign keys ----------------
# fmt: off
CITIES = ["Oslo", "Lima", "Pune", "Kyoto", "Accra", "Quito", "Perth", "Turin", "Dakar", "Leeds", "Cork",
          "Graz"]
# fmt: on
COUNTRIES = ["Norway", "Peru", "India", "Japan", "Ghana", "Ecuador", "Australia", "Italy"]
PEOPLE = ["Ada", "Ben", "Chen", "Dana", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jo", "Kai", "Lea", "Mo", "Nia"]
PRODUCTS = ["Lamp", "Desk", "Chair", "Mug", "Kettle", "Rug", "Clock", "Vase", "Shelf", "Stool", "Fan", "Tray"]
CATEGORIES = ["Home", "Office", "Kitchen", "Garden", "Toys", "Sports", "Books"]
STATUSES = ["pending", "paid", "shipped", "returned", "cancelled"]
CARRIERS = ["DHL", "UPS", "FedEx", "Posten", "Aramex"]

# column: (name, kind, arg) with kind pk | fk (arg: parent) | int/dec (arg: range; dec in cents) |
# text (arg: vocabulary) | date | bool. Size: rows relative to the `rows` knob.
CATALOG: dict[str, tuple[float, list[tuple[str, str, Any]]]] = {
    "regions": (
        0.3,
        [
            ("id", "pk", None),
            ("name", "text", CITIES),
            ("country", "text", COUNTRIES),
            ("population", "int", (50, 5000)),
        ],
    ),
    "customers": (
        1.0,
        [
            ("id", "pk", None),
            ("name", "text", PEOPLE),
            ("region_id", "fk", "regions"),
            ("signup_date", "date", None),
            ("is_member", "bool", None),
            ("credit_limit", "dec", (100_00, 5000_00)),
        ],
    ),
    "employees": (
        0.6,
        [
            ("id", "pk", None),
            ("name", "text", PEOPLE),
            ("region_id", "fk", "regions"),
            ("hire_date", "date", None),
            ("salary", "dec", (30000_00, 120000_00)),
            ("is_manager", "bool", None),
        ],
    ),
    "products": (
        0.8,
        [
            ("id", "pk", None),
            ("name", "text", PRODUCTS),
            ("category", "text", CATEGORIES),
            ("price", "dec", (1_00, 500_00)),
            ("stock", "int", (0, 300)),
            ("discontinued", "bool", None),
        ],
    ),
    "orders": (
        1.5,
        [
            ("id", "pk", None),
            ("customer_id", "fk", "customers"),
            ("employee_id", "fk", "employees"),
            ("order_date", "date", None),
            ("status", "text", STATUSES),
            ("shipping_cost", "dec", (0, 50_00)),
        ],
    ),
    "order_items": (
        2.5,
        [
            ("id", "pk", None),
            ("order_id", "fk", "orders"),
            ("product_id", "fk", "products"),
            ("quantity", "int", (1, 20)),
            ("unit_price", "dec", (1_00, 500_00)),
        ],
    ),
    "reviews": (
        1.5,
        [
            ("id", "pk", None),
            ("product_id", "fk", "products"),
            ("customer_id", "fk", "customers"),
            ("rating", "int", (1, 5)),
            ("review_date", "date", None),
            ("verified", "bool", None),
        ],
    ),
    "shipments": (
        1.2,
        [
            ("id", "pk", None),
            ("order_id", "fk", "orders"),
            ("carrier", "text", CARRIERS),
            ("shipped_date", "date", None),
            ("weight_kg", "dec", (10, 5000)),
            ("delivered", "bool", None),
        ],
    ),
}
SQL_TYPES = {
    "pk": "INTEGER",
    "fk": "INTEGER",
    "int": "INTEGER",
    "dec": "DECIMAL(10,2)",
    "text": "VARCHAR",
    "date": "DATE",
    "bool": "BOOLEAN",
}
ARROW_TYPES = {
    "pk": pa.int32(),
    "fk": pa.int32(),
    "int": pa.int32(),
    "dec": pa.decimal128(10, 2),
    "text": pa.string(),
    "date": pa.date32(),
    "bool": pa.bool_(),
}


def draw_schema(rng: random.Random, n_tables: int, rows: int) -> list[dict[str, Any]]:
    """A connected set of catalog tables with per-column null rates, skews and ranges."""
    edges = {t: {c[2] for c in cols if c[1] == "fk"} for t, (_, cols) in CATALOG.items()}
    chosen = [rng.choice(sorted(CATALOG))]
    while len(chosen) < n_tables:
        frontier = sorted(
            {
                t
                for t in CATALOG
                if t not in chosen and (edges[t] & set(chosen) or any(t in edges[c] for c in chosen))
            }
        )
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
        # Two draws per row, in this order, whatever the kind (the stream is the data's definition);
        # the kind is branched on once per column rather than once per value.
        rnd, power, null = rng.random, 1.0 + col["skew"], col["null"]
        draws = [(rnd(), rnd() ** power) for _ in range(n)]  # skew piles mass at the low end
        values: list[Any]
        if kind == "fk":
            size = sizes[col["ref"]]
            values = [None if u < null else 1 + int(skewed * size) for u, skewed in draws]
        elif kind in ("int", "dec"):
            lo, width = col["lo"], col["hi"] - col["lo"] + 1
            values = [None if u < null else lo + int(skewed * width) for u, skewed in draws]
            if kind == "dec":
                values = [None if v is None else Decimal(v).scaleb(-2) for v in values]
        elif kind == "text":
            vocab = col["values"]
            values = [None if u < null else vocab[int(skewed * len(vocab))] for u, skewed in draws]
        elif kind == "date":
            first, span = EPOCH + col["start"], col["span"]
            values = [
                None if u < null else dt.date.fromordinal(first + int(skewed * span)) for u, skewed in draws
            ]
        else:
            values = [None if u < null else skewed < 0.5 for u, skewed in draws]
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


# ---- executing gold queries during generation (trusted SQL over Arrow tables) ---------------------
# Where generation's time goes (issue 16, measured at level 7): DuckDB planning a gold query (~3.5 ms),
# executing it (~2.5 ms per instance) and registering an Arrow view per table, instance and task (~0.6 ms
# each). So each thread keeps one cursor on which every catalog table is registered once, as a `_View`
# that reads the current task's current instance, and a gold query is prepared once per task and
# executed on each instance. Arrow scans carry no statistics, so neither the plan nor the aggregate
# functions DuckDB binds (AVG's variant depends on statistics) depend on the rows: the results are the
# ones a fresh view per instance gave (tests/generators/test_sql_digest.py holds the tasks from before
# this change, and benchmarks/sql_throughput.py asserts both paths make the same tasks).


class _View:
    """The Arrow stream DuckDB scans for one catalog table: the rows of the table in the bound runner's
    current instance, built on first use. Registered once per thread (a view per task cost about as
    much as a query); unbound, it refuses, as a table missing from the database would be."""

    __slots__ = ("name", "runner", "stub")

    def __init__(self, name: str) -> None:
        self.name = name
        self.runner: GoldRunner | None = None
        # Registration reads a schema: a view is registered with an empty table of its catalog columns.
        self.stub: pa.Table | None = pa.table(
            {c: pa.array([], ARROW_TYPES[k]) for c, k, _ in CATALOG[name][1]}
        )

    def table(self) -> pa.Table:
        if self.runner is not None:
            return self.runner.table(self.name)
        if self.stub is not None:
            return self.stub
        raise LookupError(f"table {self.name} is not in this database")

    def __arrow_c_schema__(self) -> object:
        return self.table().schema.__arrow_c_schema__()

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self.table().__arrow_c_stream__(requested_schema)


class _Views:
    """One thread's cursor with every catalog table registered as a `_View`."""

    def __init__(self) -> None:
        self.cursor = _scratch.get().cursor()
        self.views = {name: _View(name) for name in CATALOG}
        for name, view in self.views.items():
            self.cursor.register(name, view)
            view.stub = None
        with _open_lock:
            _open.append((os.getpid(), self.cursor))


# One in-memory connection per process; each thread takes a cursor from it.
_scratch = PerProcess(lambda: duckdb.connect(":memory:", config={"threads": 1}))
_views = PerProcess(_Views, per_thread=True)
_open: list[tuple[int, duckdb.DuckDBPyConnection]] = []
_open_lock = threading.Lock()


@atexit.register
def _close_views() -> None:
    # A cursor still holding registered Python objects at exit makes nanobind print leak reports.
    with _open_lock:
        for pid, cursor in _open:
            if pid == os.getpid():
                cursor.close()
        _open.clear()


class GoldRunner:
    """Runs trusted gold queries while generating a task: `run(i, sql)` is `sql`'s rows on instance i
    (`rows_of(i, table)`, any i < n), or None if DuckDB refuses it. One runner at a time per thread;
    `close()` releases the views."""

    _PREPARED = "taskforge_gold"

    def __init__(self, schema: list[dict[str, Any]], rows_of: Any, n: int) -> None:
        self.schema, self.rows_of = schema, rows_of
        self.names = {t["name"] for t in schema}
        self.instance = 0
        self.arrow: dict[tuple[int, str], pa.Table] = {}
        self.prepared = ""  # the text prepared on the cursor for this task (re-prepared per task)
        state = _views.get()
        self.cursor, self.views = state.cursor, state.views
        for view in self.views.values():
            view.runner = self

    def table(self, name: str) -> pa.Table:
        """The Arrow table `name` of the current instance (what the views read)."""
        key = (self.instance, name)
        found = self.arrow.get(key)
        if found is None:
            if name not in self.names:
                raise LookupError(f"table {name} is not in this database")
            found = self.arrow[key] = arrow_table(self.schema, self.rows_of(*key), name)
        return found

    def run(self, i: int, sql: str) -> list[tuple] | None:
        self.instance = i
        try:
            if self.prepared != sql:  # the same gold text runs on every instance: plan it once
                self.cursor.execute(f"PREPARE {self._PREPARED} AS {sql}")
                self.prepared = sql
            return self.cursor.execute(f"EXECUTE {self._PREPARED}").fetchall()
        except duckdb.Error:
            self.prepared = ""  # a failed PREPARE may have dropped the statement of that name
            return None

    def close(self) -> None:
        for view in self.views.values():
            if view.runner is self:
                view.runner = None
        self.arrow.clear()
