"""SQL family throughput: generation tasks/s and verification verdicts/s, per level, on one core.

    python benchmarks/sql_throughput.py [--tasks 24] [--samples 16] [--batch 64] [--rounds 3] [--in-process]
        [--gen-tasks 24] [--gen-rounds 4] [--gen-only]

Generation, before and after issue 16, side by side: "before" is the pre-issue-16 path kept callable here
(`LegacyGoldRunner`: an Arrow view per table, instance and task, a plan per instance; and the Python
screen turned off, so every draw asks DuckDB); "after" is the current path. Both generate the same tasks
(asserted, byte for byte) from fresh seeds, in alternated blocks, per CPU-second of this process (DuckDB
runs in it, threads=1), with the DuckDB queries each side ran per task.

Verification reuses each task's databases (the LRU in generators/sql/): the first response of a task
builds its instances ("build ms"), the next ones only run queries. Responses are distinct texts (the
gold query with a different trailing comment, and two wrong queries), so the per-task verdict memo never
answers; "memo hits/s" is the rate when a group repeats the same query text. "SELECT 1/s" is DuckDB's
own floor on the same connection, measured in the same run, for scale. "verify_many" runs the same
responses through `SQL.verify_many` in batches of --batch (one worker round each, as the trainer's reward
and `taskforge verify` call it); the memo is off for both, so each side runs every response, and the two
are measured in alternated rounds, best of --rounds each (the machine is shared and noisy). DuckDB runs with threads=1 in the
calling thread, so CPU time (this process plus the SQL worker process, both pinned to one core) is the
cost on one dedicated core; wall time on a shared, oversubscribed machine is lower.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import time
from collections.abc import Iterator
from typing import Any

import duckdb

import taskforge
from taskforge.generator import Generator
from taskforge.generators import sql as S
from taskforge.generators.sql import judge
from taskforge.generators.sql import screen as sql_screen
from taskforge.generators.sql.catalog import _scratch, arrow_table
from taskforge.registry import get_generator
from taskforge.task import Task


def cpu_seconds() -> float:
    """CPU time of this process plus the SQL worker process (where answers run), live or reaped (a worker
    that restarted mid-measure is charged too)."""
    t = os.times()
    total = time.process_time() + t.children_user + t.children_system
    pid = S.WORKER.pid
    if pid is not None:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def verify_all(gen: Generator, responses: list[tuple[Task, str]], batch: int) -> int:
    """Passes among `responses`: one `safe_verify` call each (batch 1), else `verify_many` per batch."""
    if batch == 1:
        return sum(gen.safe_verify(t, r).passed for t, r in responses)
    passed = 0
    for b in range(0, len(responses), batch):
        chunk = responses[b : b + batch]
        passed += sum(v.passed for v in gen.verify_many([t for t, _ in chunk], [r for _, r in chunk]))
    return passed


def _worker_vm_mib() -> float:
    pid = S.WORKER.pid
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def rotation_case(n: int, level: int, rounds: int) -> tuple[int, float, float, float, int]:
    """Verdicts per CPU-second over n tasks in rotation, next to one task repeated (a cached verdict)."""
    gen = get_generator("sql")
    tasks = list(taskforge.generate("sql", n, level=level, seed=7))
    S.WORKER.stop()
    judge.DATABASES.clear()

    def rate(order: list) -> tuple[float, int]:
        pids = set()
        for t, r in order[: len(tasks)]:  # warm-up round: builds what the cache can hold
            gen.safe_verify(t, r)
        cpu = cpu_seconds()
        for t, r in order:
            assert gen.safe_verify(t, r).passed
            pids.add(S.WORKER.pid)
        return len(order) / (cpu_seconds() - cpu), len(pids) - 1

    # Response texts distinct within and across cases (tasks of one seed repeat across cases), so the
    # per-task verdict memo never answers: the databases do the work.
    rotating = [
        (t, f"```sql\n{t.answer}\n-- {n} tasks, round {i}\n```") for i in range(rounds) for t in tasks
    ]
    single = [(tasks[0], f"```sql\n{tasks[0].answer}\n-- one of {n}, {i}\n```") for i in range(len(rotating))]
    single_rate, _ = rate(single)
    rot_rate, restarts = rate(rotating)
    vm = _worker_vm_mib()
    S.WORKER.stop()
    return n, rot_rate, single_rate, vm, restarts


class LegacyGoldRunner:
    """The gold runner before issue 16, kept as the baseline: a cursor per instance, an Arrow view
    registered per table it reads, and each query planned again on every instance."""

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
            if self.parsed[0] != sql:
                self.parsed = (sql, self.cursors[i].extract_statements(sql)[0])
            return self.cursors[i].execute(self.parsed[1]).fetchall()
        except duckdb.Error:
            return None

    def close(self) -> None:
        for cur in self.cursors:
            cur.close()


def _unsure(*_: Any) -> Any:
    raise sql_screen.Unsure("the baseline has no screen")


@contextlib.contextmanager
def generation_path(before: bool, counter: list[int]) -> Iterator[None]:
    """Generate through the old path (before) or the current one, counting DuckDB queries."""
    base = LegacyGoldRunner if before else S.GoldRunner

    class Counting(base):  # type: ignore[misc, valid-type]
        def run(self, i: int, sql: str) -> list[tuple] | None:
            counter[0] += 1
            return super().run(i, sql)

    saved = S.GoldRunner, sql_screen.Screen.probe_floats, sql_screen.Screen.rejects
    S.GoldRunner = Counting
    if before:
        sql_screen.Screen.probe_floats = _unsure  # the DuckDB probe, as before
        sql_screen.Screen.rejects = lambda *_: False  # every draw runs on DuckDB, as before
    try:
        yield
    finally:
        S.GoldRunner, sql_screen.Screen.probe_floats, sql_screen.Screen.rejects = saved


def generation_case(level: int, n: int, rounds: int) -> tuple[float, float, float, float]:
    """(before tasks/CPU-s, after tasks/CPU-s, before queries/task, after queries/task) over `rounds`
    blocks of n tasks a side, alternated (which side goes first alternates too)."""
    cpu = {True: 0.0, False: 0.0}
    queries = {True: [0], False: [0]}
    for r in range(rounds):
        seed = 7000 + 100 * level + r  # fresh seeds: none of the tests' or the profiles'
        made = {}
        for before in (True, False) if r % 2 == 0 else (False, True):
            with generation_path(before, queries[before]):
                start = time.process_time()
                made[before] = [t.to_json() for t in taskforge.generate("sql", n, level=level, seed=seed)]
                cpu[before] += time.process_time() - start
        assert made[True] == made[False], f"level {level}: the two paths made different tasks"
    total = n * rounds
    return total / cpu[True], total / cpu[False], queries[True][0] / total, queries[False][0] / total


def print_generation(rows: list[tuple[int, float, float, float, float]], n: int, rounds: int) -> None:
    print(
        f"Generation per level, before and after issue 16: {rounds} alternated blocks of {n} tasks a side "
        "on fresh seeds, the same tasks byte for byte on both sides (asserted); tasks per CPU-second of "
        "this process, where DuckDB runs"
    )
    print()
    print(
        "| level | before tasks/CPU-s | after tasks/CPU-s | after / before | DuckDB queries per task "
        "(before / after) | core-hours per 1M tasks (after) |"
    )
    print("|---|---|---|---|---|---|")
    for level, b, a, qb, qa in rows:
        print(f"| {level} | {b:.0f} | {a:.0f} | {a / b:.2f}x | {qb:.1f} / {qa:.1f} | {1e6 / a / 3600:.1f} |")
    hb = len(rows) / sum(1 / r[1] for r in rows)
    ha = len(rows) / sum(1 / r[2] for r in rows)
    print(f"| all (harmonic mean) | {hb:.0f} | {ha:.0f} | {ha / hb:.2f}x | | {1e6 / ha / 3600:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=24, help="tasks per level")
    ap.add_argument("--samples", type=int, default=16, help="responses verified per task")
    ap.add_argument("--batch", type=int, default=64, help="responses per verify_many call")
    ap.add_argument(
        "--rounds", type=int, default=3, help="verify rounds, one at a time and batched alternated"
    )
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="run answers in this process (TASKFORGE_SQL_ISOLATE=0) instead of the worker",
    )
    ap.add_argument(
        "--rotation",
        default="8,32,48",
        help="task counts verified in rotation at --rotation-level (the worker's cache holds 32)",
    )
    ap.add_argument("--rotation-level", type=int, default=3)
    ap.add_argument("--rotation-only", action="store_true", help="only the rotation table")
    ap.add_argument("--gen-tasks", type=int, default=24, help="tasks per block, generation before/after")
    ap.add_argument("--gen-rounds", type=int, default=4, help="alternated blocks per side, generation")
    ap.add_argument("--gen-only", action="store_true", help="only the generation before/after table")
    args = ap.parse_args()
    S.settings.isolate = not args.in_process
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    gen = get_generator("sql")
    list(taskforge.generate("sql", 2, level=0, seed=99))  # imports, scratch connection
    with generation_path(True, [0]):
        list(taskforge.generate("sql", 2, level=0, seed=99))  # the baseline's imports too

    generation = [
        (level, *generation_case(level, args.gen_tasks, args.gen_rounds)) for level in range(len(gen.levels))
    ]
    if args.gen_only:
        print_generation(generation, args.gen_tasks, args.gen_rounds)
        return

    rotation = [
        rotation_case(n, args.rotation_level, args.samples) for n in map(int, args.rotation.split(","))
    ]
    rows = []
    for level in range(len(gen.levels) if not args.rotation_only else 0):
        start, cpu = time.perf_counter(), time.process_time()
        tasks = list(taskforge.generate("sql", args.tasks, level=level, seed=1))
        gen_rate = len(tasks) / (time.perf_counter() - start)
        gen_cpu = len(tasks) / (time.process_time() - cpu)

        rng = random.Random(level)
        build = 0.0
        for t in tasks:  # the first verdict of each task builds its databases (in the worker)
            s = time.perf_counter()
            gen.safe_verify(t, "```sql\nSELECT 1 AS warm_up\n```")
            build += time.perf_counter() - s
        responses = []
        for t in tasks:
            for i in range(args.samples):
                if i % 4 == 3:
                    responses.append((t, gen.corrupt_answer(t, rng)))
                else:
                    responses.append((t, f"```sql\n{t.answer}\n-- sample {i}\n```"))
        expected = sum(1 for i in range(args.samples) if i % 4 != 3) * len(tasks)
        memo_size, S.settings.memo_size = S.settings.memo_size, 0  # both sides run every response
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.rounds):  # alternated, best of each: the machine is shared and noisy
            for name, batch in (("one", 1), ("batch", args.batch)):
                start, cpu = time.perf_counter(), cpu_seconds()
                passed = verify_all(gen, responses, batch)
                wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
                assert passed == expected, (name, passed, expected)
                w, c = best.get(name, (wall, cpu))
                best[name] = (min(w, wall), min(c, cpu))
        S.settings.memo_size = memo_size
        verify_rate, verify_cpu = (len(responses) / x for x in best["one"])
        batch_rate, batch_cpu = (len(responses) / x for x in best["batch"])

        start = time.perf_counter()
        for t, _ in responses:
            gen.safe_verify(t, gen.gold_response(t))
        memo_rate = len(responses) / (time.perf_counter() - start)

        con = S.instances(tasks[0].check).connections[0]  # in this process, for the engine floor
        start = time.perf_counter()
        for _ in range(500):
            con.execute("SELECT 1").fetchall()
        floor = 500 / (time.perf_counter() - start)
        rows.append(
            (
                level,
                gen_rate,
                gen_cpu,
                build / len(tasks) * 1000,
                verify_rate,
                verify_cpu,
                memo_rate,
                floor,
                len(tasks[0].check["seeds"]),
                batch_rate,
                batch_cpu,
            )
        )
        judge.DATABASES.clear()
        S.WORKER.stop()  # a fresh worker per level: its cache does not carry over

    mode = "in-process" if args.in_process else "worker process"
    print(f"answers run in: {mode}; load average at end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print()
    print_generation(generation, args.gen_tasks, args.gen_rounds)
    print()
    print(
        f"Tasks verified in rotation (level {args.rotation_level}, one response of each task in turn, "
        f"{args.samples} rounds, as in a response file that interleaves tasks): per CPU-second of this "
        "process and the worker, after one warm-up round; the worker's cache holds 32 tasks"
    )
    print()
    print(
        "| tasks in rotation | verdicts per CPU-s | vs one task repeated | worker address space MiB "
        "| worker restarts |"
    )
    print("|---|---|---|---|---|")
    for n, rate, single, vm, restarts in rotation:
        print(f"| {n} | {rate:.0f} | {rate / single:.2f} | {vm:.0f} | {restarts} |")
    if args.rotation_only:
        return
    print()
    print(
        f"Per level: {args.tasks} tasks x {args.samples} responses; verify one at a time (`safe_verify`) "
        f"and verify_many in batches of {args.batch}, best of {args.rounds} alternated rounds each"
    )
    print()
    print(
        "| level | generate tasks/s (wall / CPU) | build ms/task | verify verdicts/s (wall / CPU) "
        "| verify_many verdicts/s (wall / CPU) | batch / one (CPU) | memo hits/s | SELECT 1/s | instances |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for level, g, gc, b, v, vc, m, f, n, bv, bvc in rows:
        print(
            f"| {level} | {g:.0f} / {gc:.0f} | {b:.0f} | {v:.0f} / {vc:.0f} | {bv:.0f} / {bvc:.0f} "
            f"| {bvc / vc:.2f}x | {m:.0f} | {f:.0f} | {n} |"
        )

    def hmean(i: int) -> float:
        return len(rows) / sum(1 / r[i] for r in rows)

    print(
        f"| all (harmonic mean) | {hmean(1):.0f} / {hmean(2):.0f} | | {hmean(4):.0f} / {hmean(5):.0f} "
        f"| {hmean(9):.0f} / {hmean(10):.0f} | {hmean(10) / hmean(5):.2f}x | | | |"
    )


if __name__ == "__main__":
    main()
