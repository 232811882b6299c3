"""The SQL family's data: a catalog of eight retail tables, schemas drawn from it, rows built from a seed.

`build_rows` is a pure, versioned function of (schema spec, seed, table) that uses only
`random.Random(int).random()`, so any process rebuilds the same rows. `GoldRunner` runs trusted gold
queries over those rows while a task is generated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
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


# ---- executing gold queries during generation (trusted SQL, views over Arrow tables) --------------
# One in-memory connection per process; each GoldRunner takes cursors from it.
_scratch = PerProcess(lambda: duckdb.connect(":memory:", config={"threads": 1}))


class GoldRunner:
    """Runs trusted gold queries while generating: one cursor per instance, each table registered as an
    Arrow view on first use (registering costs about as much as a query, so only what is read)."""

    def __init__(self, schema: list[dict[str, Any]], rows_of: Any, n: int) -> None:
        con = _scratch.get()
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
