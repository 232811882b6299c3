"""Throughput of every registered family: generation and verification, one core and a process pool,
beside reasoning-gym's `products` at matched digits (same run, same machine, interleaved), plus the memory
of streaming a large dataset to JSONL.

    .venv/bin/python benchmarks/throughput.py            # full run, a few minutes
    .venv/bin/python benchmarks/throughput.py --quick    # a short run (about a minute)
    .venv/bin/python benchmarks/throughput.py --json figures.json --families arithmetic,sat

How it measures (why it looks the way it does):
- "1 core": one process calls the public API (`taskforge.generate` yields Tasks, `taskforge.verify` gives
  Verdicts) in timed blocks; the best block counts. The figure is items per CPU-second (of the process and
  of any worker it started, e.g. a sandbox), with items per wall-second beside it: on a shared machine the
  wall figure drops with the neighbours' load while the CPU figure stays the speed of one core. Targets
  are judged on the CPU figure.
- "JSONL": the dataset path (`taskforge.io.iter_task_lines`: Task -> JSON line), 1 and 2 workers, wall
  clock including the pool's start.
- Verification alternates the gold response and a corrupted answer, so both verdicts are paid for.
- reasoning-gym: `create_dataset("products", min_terms=2, max_terms=2, min_digits=d, max_digits=d)`,
  items by index (its own generation path), scored by its `extract_answer` + `score_answer` on the same
  `<answer>` responses; its blocks alternate with ours so a load spike hits both.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import taskforge
from taskforge.io import DatasetSpec, iter_task_lines
from taskforge.registry import generator_class, get_generator
from taskforge.task import Task

# Minimum (generation tasks/s, verification verdicts/s) on one core, from issue 2.
MUL_TARGET = (20_000, 50_000)
SAT_TARGETS = {"planted": (2_000, 50_000), "random": (500, 50_000), "unique": (500, 50_000)}
SAT_NKL = {"n": 3, "k": 8, "l": 40}


# ---- what to measure ------------------------------------------------------------------------------
class Case:
    """One (family, settings) point: a ladder level, or explicit knobs."""

    def __init__(
        self,
        family: str,
        label: str,
        level: int | None = None,
        params: dict[str, Any] | None = None,
        target: tuple[float, float] | None = None,
    ) -> None:
        self.family, self.label, self.target = family, label, target
        self.resolved = generator_class(family).resolve_params(level, params)

    def rg_digits(self) -> int | None:
        """Digits for reasoning-gym's products when this is a two-factor multiplication of equal widths."""
        p = self.resolved
        plain = p.get("op") == "mul" and not p.get("negative") and p.get("min_carries", 0) == 0
        if self.family == "arithmetic" and plain and p.get("digits_b") in (0, p["digits"]):
            return p["digits"]
        return None


def cases_for(family: str) -> list[Case]:
    cls = generator_class(family)
    n_levels = len(cls.levels)
    if family == "arithmetic":
        # The levels where both factors have equal widths (matched against reasoning-gym), and a sum.
        out = []
        for i, lv in enumerate(cls.levels):
            d = lv.get("digits")
            if lv.get("op") == "mul" and lv.get("digits_b") in (0, d) and d in (1, 2, 4, 10, 20):
                out.append(Case(family, f"mul {d}x{d} (level {i})", level=i, target=MUL_TARGET))
        out.append(Case(family, "sum 5 terms x 6 digits", params={"op": "sum", "terms": 5, "digits": 6}))
        return out
    if family == "sat" and {"n", "k", "l", "mode"} <= {k.name for k in cls.knobs}:
        nkl = ",".join(str(v) for v in SAT_NKL.values())
        out = [
            Case(family, f"{mode} (n,k,l)=({nkl})", params={**SAT_NKL, "mode": mode}, target=goal)
            for mode, goal in SAT_TARGETS.items()
        ]
        out.append(Case(family, f"hardest level {n_levels - 1}", level=n_levels - 1))
        return out
    # Any other family: its easiest, middle and hardest level.
    return [Case(family, f"level {i}", level=i) for i in sorted({0, n_levels // 2, n_levels - 1})]


# ---- timing ---------------------------------------------------------------------------------------
def _descendants_cpu() -> float:
    """CPU seconds of this process's live descendants (a family's sandbox workers), from /proc."""
    if not os.path.isdir("/proc/self"):
        return 0.0
    parent, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it exited meanwhile
        parent[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    total, frontier = 0.0, {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier}
        total += sum(cpu[pid] for pid in frontier)
    return total


def others_cpu() -> float:
    """CPU seconds of this process's reaped children and live descendants, so that a family that
    verifies in a worker process is charged for the worker's time too."""
    t = os.times()
    return t.children_user + t.children_system + _descendants_cpu()


class Rate:
    """Best-of-blocks rate: items per CPU-second (this process and its descendants) and per wall-second."""

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0
        self.cpu_share = 0.0

    def block(self, run: Callable[[int], int], budget: float) -> None:
        """Call `run(batch)` (returns items done) until `budget` wall seconds pass; keep the best rates."""
        state = {"batch": 16}

        def until_budget() -> int:
            items, w0 = 0, time.perf_counter()
            while not items or time.perf_counter() - w0 < budget:
                items += run(state["batch"])
                if time.perf_counter() - w0 < budget / 4:
                    state["batch"] = min(state["batch"] * 2, 4096)
            return items

        self.whole(until_budget)

    def whole(self, run: Callable[[], int]) -> None:
        """Time one call of `run()` (returns items done), e.g. a whole pool run; keep the best rates."""
        # Reading the others' CPU scans /proc: kept outside the window of our own clocks.
        o0 = others_cpu()
        c0, w0 = time.process_time(), time.perf_counter()
        items = run()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        cpu += others_cpu() - o0
        self.wall = max(self.wall, items / wall)
        self.cpu = max(self.cpu, items / max(cpu, 1e-9))
        self.cpu_share = max(self.cpu_share, cpu / wall)

    def to_dict(self) -> dict[str, float]:
        return {"cpu": round(self.cpu, 1), "wall": round(self.wall, 1), "cpu_share": round(self.cpu_share, 3)}


def _responses(tasks: list[Task]) -> list[tuple[Task, str]]:
    """Gold and corrupted responses, alternating, so both verdicts are measured."""
    rng = random.Random(0)
    pairs = []
    for i, task in enumerate(tasks):
        gen = get_generator(task.family)
        wrong = gen.corrupt_answer(task, rng) if i % 2 else None
        pairs.append((task, wrong if wrong is not None else gen.gold_response(task)))
    return pairs


def _cycle(items: list) -> Iterator:
    while True:
        yield from items


_POOL_PAIRS: list[tuple[Task, str]] = []  # inherited by forked verification workers


def _verify_slice(bounds: tuple[int, int]) -> int:
    pairs = _POOL_PAIRS[bounds[0] : bounds[1]]
    for task, response in pairs:
        taskforge.verify(task, response)
    return len(pairs)


def measure_case(case: Case, budget: float, reps: int, workers: int) -> dict[str, Any]:
    """Generation and verification rates of one case."""
    family, params = case.family, case.resolved
    gen_rate = Rate()
    start = [0]

    def gen_batch(batch: int) -> int:
        n = sum(1 for _ in taskforge.generate(family, batch, params=params, seed=1, start=start[0]))
        start[0] += batch
        return n

    for _ in range(reps):
        gen_rate.block(gen_batch, budget)

    pool_n = max(64, min(4096, int(gen_rate.wall * budget / 2)))
    tasks = list(taskforge.generate(family, pool_n, params=params, seed=2))
    pairs = _responses(tasks)
    passed = sum(taskforge.verify(t, r).passed for t, r in pairs)
    ver_rate = Rate()
    stream = _cycle(pairs)

    def ver_batch(batch: int) -> int:
        for _ in range(batch):
            task, response = next(stream)
            taskforge.verify(task, response)
        return batch

    for _ in range(reps):
        ver_rate.block(ver_batch, budget)

    # The dataset path, 1 and `workers` processes: wall clock for a fixed n sized to the budget.
    spec_n = max(256, int(gen_rate.wall * budget * workers))
    spec = DatasetSpec(n=spec_n, family=family, params=params, seed=3)
    jsonl = {w: Rate() for w in sorted({1, workers})}
    for _ in range(reps):
        for w, rate in jsonl.items():  # interleaved, so a load spike does not favour one side
            rate.whole(lambda w=w: sum(len(chunk) for chunk in iter_task_lines(spec, workers=w)))

    # Verification in a process pool: forked workers inherit the (task, response) pairs.
    global _POOL_PAIRS
    _POOL_PAIRS = pairs * max(1, int(ver_rate.wall * budget * workers) // len(pairs))
    step = max(1, len(_POOL_PAIRS) // (8 * workers))
    slices = [(i, i + step) for i in range(0, len(_POOL_PAIRS), step)]
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")

    def pool_run() -> int:
        with ctx.Pool(workers) as pool:
            return sum(pool.map(_verify_slice, slices))

    pool_verify = Rate()
    pool_verify.whole(pool_run)
    _POOL_PAIRS = []

    return {
        "family": family,
        "case": case.label,
        "params": params,
        "generate": gen_rate.to_dict(),
        "verify": ver_rate.to_dict(),
        "jsonl": {str(w): rate.to_dict() for w, rate in jsonl.items()},
        "verify_pool": pool_verify.to_dict(),
        "gold_and_wrong_passed": f"{passed}/{len(pairs)}",
        "target": case.target,
    }


# ---- reasoning-gym side by side -----------------------------------------------------------------
def compare_reasoning_gym(case: Case, budget: float, reps: int) -> dict[str, Any] | None:
    """taskforge and reasoning-gym's products at the same digits, measured in alternating blocks."""
    digits = case.rg_digits()
    if digits is None:
        return None
    try:
        import reasoning_gym
        from reasoning_gym.utils import extract_answer as rg_extract
    except ImportError:
        return None
    dataset = reasoning_gym.create_dataset(
        "products", min_terms=2, max_terms=2, min_digits=digits, max_digits=digits, seed=1, size=10**9
    )
    params = case.resolved
    tf_gen, tf_item, rg_gen, tf_ver, rg_ver = Rate(), Rate(), Rate(), Rate(), Rate()
    pos = {"tf": 0, "item": 0, "rg": 0}
    # The item-at-a-time path (`Generator.sampler`, what `taskforge.generate` used before the batch path):
    # same bytes, measured beside it as the "before" figure.
    sample = get_generator("arithmetic").sampler(params, 1, "train")

    def tf_batch(batch: int) -> int:
        n = sum(1 for _ in taskforge.generate("arithmetic", batch, params=params, seed=1, start=pos["tf"]))
        pos["tf"] += batch
        return n

    def item_batch(batch: int) -> int:
        for i in range(pos["item"], pos["item"] + batch):
            sample(i)
        pos["item"] += batch
        return batch

    def rg_batch(batch: int) -> int:
        for i in range(pos["rg"], pos["rg"] + batch):
            dataset[i]
        pos["rg"] += batch
        return batch

    tasks = list(taskforge.generate("arithmetic", 2000, params=params, seed=2))
    tf_pairs = _responses(tasks)
    entries = [dataset[i] for i in range(2000)]
    # The same kind of response for both: the gold answer in <answer> tags, or a wrong integer.
    rg_pairs = [
        (e, f"<answer>{int(e['answer']) + (1 if i % 2 else 0)}</answer>") for i, e in enumerate(entries)
    ]
    tf_stream, rg_stream = _cycle(tf_pairs), _cycle(rg_pairs)
    rg_scores = [dataset.score_answer(rg_extract(r), e) for e, r in rg_pairs[:2]]
    assert rg_scores == [1.0, 0.0] or digits == 1, rg_scores  # the comparison scores what we think it does

    def tf_ver_batch(batch: int) -> int:
        for _ in range(batch):
            task, response = next(tf_stream)
            taskforge.verify(task, response)
        return batch

    def rg_ver_batch(batch: int) -> int:
        for _ in range(batch):
            entry, response = next(rg_stream)
            dataset.score_answer(rg_extract(response), entry)
        return batch

    for _ in range(reps):
        tf_gen.block(tf_batch, budget)
        tf_item.block(item_batch, budget)
        rg_gen.block(rg_batch, budget)
        tf_ver.block(tf_ver_batch, budget)
        rg_ver.block(rg_ver_batch, budget)
    return {
        "digits": digits,
        "case": case.label,
        "taskforge_generate": tf_gen.to_dict(),
        "taskforge_generate_item_path": tf_item.to_dict(),
        "rg_generate": rg_gen.to_dict(),
        "taskforge_verify": tf_ver.to_dict(),
        "rg_score": rg_ver.to_dict(),
        "generate_ratio": round(tf_gen.cpu / rg_gen.cpu, 2),
        "item_path_ratio": round(tf_item.cpu / rg_gen.cpu, 2),
        "verify_ratio": round(tf_ver.cpu / rg_ver.cpu, 2),
    }


# ---- memory of streaming a dataset --------------------------------------------------------------
_RSS_CHILD = """
import resource, sys
from taskforge.io import DatasetSpec, write_dataset
n, path = int(sys.argv[1]), sys.argv[2]
write_dataset(DatasetSpec(n=n, family="arithmetic", level=0, seed=0), path, workers=int(sys.argv[3]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def measure_memory(sizes: list[int], workers: int) -> list[dict[str, Any]]:
    """Peak RSS of a fresh process that writes n arithmetic rows to JSONL (flat if it streams)."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = os.path.join(tmp, f"rows{n}.jsonl")
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", _RSS_CHILD, str(n), path, str(workers)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            wall = time.perf_counter() - t0
            parent_kib, child_kib = (int(x) for x in proc.stdout.split())
            with open(path, "rb") as fh:
                rows = sum(1 for _ in fh)
            out.append(
                {
                    "rows": rows,
                    "workers": workers,
                    "file_mib": round(os.path.getsize(path) / 2**20, 1),
                    "writer_peak_rss_mib": round(parent_kib / 1024, 1),
                    "worker_peak_rss_mib": round(child_kib / 1024, 1),
                    "seconds": round(wall, 1),
                }
            )
            os.unlink(path)
    return out


# ---- report -------------------------------------------------------------------------------------
def _k(x: float) -> str:
    return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}" if x >= 2 else f"{x:.2f}"


def _status(value: float, goal: float | None) -> str:
    if goal is None:
        return ""
    return f"{'ok' if value >= goal else 'MISS'} (>= {_k(goal)})"


def render(report: dict[str, Any]) -> str:
    w = str(report["workers"])
    lines = [
        f"taskforge throughput: {report['machine']}; load average {report['load_before'][0]} before, "
        f"{report['load_after'][0]} after",
        "",
        "One core, items per CPU-second (wall-clock figures are in the JSON)",
        "",
        "| family | case | generate/s | target | verify/s | target |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["cases"]:
        goal = r["target"] or (None, None)
        lines.append(
            f"| {r['family']} | {r['case']} | {_k(r['generate']['cpu'])} | {_status(r['generate']['cpu'], goal[0])} "
            f"| {_k(r['verify']['cpu'])} | {_status(r['verify']['cpu'], goal[1])} |"
        )
    lines += [
        "",
        f"Dataset path (`iter_task_lines`: Task -> JSON line) and verification in a pool of {w}: wall clock on this "
        "machine, and per CPU-second of all processes (equal per-CPU figures mean the pool adds no overhead)",
        "",
        f"| family | case | JSONL rows/s, 1 worker | JSONL rows/s, {w} workers | rows per CPU-s, 1 / {w} workers "
        f"| verify/s, {w} workers | verdicts per CPU-s, {w} workers |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["cases"]:
        one, many, pool = r["jsonl"]["1"], r["jsonl"][w], r["verify_pool"]
        lines.append(
            f"| {r['family']} | {r['case']} | {_k(one['wall'])} | {_k(many['wall'])} | {_k(one['cpu'])} / {_k(many['cpu'])} "
            f"| {_k(pool['wall'])} | {_k(pool['cpu'])} |"
        )
    if report["reasoning_gym"]:
        lines += [
            "",
            "taskforge arithmetic vs reasoning-gym `products` (2 factors, matched digits; per CPU-second, blocks "
            "alternating in one process). `taskforge.generate` takes the batch path (`generate_many`); the "
            "item-at-a-time path (`sampler`, same bytes) is measured beside it",
            "",
            "| digits | taskforge gen/s | item-at-a-time gen/s | reasoning-gym gen/s | ratio (item path) | target "
            "| taskforge verify/s | reasoning-gym score/s | ratio | target |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in report["reasoning_gym"]:
            lines.append(
                f"| {r['digits']}x{r['digits']} | {_k(r['taskforge_generate']['cpu'])} "
                f"| {_k(r['taskforge_generate_item_path']['cpu'])} | {_k(r['rg_generate']['cpu'])} "
                f"| {r['generate_ratio']:.2f} ({r['item_path_ratio']:.2f}) | {_status(r['generate_ratio'], 1.0)} "
                f"| {_k(r['taskforge_verify']['cpu'])} | {_k(r['rg_score']['cpu'])} "
                f"| {r['verify_ratio']:.2f} | {_status(r['verify_ratio'], 1.0)} |"
            )
    if report["memory"]:
        lines += [
            "",
            "Peak RSS while `write_dataset` streams arithmetic rows to JSONL (fresh process each)",
            "",
        ]
        lines += [
            "| rows | file MiB | writer peak RSS MiB | worker peak RSS MiB | seconds |",
            "|---|---|---|---|---|",
        ]
        for m in report["memory"]:
            lines.append(
                f"| {m['rows']:,} | {m['file_mib']} | {m['writer_peak_rss_mib']} | {m['worker_peak_rss_mib']} "
                f"| {m['seconds']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="short blocks, small memory run (about a minute)")
    ap.add_argument("--json", metavar="OUT", help="also save the figures as JSON")
    ap.add_argument("--families", help="comma-separated subset (default: every registered family)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-memory", action="store_true", help="skip the dataset memory measurement")
    ap.add_argument("--budget", type=float, help="seconds per timed block (default 0.4, quick 0.15)")
    ap.add_argument("--reps", type=int, help="timed blocks per figure, best kept (default 3, quick 2)")
    ap.add_argument(
        "--memory-rows", help="comma-separated dataset sizes (default 100000,1000000; quick 10000,100000)"
    )
    args = ap.parse_args(argv)

    budget, reps = (0.15, 2) if args.quick else (0.4, 3)
    budget, reps = args.budget or budget, args.reps or reps
    # Families whose verification cost depends on per-task setup (a database, a sandbox) are measured by
    # their own scripts with distinct responses per task; repeating one response here would flatter them.
    dedicated = {"code": "benchmarks/code_verify.py", "sql": "benchmarks/sql_throughput.py"}
    families = (
        args.families.split(",") if args.families else [f for f in taskforge.families() if f not in dedicated]
    )
    for fam, script in dedicated.items():
        if fam not in families:
            print(f"{fam}: see {script}", file=sys.stderr)
    load_before = [round(x, 2) for x in os.getloadavg()]
    report: dict[str, Any] = {
        "machine": f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{platform.machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "workers": args.workers,
        "quick": args.quick,
        "cases": [],
        "reasoning_gym": [],
        "memory": [],
    }
    for family in families:
        for case in cases_for(family):
            print(f"measuring {family} / {case.label} ...", file=sys.stderr, flush=True)
            report["cases"].append(measure_case(case, budget, reps, args.workers))
            rg = compare_reasoning_gym(case, budget, reps)
            if rg:
                report["reasoning_gym"].append(rg)
    if not args.no_memory and "arithmetic" in taskforge.families():
        sizes = [10_000, 100_000] if args.quick else [100_000, 1_000_000]
        sizes = [int(x) for x in args.memory_rows.split(",")] if args.memory_rows else sizes
        print(f"measuring dataset memory at {sizes} rows ...", file=sys.stderr, flush=True)
        report["memory"] = measure_memory(sizes, args.workers)
    report["load_before"], report["load_after"] = load_before, [round(x, 2) for x in os.getloadavg()]
    print(render(report))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return report


if __name__ == "__main__":
    main()
