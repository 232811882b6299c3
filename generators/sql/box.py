"""A locked-down DuckDB for untrusted SQL: statement checks, read-only execution, result comparison.

Layers, each one sufficient for some attacks and the last one for all writes (DuckDB 2.0 runs every
statement of a multi-statement string, and a data-modifying CTE is typed as a SELECT):
1. DuckDB's own parser: exactly one statement, typed SELECT. `SELECT 1; DROP TABLE t` is two statements.
2. A data-modifying CTE (`WITH d AS (DELETE ... RETURNING *) SELECT`) is typed SELECT, so a query that
   mentions a writing keyword is serialised with `json_serialize_sql` and refused if its tree holds a
   DELETE/INSERT/UPDATE node.
3. The real guard: every database is a file opened `read_only=True`, with external access off, extension
   autoload/autoinstall off, no spill directory, one thread, a memory limit, then the configuration locked.
   Even a query that slips past 1 and 2 cannot write the data, read host files, attach or load anything.
4. A watchdog thread calls `interrupt()` at the deadline (the connection stays usable) and at most
   `max_rows + 1` rows are fetched, so a cross join or a billion-row range costs a bounded amount.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime as dt
import decimal
import importlib
import json
import math
import os
import re
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb

from taskforge.cache import PerProcess

MAX_SQL_CHARS = 20_000
MEMORY_LIMIT = "256MB"
LOCKED_CONFIG = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "temp_directory": "",  # no spilling to disk
    "memory_limit": MEMORY_LIMIT,
    "threads": 1,
    "lock_configuration": True,  # last: nothing above can be changed by the query
}
# Statement types an answer may have. EXPLAIN, PRAGMA, SET, CALL, COPY, ATTACH, LOAD, ... are refused.
ALLOWED_TYPES = {duckdb.StatementType.SELECT}
_WRITE_WORDS = re.compile(r"\b(insert|update|delete|merge|copy|attach|create|drop|alter)\b", re.IGNORECASE)
_WRITE_NODES = re.compile(r'"type":"(DELETE|INSERT|UPDATE|MERGE)[A-Z_]*_NODE"')
# Functions that build one huge value inside a single call, where DuckDB does not check for interrupts:
# `SELECT len(range(1000000000))` ran 190 s and `repeat('x', 1e9)` 15 s past a 0.5 s deadline, outside the
# memory limit. No answer needs them, so they are refused by name (confirmed in the parse tree).
DENIED_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "repeat",
        "repeat_row",
        "lpad",
        "rpad",
        "list_resize",
        "array_resize",
        "bar",
        "printf",
        "format",
        "sprintf",
        "enum_range",
    }
)
_DENIED_WORDS = re.compile(r"\b(" + "|".join(sorted(DENIED_FUNCTIONS)) + r")\b", re.IGNORECASE)


class Rejected(Exception):
    """The SQL is not a single read-only SELECT."""


class Malformed(Exception):
    """The SQL does not parse."""


# ---- statement checks ------------------------------------------------------------------------------
# A private in-memory connection per thread used only to parse; locked like the others.
_parser = PerProcess(lambda: duckdb.connect(":memory:", config=dict(LOCKED_CONFIG)), per_thread=True)


def parse_statement(sql: str) -> duckdb.Statement:
    """The single SELECT statement in `sql`, parsed once, or raise Rejected / Malformed. `run_query`
    executes this very tree, so what was checked is what runs, and the text is not parsed again for
    each instance (parsing a long query costs about half a millisecond)."""
    if len(sql) > MAX_SQL_CHARS:
        raise Malformed(f"query longer than {MAX_SQL_CHARS} characters")
    if "\x00" in sql:
        raise Malformed("NUL byte in query")
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError:
        raise Malformed("query is not valid UTF-8 text") from None
    con = _parser.get()
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise Malformed(_first_line(exc)) from None
    if len(statements) != 1:
        raise Rejected(f"expected exactly one statement, got {len(statements)}")
    stmt = statements[0]
    if stmt.type not in ALLOWED_TYPES:
        raise Rejected(f"statement type {stmt.type.name} is not allowed; only SELECT")
    # Only then pay for a second parse into a tree: a writing keyword, a denied name, or a call to a
    # function that is not a plain scalar, aggregate or window function (a table function may hide in
    # it; a name spelled in a way the tokenizer does not resolve counts as one).
    if _WRITE_WORDS.search(sql) or _DENIED_WORDS.search(sql) or _calls_unplain(sql):
        _check_tree(con, sql, depth=0)
    return stmt


# Table functions an answer may call: `unnest` (a list into rows) and nothing else. Every other one reads
# metadata (duckdb_*, pragma_*), runs SQL given as a string (`query`, `query_table`,
# `json_execute_serialized_sql`: the string is only a constant in the tree we check), reads files, or
# builds rows without bound (`range`): none is needed to answer a question about the task's tables.
ALLOWED_TABLE_FUNCTIONS = frozenset({"unnest"})
# The one scalar that changes connection state from inside a SELECT: a later answer's random() would
# follow a seed an earlier answer chose.
STATEFUL_FUNCTIONS = frozenset({"setseed"})
_MAX_NESTED_SQL = 3  # SQL inside a string argument inside SQL ... is analysed this deep, then refused


_catalogue_cache: tuple[frozenset[str], frozenset[str], frozenset[str]] | None = None  # same in any process


def _catalogue() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(names callable without a tree check, scalar macros that run a subquery, names that always need
    the tree check), from DuckDB itself."""
    global _catalogue_cache
    cat = _catalogue_cache
    if cat is None:
        rows = (
            _parser.get()
            .execute(
                "SELECT lower(function_name), function_type, coalesce(macro_definition, '') FROM duckdb_functions()"
            )
            .fetchall()
        )
        tables = {n for n, t, _ in rows if t in ("table", "table_macro", "pragma")}
        # Built-in macros such as pg_get_viewdef or format_type are a subquery over a metadata table
        # function: a call to one is a table function call the parse tree does not show.
        subquery = frozenset(n for n, t, d in rows if t == "macro" and re.search(r"\bfrom\b", d, re.I))
        plain = {n for n, t, _ in rows if t in ("scalar", "aggregate", "window", "macro")}
        bad = tables | subquery | STATEFUL_FUNCTIONS
        cat = (frozenset(plain - bad - DENIED_FUNCTIONS), subquery, frozenset(bad))
        _catalogue_cache = cat
    return cat


_CALL_NAMES = re.compile(r'(?<![\w$"])([^\W\d][\w$]*|"[^"]*")\s*\(')
_keywords_cache: frozenset[str] | None = None


def _harmless_before_paren() -> frozenset[str]:
    """Names that may precede `(` without a tree check: plain functions, and keywords (IN, OVER, ...)
    that name no table function."""
    global _keywords_cache
    if _keywords_cache is None:
        plain, _, unplain = _catalogue()
        rows = _parser.get().execute("SELECT lower(keyword_name) FROM duckdb_keywords()").fetchall()
        _keywords_cache = plain | (frozenset(r[0] for r in rows) - unplain)
    return _keywords_cache


def _calls_unplain(sql: str) -> bool:
    """Does the text call (a name followed by `(`) anything but a known plain function? Tokens, not a
    regex: comments and spacing between a name and its parenthesis do not hide a call. A keyword before
    `(` (IN, EXISTS, OVER, CAST, ...) is no call unless it also names a table function (GLOB does)."""
    plain, _, unplain = _catalogue()
    # Fast path (the tokenizer and its loop cost about 0.3 ms): every `name (` in the raw text, string
    # contents included, is a known plain function or a keyword that names no table function. Anything
    # else, or a comment that could sit between a name and its parenthesis, goes to the tokenizer.
    names = {m.strip('"').lower() for m in _CALL_NAMES.findall(sql)}
    if "--" not in sql and "/*" not in sql and names <= _harmless_before_paren():
        return False
    tokens = duckdb.tokenize(sql)
    bounds = [pos for pos, _ in tokens[1:]] + [len(sql)]
    words = [(sql[pos:end].strip(), kind) for (pos, kind), end in zip(tokens, bounds, strict=True)]
    words = [(text, kind) for text, kind in words if kind != duckdb.token_type.comment]
    for (text, kind), (after, _) in zip(words, words[1:], strict=False):
        if not after.startswith("("):
            continue
        name = text.strip('"').lower()
        if kind == duckdb.token_type.identifier and name not in plain:
            return True
        if kind == duckdb.token_type.keyword and name in unplain:
            return True
    return False


def _check_tree(con: duckdb.DuckDBPyConnection, sql: str, depth: int) -> None:
    try:
        text = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0]
    except duckdb.Error as exc:
        raise Rejected(f"could not analyse query: {_first_line(exc)}") from None
    if '"error":true' in text or _WRITE_NODES.search(text):
        raise Rejected("data-modifying statement inside the query")
    subquery_macros = _catalogue()[1]
    stack: list[Any] = [json.loads(text)]
    while stack:  # iterative: a deeply nested query cannot exhaust the Python stack
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if node.get("class") == "FUNCTION" or node.get("type") == "FUNCTION":
            name = str(node.get("function_name", "")).lower()
            if name in DENIED_FUNCTIONS:
                raise Rejected(f"function {name}() is not allowed: it can build unbounded values")
            if name in subquery_macros:
                raise Rejected(f"function {name}() is not allowed: it reads the catalogue")
            if name in STATEFUL_FUNCTIONS:
                raise Rejected(f"function {name}() is not allowed: it changes the connection's state")
        if node.get("type") == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
            function = node["function"]
            for literal in _string_constants(function.get("arguments", [])):
                # SQL inside a string argument (`query('SELECT ...')`) is checked as SQL too.
                if depth >= _MAX_NESTED_SQL:
                    raise Rejected("SQL nested too deep in string arguments")
                with contextlib.suppress(Malformed):
                    _check_nested(con, literal, depth + 1)
            name = str(function.get("function_name", "")).lower()
            if name not in ALLOWED_TABLE_FUNCTIONS:
                raise Rejected(f"table function {name}() is not allowed")
        stack.extend(node.values())


def _check_nested(con: duckdb.DuckDBPyConnection, text: str, depth: int) -> None:
    try:
        tree = con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()[0]
    except duckdb.Error:
        raise Malformed("not SQL") from None
    if '"error":true' not in tree:
        _check_tree(con, text, depth)


def _string_constants(node: Any) -> list[str]:
    out, stack = [], [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            literal = item.get("literal")
            if (
                item.get("class") == "CONSTANT"
                and isinstance(literal, dict)
                and literal.get("kind") == "STRING"
            ):
                out.append(str(literal.get("text", "")))
            stack.extend(item.values())
    return out


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


# ---- databases ---------------------------------------------------------------------------------
# A trusted in-memory connection per thread that attaches each new database file in turn: opening a
# DuckDB connection costs tens of milliseconds, attaching a file much less.
_writer = PerProcess(lambda: duckdb.connect(":memory:", config={"threads": 1}), per_thread=True)


def build_locked(
    instances: Sequence[Sequence[tuple[str, str, Any]]], directory: str, name: str
) -> tuple[duckdb.DuckDBPyConnection, list[duckdb.DuckDBPyConnection]]:
    """One database file holding each instance in its own schema (i0, i1, ...), built from
    (table name, CREATE TABLE sql, pyarrow table) triples, then reopened read-only and locked.

    Returns the locked connection and one cursor per instance whose default schema is that instance,
    so an unqualified table name reads that instance. The file is unlinked once open."""
    path = os.path.join(directory, f"{name}.duckdb")
    writer = _writer.get()
    try:
        writer.execute(f"ATTACH '{path}' AS build_target")
        try:
            for i, tables in enumerate(instances):
                writer.execute(f"CREATE SCHEMA build_target.i{i}")
                writer.execute(f"USE build_target.i{i}")
                for table, ddl, data in tables:
                    writer.execute(ddl)
                    writer.register("_load", data)
                    writer.execute(f'INSERT INTO "{table}" SELECT * FROM _load')
                    writer.unregister("_load")
        finally:
            writer.execute("USE memory")
            writer.execute("DETACH build_target")
        con = duckdb.connect(path, read_only=True, config=dict(LOCKED_CONFIG))
    finally:
        for leftover in (path, path + ".wal"):
            if os.path.exists(leftover):
                os.unlink(leftover)
    cursors = []
    for i in range(len(instances)):
        cur = con.cursor()
        cur.execute(f"USE i{i}")  # a per-cursor default; answers cannot run USE (a SET statement)
        cursors.append(cur)
    return con, cursors


class _Watchdog:
    """One daemon thread per process that interrupts the armed connection at its deadline.

    Arming does not wake the thread when it is already due to wake no later than the new deadline (it
    then re-checks and sleeps on): a wake-up is a context switch, which cost more than a small query."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._deadline = 0.0
        self._wake_at = math.inf  # when the thread's current wait ends (inf: idle until notified)
        self.fired = False
        self._thread = PerProcess(self._start)  # threads do not survive fork

    def _start(self) -> threading.Thread:
        self._wake_at = math.inf
        thread = threading.Thread(target=self._run, name="taskforge-sql-watchdog", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        with self._cond:
            while True:
                if self._con is None:
                    self._wake_at = math.inf
                    self._cond.wait()
                    continue
                remaining = self._deadline - time.monotonic()
                if remaining <= 0:
                    self._con.interrupt()
                    self.fired, self._con = True, None
                else:
                    self._wake_at = self._deadline
                    self._cond.wait(remaining)

    @contextmanager
    def guard(self, con: duckdb.DuckDBPyConnection, seconds: float):
        self._thread.get()
        with self._cond:
            self._con, self._deadline, self.fired = con, time.monotonic() + seconds, False
            if self._deadline < self._wake_at:
                self._cond.notify()
        try:
            yield self
        finally:
            with self._cond:
                self._con = None


_watchdog = _Watchdog()
_run_lock = threading.RLock()  # DuckDB connections are not for concurrent use; the watchdog arms one


@dataclass
class Outcome:
    rows: list[tuple] | None
    reason: str = "ok"  # ok | timeout | rejected | wrong (execution error) | too_many
    error: str = ""


def run_query(
    con: duckdb.DuckDBPyConnection, sql: str | duckdb.Statement, *, timeout_s: float, max_rows: int
) -> Outcome:
    """Execute an already-checked SELECT (text or `parse_statement`'s tree) with a deadline; fetch at
    most max_rows + 1 rows."""
    with _run_lock, _watchdog.guard(con, timeout_s) as dog:
        try:
            cursor = con.execute(sql)
            rows = cursor.fetchmany(max_rows + 1)
        except duckdb.InterruptException:
            return Outcome(None, "timeout", f"interrupted after {timeout_s}s")
        except (duckdb.PermissionException, duckdb.InvalidInputException) as exc:
            msg = _first_line(exc)
            if dog.fired:
                return Outcome(None, "timeout", msg)
            if "read-only" in msg or "disabled by configuration" in msg or "locked" in msg:
                return Outcome(None, "rejected", msg)
            return Outcome(None, "wrong", msg)
        except duckdb.Error as exc:
            return Outcome(None, "timeout" if dog.fired else "wrong", _first_line(exc))
        except (MemoryError, OverflowError, ValueError, UnicodeError) as exc:
            return Outcome(None, "wrong", f"{type(exc).__name__}: {exc}"[:300])
    if len(rows) > max_rows:
        return Outcome(None, "too_many", f"more than {max_rows} rows")
    return Outcome(rows)


# ---- result comparison -----------------------------------------------------------------------------
REL_TOL = 1e-6
ABS_TOL = 1e-9
_EXACT = (int, decimal.Decimal)


def _cell_key(v: Any, exact: bool = False) -> tuple:
    """A sortable, type-tagged key: numbers of any type compare as floats rounded to 6 significant digits
    (the form stored gold digests are made of). With `exact`, a number's own value follows as a
    tie-break, so that ints and DECIMALs that round alike still sort in one order on both sides."""
    if v is None:
        return (0, "")
    if isinstance(v, bool):
        return (1, int(v))
    if isinstance(v, (int, float, decimal.Decimal)):
        f = float(v)
        if math.isnan(f):
            return (2, "nan")
        if math.isinf(f):
            return (2, "inf" if f > 0 else "-inf")
        return (3, float(f"{f:.6g}"), v) if exact else (3, float(f"{f:.6g}"))
    if isinstance(v, str):
        return (4, v)
    if isinstance(v, (dt.date, dt.datetime, dt.time)):
        return (5, v.isoformat())
    if isinstance(v, (bytes, bytearray, memoryview)):
        return (6, bytes(v).hex())
    return (7, repr(v))


def _cells_equal(a: Any, b: Any) -> bool:
    """Ints and DECIMALs compare exactly (1234568 is not 1234567, 250000.01 is not 250000.00, but 5 and
    5.00 are equal); a tolerance applies only where a float is involved, whose value is approximate."""
    if type(a) is type(b) and a == b:  # the common case: same type, same value (NaN falls through)
        return True
    ka, kb = _cell_key(a), _cell_key(b)
    if ka[0] == kb[0] == 3:
        if isinstance(a, _EXACT) and isinstance(b, _EXACT):
            return a == b
        return math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return ka == kb


def _rows_equal(a: Sequence[Any], b: Sequence[Any], positions: Sequence[int] | None = None) -> bool:
    idx = range(len(a)) if positions is None else positions
    return all(_cells_equal(a[i], b[i]) for i in idx)


def _row_key(row: Sequence[Any], exact: bool = False) -> tuple:
    return tuple(_cell_key(v, exact) for v in row)


def normalise(rows: Sequence[Sequence[Any]]) -> list[tuple]:
    return [_row_key(row) for row in rows]


def _exact_row_key(row: Sequence[Any]) -> tuple:
    return _row_key(row, exact=True)


def sort_rows(rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    """Rows in the canonical order `compare` matches multisets in; callers may compute it once for gold."""
    return sorted(rows, key=_exact_row_key)


def compare(
    got: Sequence[Sequence[Any]],
    gold: Sequence[Sequence[Any]],
    order_keys: Sequence[int] | None,
    gold_sorted: Sequence[Sequence[Any]] | None = None,
) -> str:
    """'' when `got` matches `gold`, else a short reason. Multiset semantics; with `order_keys` (output
    positions the gold query sorts by) the sequence of those key values must also match, so rows tied on
    the sort keys may come in any order. `gold_sorted` is `sort_rows(gold)`, passed when cached."""
    if len(got) != len(gold):
        return f"{len(got)} rows, expected {len(gold)}"
    if gold and any(len(r) != len(gold[0]) for r in got):
        return f"{len(got[0]) if got else 0} columns, expected {len(gold[0])}"
    if order_keys:
        for i, (g, e) in enumerate(zip(got, gold, strict=True)):
            if not _rows_equal(g, e, order_keys):
                return f"row {i} out of order"
    if gold_sorted is None:
        gold_sorted = sort_rows(gold)
    for g, e in zip(sort_rows(got), gold_sorted, strict=True):
        if not _rows_equal(g, e):
            return "different rows"
    return ""


# ---- per-task cache ------------------------------------------------------------------------------
def _scratch_dir() -> str:
    # tmpfs where there is one: a database file lives only until its read-only connection opens it.
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return tempfile.mkdtemp(prefix="taskforge-sql-", dir=base)


def _remove_dir(path: str, pid: int) -> None:
    if os.getpid() == pid:  # not from a forked child that inherited the hook
        shutil.rmtree(path, ignore_errors=True)


def address_space() -> int:
    """Bytes of address space this process maps (what RLIMIT_AS bounds), from /proc; 0 without /proc."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class DatabaseCache:
    """LRU of built, locked database instances keyed by a task's content key.

    Building costs tens of milliseconds; a query on an open connection about one. Verifying the G
    samples of one prompt therefore builds once and queries G times.

    Sized by count and by bytes: under an address-space limit (the worker's RLIMIT_AS), the oldest
    entries go before a build that would leave less than `reserve` bytes free for running a query, so
    the cache never drives its process into the limit (where DuckDB fails allocations and the worker
    restarts empty). A new entry is assumed to cost the median of the entries measured so far (address
    space grown by their builds; the first build of a process also maps DuckDB itself, hence the
    median). `max_bytes` bounds the same sum where there is no limit (None: count only)."""

    def __init__(self, capacity: int = 32, reserve: int = 512 << 20, max_bytes: int | None = None) -> None:
        self.capacity, self.reserve, self.max_bytes = capacity, reserve, max_bytes
        self.evicted_for_bytes = 0
        self._lock = threading.RLock()
        # A forked child starts empty: it must not share the parent's connections or remove its folder.
        self._state = PerProcess(lambda: _CacheState(OrderedDict(), None, {}))

    def __len__(self) -> int:
        return len(self._state.get().items)

    @property
    def bytes(self) -> int:
        """The address space the cached entries' builds added, together."""
        return sum(self._state.get().sizes.values())

    def _room_for_one_more(self, state: _CacheState) -> bool:
        sizes = sorted(state.sizes.values())
        expected = sizes[len(sizes) // 2] if sizes else 0
        if self.max_bytes is not None and sum(sizes) + expected > self.max_bytes:
            return False
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return True
        return address_space() + expected + self.reserve <= limit

    @staticmethod
    def _evict_oldest(state: _CacheState) -> None:
        key, old = state.items.popitem(last=False)
        state.sizes.pop(key, None)
        old.close()

    def directory(self) -> str:
        state = self._state.get()
        if state.directory is None:
            given = os.environ.get("TASKFORGE_SQL_DIR")  # a worker's, made and removed by its parent
            if given and os.path.isdir(given):
                state.directory = given
            else:
                state.directory = _scratch_dir()
                atexit.register(_remove_dir, state.directory, os.getpid())
        return state.directory

    def get(self, key: str, build: Callable[[], Any]) -> Any:
        """The cached value for `key`, else `build()` stored; values have a `close()`."""
        with self._lock:
            state = self._state.get()
            items = state.items
            if key in items:
                items.move_to_end(key)
                return items[key]
            while items and not self._room_for_one_more(state):
                self._evict_oldest(state)
                self.evicted_for_bytes += 1
            before = address_space()
            value = build()
            items[key] = value
            state.sizes[key] = max(0, address_space() - before)
            while len(items) > self.capacity:
                self._evict_oldest(state)
            return value

    def clear(self) -> None:
        with self._lock:
            state = self._state.get()
            for value in state.items.values():
                value.close()
            state.items.clear()
            state.sizes.clear()
            if state.directory:
                shutil.rmtree(state.directory, ignore_errors=True)
            state.directory = None


@dataclass
class _CacheState:
    items: OrderedDict[str, Any]
    directory: str | None
    sizes: dict[str, int]  # key -> address space its build added


# ---- the worker process -------------------------------------------------------------------------
WORKER_ADDRESS_SPACE = 4 << 30  # bytes; an allocation past this fails inside the worker only
WORKER_BUILD_S = 120.0  # building a task's databases is trusted work; generous
WORKER_GRACE_S = 2.0  # past the per-instance deadlines, before the hard kill
_EXHAUSTED = ("Out of Memory", "Allocation failure", "MemoryError", "bad_alloc")


class Worker:
    """A long-lived child process that owns the task databases and runs the answers.

    `target` ("package.module:NAME") names the table of operations the worker runs: {op: fn(check, sql)}
    with JSON-able results, and "build" among them (builds a task's databases).

    Protocol: JSON lines on stdin/stdout. The parent sends one request for a whole batch,
    {"op", "groups": [[key, [sql, ...]], ...]}, the answers grouped by task so each task's databases are
    built (or found) once. Per group the worker asks for the task record when it does not hold it yet
    ({"need_check": true}; the record then travels once per worker), answers {"built": true} once the
    databases exist (trusted work, long deadline), then one {"result": ...} per answer as soon as it is
    judged (untrusted work). Each answer has its own deadline, counted from the previous reply, so a batch
    is bounded by the sum of its answers' deadlines and a runaway answer is caught at its own: the worker
    is killed, that answer alone gets "timeout", the answers before it keep their results and the rest go
    to a fresh worker. JSON, not pickle, so a subverted worker could not make the parent run code."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._proc: subprocess.Popen | None = None
        self._pid = -1
        self._dir = ""
        self._buf = bytearray()  # bytes read from the worker past the last full line
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        code = f"from taskforge.generators.sql.box import worker_loop; worker_loop({self.target!r})"
        self._dir = _scratch_dir()  # removed by stop() or at exit, even if the worker is killed mid-build
        atexit.register(_remove_dir, self._dir, os.getpid())
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TASKFORGE_SQL_DIR": self._dir}
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            bufsize=0,
        )
        self._proc, self._pid, self._buf = proc, os.getpid(), bytearray()
        return proc

    @property
    def pid(self) -> int | None:
        """The worker process's id while one runs for this process, else None."""
        proc = self._proc if self._pid == os.getpid() else None
        return proc.pid if proc is not None and proc.poll() is None else None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and self._pid == os.getpid():
            proc.kill()
            proc.wait()
            if self._dir:
                shutil.rmtree(self._dir, ignore_errors=True)

    def _read(self, proc: subprocess.Popen, seconds: float) -> dict[str, Any] | None:
        """The next reply line, or None past `seconds` or at end of output. Reads in chunks: a batch's
        replies arrive in bursts, and reading a raw pipe line by line costs a system call per byte."""
        end = time.monotonic() + max(0.0, seconds)
        fd = proc.stdout.fileno()
        while (cut := self._buf.find(b"\n")) < 0:
            ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self._buf += chunk
        line = bytes(self._buf[:cut])
        del self._buf[: cut + 1]
        return json.loads(line)

    def call_many(
        self,
        op: str,
        items: Sequence[tuple[str, dict[str, Any], str, float]],
        *,
        retry_errors: bool = False,
        replace: Callable[[str, Any], bool] | None = None,
    ) -> list[tuple[str, Any]]:
        """Run `op` on every (key, check, sql, deadline_s) item in one request; one outcome per item, in
        order: ("ok", result) | ("timeout", None) | ("crashed", None) | ("error", message).

        `retry_errors`: items that report an error run once more in a fresh worker (e.g. the databases
        could not be built in a worker left short of memory). `replace(status, result)`: True when the
        worker that gave this outcome must not judge anything else; it is then replaced before the rest."""
        results: list[tuple[str, Any] | None] = [None] * len(items)
        with self._lock:
            todo = list(range(len(items)))
            while todo:  # each round answers at least one item
                todo = self._round(op, items, todo, results, replace)
            again = [i for i, r in enumerate(results) if retry_errors and r is not None and r[0] == "error"]
            if again:
                self.stop()
                while again:
                    again = self._round(op, items, again, results, replace)
        return results  # type: ignore[return-value]

    def _round(
        self,
        op: str,
        items: Sequence[tuple[str, dict[str, Any], str, float]],
        todo: list[int],
        results: list[tuple[str, Any] | None],
        replace: Callable[[str, Any], bool] | None,
    ) -> list[int]:
        """One request for the `todo` items; fills `results`, returns the items left unanswered when the
        worker had to be killed (they go to a fresh worker)."""
        groups: dict[str, list[int]] = {}
        for i in todo:
            groups.setdefault(items[i][0], []).append(i)
        order = [i for idx in groups.values() for i in idx]  # the order the worker answers in
        done = 0  # items of `order` with a result
        proc = self._proc if self._pid == os.getpid() else None
        if proc is None or proc.poll() is not None:
            proc = self._start()
        try:
            request = {"op": op, "groups": [[key, [items[i][2] for i in idx]] for key, idx in groups.items()]}
            proc.stdin.write((json.dumps(request) + "\n").encode())
            for idx in groups.values():
                built = self._read(proc, WORKER_BUILD_S)
                if built is not None and built.get("need_check"):
                    proc.stdin.write((json.dumps({"check": items[idx[0]][1]}) + "\n").encode())
                    built = self._read(proc, WORKER_BUILD_S)
                if built is None or "error" in built:
                    error = (built or {}).get("error", "worker failed to build the databases")
                    for i in idx:
                        results[i] = ("error", error)
                    done += len(idx)
                    if built is None:  # hung or dead while building: the rest go to a fresh worker
                        self.stop()
                        return order[done:]
                    continue
                for i in idx:
                    reply = self._read(proc, items[i][3])
                    if reply is None:
                        return self._lost(proc, order, done, results)
                    results[i] = ("error", reply["error"]) if "error" in reply else ("ok", reply["result"])
                    done += 1
                    if replace is not None and replace(*results[i]):
                        self.stop()
                        return order[done:]
            return []
        except (OSError, ValueError):  # a broken pipe or a garbled line: the worker is dead or subverted
            return self._lost(proc, order, done, results)

    def _lost(
        self, proc: subprocess.Popen, order: list[int], done: int, results: list[tuple[str, Any] | None]
    ) -> list[int]:
        """The worker missed the deadline of item `order[done]` or died on it: kill it, give that item
        alone "timeout" or "crashed", and return the items after it."""
        alive = proc.poll() is None
        self.stop()
        if done < len(order):
            results[order[done]] = ("timeout", None) if alive else ("crashed", None)
        return order[done + 1 :]

    def call(self, op: str, key: str, check: dict[str, Any], sql: str, deadline_s: float) -> tuple[str, Any]:
        """`call_many` for one item."""
        return self.call_many(op, [(key, check, sql, deadline_s)])[0]

    def judge(self, key: str, check: dict[str, Any], sql: str, deadline_s: float) -> tuple[str, Any]:
        """`call("judge", ...)`, retried once in a fresh worker when the first one reports an error."""
        return self.call_many("judge", [(key, check, sql, deadline_s)], retry_errors=True)[0]


WORKER_THREAD_STACK = 1 << 20


def small_thread_stacks(size: int = WORKER_THREAD_STACK) -> bool:
    """Make `size` the stack of threads started from now on in this process (glibc); False elsewhere.

    Every DuckDB connection starts 8 threads, even at threads=1 (measured with duckdb 2.0), each with
    glibc's default stack of RLIMIT_STACK, 8 MiB of address space: 64 of the 68-80 MiB a cached level-3
    task cost against the worker's address-space limit (12-24 MiB with 1 MiB stacks). At threads=1
    queries run in the calling thread (its stack is untouched); 1 MiB is twice macOS's default for
    secondary threads, on which DuckDB runs as shipped."""
    try:
        libc = ctypes.CDLL(None)
        attr = ctypes.create_string_buffer(256)  # room for pthread_attr_t (56 bytes on x86-64 glibc)
        if libc.pthread_attr_init(attr) != 0:
            return False
        ok = libc.pthread_attr_setstacksize(attr, ctypes.c_size_t(size)) == 0
        ok = ok and libc.pthread_setattr_default_np(attr) == 0
        libc.pthread_attr_destroy(attr)
        return ok
    except (OSError, AttributeError):  # no pthread_setattr_default_np (not glibc): default stacks
        return False


def exhausted(error: str) -> bool:
    """Whether an error says an allocation failed: DuckDB may then hold on to memory, so the worker that
    reported it should be replaced."""
    return any(word in error for word in _EXHAUSTED)


def worker_loop(target: str) -> None:
    """The worker's main loop: `target` ("package.module:NAME") is the table {op: fn(check, sql)}."""
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_ADDRESS_SPACE, WORKER_ADDRESS_SPACE))
    small_thread_stacks()
    module, _, name = target.partition(":")
    ops = getattr(importlib.import_module(module), name)
    _catalogue()  # the function catalogue, read at start rather than inside the first answer's deadline
    out = sys.stdout.buffer
    checks: OrderedDict[str, dict[str, Any]] = OrderedDict()  # key -> task record, most recent last

    def send(obj: dict[str, Any]) -> None:
        out.write((json.dumps(obj) + "\n").encode())
        out.flush()

    for line in sys.stdin.buffer:
        try:
            msg = json.loads(line)
            op, groups = msg["op"], msg["groups"]
        except Exception as exc:  # not a request of ours: report, stay alive
            send({"error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        for key, sqls in groups:
            try:
                check = checks.get(key)
                if check is None:
                    send({"need_check": True})
                    check = json.loads(sys.stdin.buffer.readline())["check"]
                    checks[key] = check
                    if len(checks) > 256:
                        checks.popitem(last=False)
                checks.move_to_end(key)
                ops["build"](check, "")
                send({"built": True})
            except Exception as exc:  # a bad record: report, go on with the next task
                send({"error": f"{type(exc).__name__}: {exc}"[:300]})
                continue
            for sql in sqls:
                try:
                    result = json.dumps({"result": ops[op](check, sql)})
                except Exception as exc:
                    result = json.dumps({"error": f"{type(exc).__name__}: {exc}"[:300]})
                out.write((result + "\n").encode())
                out.flush()
