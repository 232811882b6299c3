"""Code-verification throughput: verdicts/s for samples of 10 hidden tests on 2 workers, side by side
with a baseline that starts one fresh `python -I` interpreter per sample (2 in parallel, no sandbox).

    python benchmarks/code_verify.py [--samples 2000] [--baseline-samples 300] [--workers 2]

Prints a markdown table. The machine's load is printed too: figures from a shared machine are noisy,
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
from taskforge.generators.code import Code, _sample
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
    args = ap.parse_args()

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


if __name__ == "__main__":
    main()
