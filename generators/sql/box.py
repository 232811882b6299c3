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
DENIED_FUNCTIONS = frozenset({"range", "generate_series", "repeat", "repeat_row", "lpad", "rpad", "list_resize",
                              "array_resize", "bar", "printf", "format", "sprintf", "enum_range"})
_DENIED_WORDS = re.compile(r"\b(" + "|".join(sorted(DENIED_FUNCTIONS)) + r")\b", re.IGNORECASE)
_FUNCTION_NAMES = re.compile(r'"function_name":"([^"]*)"')


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
    writes, denied = _WRITE_WORDS.search(sql), _DENIED_WORDS.search(sql)
    if writes or denied:  # only then pay for a second parse into a tree
        try:
            tree = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0]
        except duckdb.Error as exc:
            raise Rejected(f"could not analyse query: {_first_line(exc)}") from None
        if '"error":true' in tree or _WRITE_NODES.search(tree):
            raise Rejected("data-modifying statement inside the query")
        used = DENIED_FUNCTIONS.intersection(_FUNCTION_NAMES.findall(tree))
        if used:
            raise Rejected(f"function {sorted(used)[0]}() is not allowed: it can build unbounded values")
    return stmt


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


def run_query(con: duckdb.DuckDBPyConnection, sql: str | duckdb.Statement, *, timeout_s: float,
              max_rows: int) -> Outcome:
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


def _cell_key(v: Any) -> tuple:
    """A sortable, type-tagged key: numbers of any type compare as floats rounded to 6 significant digits."""
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
        return (3, float(f"{f:.6g}"))
    if isinstance(v, str):
        return (4, v)
    if isinstance(v, (dt.date, dt.datetime, dt.time)):
        return (5, v.isoformat())
    if isinstance(v, (bytes, bytearray, memoryview)):
        return (6, bytes(v).hex())
    return (7, repr(v))


def _cells_equal(a: Any, b: Any) -> bool:
    if type(a) is type(b) and a == b:  # the common case: same type, same value (NaN falls through)
        return True
    ka, kb = _cell_key(a), _cell_key(b)
    if ka[0] == kb[0] == 3:
        return math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return ka == kb


def _rows_equal(a: Sequence[Any], b: Sequence[Any], positions: Sequence[int] | None = None) -> bool:
    idx = range(len(a)) if positions is None else positions
    return all(_cells_equal(a[i], b[i]) for i in idx)


def _row_key(row: Sequence[Any]) -> tuple:
    return tuple(_cell_key(v) for v in row)


def normalise(rows: Sequence[Sequence[Any]]) -> list[tuple]:
    return [_row_key(row) for row in rows]


def sort_rows(rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    """Rows in the canonical order `compare` matches multisets in; callers may compute it once for gold."""
    return sorted(rows, key=_row_key)


def compare(got: Sequence[Sequence[Any]], gold: Sequence[Sequence[Any]], order_keys: Sequence[int] | None,
            gold_sorted: Sequence[Sequence[Any]] | None = None) -> str:
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


class DatabaseCache:
    """LRU of built, locked database instances keyed by a task's content key.

    Building costs tens of milliseconds; a query on an open connection about one. Verifying the G
    samples of one prompt therefore builds once and queries G times."""

    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self._lock = threading.RLock()
        # A forked child starts empty: it must not share the parent's connections or remove its folder.
        self._state = PerProcess(lambda: _CacheState(OrderedDict(), None))

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
            items = self._state.get().items
            if key in items:
                items.move_to_end(key)
                return items[key]
            value = build()
            items[key] = value
            while len(items) > self.capacity:
                _, old = items.popitem(last=False)
                old.close()
            return value

    def clear(self) -> None:
        with self._lock:
            state = self._state.get()
            for value in state.items.values():
                value.close()
            state.items.clear()
            if state.directory:
                shutil.rmtree(state.directory, ignore_errors=True)
            state.directory = None


@dataclass
class _CacheState:
    items: OrderedDict[str, Any]
    directory: str | None


# ---- the worker process -------------------------------------------------------------------------
WORKER_ADDRESS_SPACE = 4 << 30  # bytes; an allocation past this fails inside the worker only
WORKER_BUILD_S = 120.0  # building a task's databases is trusted work; generous
WORKER_GRACE_S = 2.0  # past the per-instance deadlines, before the hard kill
_EXHAUSTED = ("Out of Memory", "Allocation failure", "MemoryError", "bad_alloc")


class Worker:
    """A long-lived child process that owns the task databases and runs the answers.

    `target` ("package.module:NAME") names the table of operations the worker runs: {op: fn(check, sql)}
    with JSON-able results, and "build" among them (builds a task's databases).

    Protocol: JSON lines on stdin/stdout. The parent sends {"op", "key", "sql"} (and the task record once,
    when the worker asks for it); the worker answers {"built": true} once the task's databases exist
    (trusted work, long deadline) and then {"result": ...} (untrusted work, the caller's deadline). Past a
    deadline, or if the worker dies, it is killed and a fresh one starts on the next call. JSON, not
    pickle, so a subverted worker could not make the parent run code."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._proc: subprocess.Popen | None = None
        self._pid = -1
        self._dir = ""
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        code = f"from taskforge.generators.sql.box import worker_loop; worker_loop({self.target!r})"
        self._dir = _scratch_dir()  # removed by stop() or at exit, even if the worker is killed mid-build
        atexit.register(_remove_dir, self._dir, os.getpid())
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TASKFORGE_SQL_DIR": self._dir}
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=env, bufsize=0)
        self._proc, self._pid = proc, os.getpid()
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
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, seconds))
        if not ready:
            return None
        line = proc.stdout.readline()
        return json.loads(line) if line else None

    def call(self, op: str, key: str, check: dict[str, Any], sql: str, deadline_s: float) -> tuple[str, Any]:
        """("ok", result) | ("timeout", None) | ("crashed", None) | ("error", message)."""
        with self._lock:
            proc = self._proc if self._pid == os.getpid() else None
            if proc is None or proc.poll() is not None:
                proc = self._start()
            try:
                # The task record travels once per worker; later calls name it by key.
                proc.stdin.write((json.dumps({"op": op, "key": key, "sql": sql}) + "\n").encode())
                built = self._read(proc, WORKER_BUILD_S)
                if built is not None and built.get("need_check"):
                    proc.stdin.write((json.dumps({"check": check}) + "\n").encode())
                    built = self._read(proc, WORKER_BUILD_S)
                if built is None or "error" in built:
                    self.stop()
                    return ("error", (built or {}).get("error", "worker failed to build the databases"))
                reply = self._read(proc, deadline_s)
            except (OSError, ValueError):
                reply = None
            if reply is None:
                alive = proc.poll() is None
                self.stop()
                return ("timeout", None) if alive else ("crashed", None)
            if "error" in reply:
                return ("error", reply["error"])
            return ("ok", reply["result"])

    def judge(self, key: str, check: dict[str, Any], sql: str, deadline_s: float) -> tuple[str, Any]:
        """`call("judge", ...)`, retried once in a fresh worker when the first one reports an error (e.g.
        the databases could not be built in a worker left short of memory)."""
        status, result = self.call("judge", key, check, sql, deadline_s)
        if status == "error":
            self.stop()
            status, result = self.call("judge", key, check, sql, deadline_s)
        return status, result


def exhausted(error: str) -> bool:
    """Whether an error says an allocation failed: DuckDB may then hold on to memory, so the worker that
    reported it should be replaced."""
    return any(word in error for word in _EXHAUSTED)


def worker_loop(target: str) -> None:
    """The worker's main loop: `target` ("package.module:NAME") is the table {op: fn(check, sql)}."""
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_ADDRESS_SPACE, WORKER_ADDRESS_SPACE))
    module, _, name = target.partition(":")
    ops = getattr(importlib.import_module(module), name)
    out = sys.stdout.buffer
    checks: OrderedDict[str, dict[str, Any]] = OrderedDict()  # key -> task record, most recent last

    def send(obj: dict[str, Any]) -> None:
        out.write((json.dumps(obj) + "\n").encode())
        out.flush()

    for line in sys.stdin.buffer:
        try:
            msg = json.loads(line)
            check = checks.get(msg["key"])
            if check is None:
                send({"need_check": True})
                check = json.loads(sys.stdin.buffer.readline())["check"]
                checks[msg["key"]] = check
                if len(checks) > 256:
                    checks.popitem(last=False)
            checks.move_to_end(msg["key"])
            ops["build"](check, "")
            send({"built": True})
            send({"result": ops[msg["op"]](check, msg["sql"])})
        except Exception as exc:  # a bad record: report, stay alive
            send({"error": f"{type(exc).__name__}: {exc}"[:300]})
