"""SQL family throughput: generation tasks/s and verification verdicts/s, per level, on one core.

    python benchmarks/sql_throughput.py [--tasks 24] [--samples 16]

Verification reuses each task's databases (the LRU in generators/sql/): the first response of a task
builds its instances ("build ms"), the next ones only run queries. Responses are distinct texts (the
gold query with a different trailing comment, and two wrong queries), so the per-task verdict memo never
answers; "memo hits/s" is the rate when a group repeats the same query text. "SELECT 1/s" is DuckDB's
own floor on the same connection, measured in the same run, for scale. DuckDB runs with threads=1 in the
calling thread, so CPU time (this process plus the SQL worker process, both pinned to one core) is the
cost on one dedicated core; wall time on a shared, oversubscribed machine is lower.
"""

from __future__ import annotations

import argparse
import os
import random
import time

import taskforge
from taskforge.generators import sql as S
from taskforge.generators.sql import judge
from taskforge.registry import get_generator


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=24, help="tasks per level")
    ap.add_argument("--samples", type=int, default=16, help="responses verified per task")
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
    args = ap.parse_args()
    S.settings.isolate = not args.in_process
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    gen = get_generator("sql")
    list(taskforge.generate("sql", 2, level=0, seed=99))  # imports, scratch connection

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
        start, cpu = time.perf_counter(), cpu_seconds()
        passed = sum(gen.safe_verify(t, r).passed for t, r in responses)
        verify_rate = len(responses) / (time.perf_counter() - start)
        verify_cpu = len(responses) / (cpu_seconds() - cpu)
        expected = sum(1 for i in range(args.samples) if i % 4 != 3) * len(tasks)
        assert passed == expected, (passed, expected)

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
            )
        )
        judge.DATABASES.clear()
        S.WORKER.stop()  # a fresh worker per level: its cache does not carry over

    mode = "in-process" if args.in_process else "worker process"
    print(f"answers run in: {mode}; load average at end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
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
        "| level | generate tasks/s (wall / CPU) | build ms/task | verify verdicts/s (wall / CPU) "
        "| memo hits/s | SELECT 1/s | instances |"
    )
    print("|---|---|---|---|---|---|---|")
    for level, g, gc, b, v, vc, m, f, n in rows:
        print(f"| {level} | {g:.0f} / {gc:.0f} | {b:.0f} | {v:.0f} / {vc:.0f} | {m:.0f} | {f:.0f} | {n} |")

    def hmean(i: int) -> float:
        return len(rows) / sum(1 / r[i] for r in rows)

    print(
        f"| all (harmonic mean) | {hmean(1):.0f} / {hmean(2):.0f} | | {hmean(4):.0f} / {hmean(5):.0f} | | | |"
    )


if __name__ == "__main__":
    main()
