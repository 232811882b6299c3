"""SAT family throughput on one core: generation tasks/s per mode and verification verdicts/s.

    python benchmarks/sat_throughput.py [--n 3 --k 8 --l 40 --count 2000]

Rates use process CPU time (robust to a loaded machine). Prints one row per mode; goals (issue 2): planted >= 2000 tasks/s at (3,8,40), random and unique
>= 500 tasks/s, verification >= 50000 verdicts/s.
"""

from __future__ import annotations

import argparse
import time

from taskforge.registry import get_generator


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--l", type=int, default=40)
    ap.add_argument("--count", type=int, default=2000)
    args = ap.parse_args()
    gen = get_generator("sat")
    print(
        f"sat at (n,k,l)=({args.n},{args.k},{args.l}), {args.count} tasks per mode, one core, per CPU-second"
    )
    print()
    print("| mode | generation tasks/s | verify gold verdicts/s | verify wrong verdicts/s | mean models |")
    print("|---|---:|---:|---:|---:|")
    for mode in ("planted", "random", "unique"):
        params = gen.resolve_params(None, {"n": args.n, "k": args.k, "l": args.l, "mode": mode})
        t0 = time.process_time()
        tasks = gen.generate_many(params, 0, "train", 0, args.count)
        gen_rate = args.count / (time.process_time() - t0)
        gold = [gen.gold_response(t) for t in tasks]
        wrong = [f"\\boxed{{{'1' * args.k}}}" for _ in tasks]
        rates = []
        for responses in (gold, wrong):
            reps = max(1, 50_000 // args.count)
            t0 = time.process_time()
            for _ in range(reps):
                for t, r in zip(tasks, responses, strict=True):
                    gen.verify(t, r)
            rates.append(reps * args.count / (time.process_time() - t0))
        models = sum(t.meta["models"] for t in tasks) / len(tasks)
        print(f"| {mode} | {gen_rate:,.0f} | {rates[0]:,.0f} | {rates[1]:,.0f} | {models:.2f} |")


if __name__ == "__main__":
    main()
