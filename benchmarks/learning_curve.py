"""Does the loop teach a model, and faster with the curriculum? Held-out pass@1 against rollouts.

Per seed: build a from-scratch model (`taskforge tiny-model`), warm-start it once on gold answers
(`taskforge sft`), then run GRPO from that same checkpoint under each controller with identical budgets
(steps, prompts per step, group size). A fixed test-split set (disjoint from training by construction) is
evaluated greedily at step 0 and every `--eval-every` steps; rollouts are the completions GRPO generated
(`groups observed x G`, counted by the reward function; the held-out evaluation is not charged, and the
saturn controller runs with eval_source=train, so it spends no extra rollouts either).

Why these choices (arithmetic multiplication, levels 0-4 = 1x1, 2x1, 2x2, 3x2, 3x3 digits):
- a from-scratch model can learn it, and the ladder has a clear easy edge and cells it cannot solve;
- the warm start covers 1x1 and 2x1 with a budget that leaves partial skill there (20-80%) and none on
  2x2 and up, so GRPO has mixed groups to learn from on some cells and only all-zero groups on others:
  a controller that spends rollouts on cells that teach nothing is visibly slower;
- the held-out set is levels 0-3 (the model can plausibly move on all of them; 3x3 is in the training
  space as a trap).

    python benchmarks/learning_curve.py             # the full run (about 30 min on 2 idle cores)
    python benchmarks/learning_curve.py --quick     # a smoke test (< 3 min): 1 seed, 2 controllers

Writes benchmarks/results/learning_curve{.json,.md,.png} (`--out` to change the folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FAMILY = "arithmetic"
TRAIN_MAX_LEVEL = 4  # the controllers' space: ladder levels 0..4
HELDOUT_LEVELS = [0, 1, 2, 3]
WARM_LEVELS = [0, 1]
CONTROLLERS = {
    # Identical budgets; each controller's settings scaled to the run length, none tuned on reported seeds.
    "adaptive": {"name": "adaptive"},
    "uniform": {"name": "uniform"},
    "fixed": {"name": "fixed", "per_level": 96},  # 5 levels over ~480 prompts
    "saturn": {"name": "saturn", "epsilon": 0.5, "check_every": 64, "eval_source": "train"},
}


def warm_start(seed: int, args: argparse.Namespace, work: Path) -> tuple[dict[str, Any], float]:
    """Build the from-scratch model and warm-start it on gold answers; kept in `work` and reused by a
    later run with the same settings (the warm start does not depend on the controller)."""
    from taskforge.trainers.sft import sft
    from taskforge.trainers.tiny import build_tiny_model, preset_shape

    settings = {
        "seed": seed,
        "preset": args.preset,
        "examples": args.sft_examples,
        "steps": args.sft_steps,
        "lr": args.sft_lr,
        "levels": WARM_LEVELS,
    }
    out = work / f"sft-{seed}"
    done = out / "warm_start.json"
    if done.is_file() and json.loads(done.read_text())["settings"] == settings:
        saved = json.loads(done.read_text())
        return saved["result"], saved["seconds"]
    h, layers, heads = preset_shape(args.preset)
    base = build_tiny_model(
        work / f"model-{seed}", seed=seed, hidden_size=h, num_layers=layers, num_heads=heads
    )
    t0 = time.perf_counter()
    result = sft(
        {
            "model": str(base),
            "output_dir": str(out),
            "seed": seed,
            "examples": args.sft_examples,
            "tasks": [{"family": FAMILY, "levels": WARM_LEVELS}],
            "sft": {
                "max_steps": args.sft_steps,
                "per_device_train_batch_size": 32,
                "learning_rate": args.sft_lr,
            },
        }
    )
    seconds = time.perf_counter() - t0
    done.write_text(json.dumps({"settings": settings, "result": result, "seconds": seconds}))
    return result, seconds


def run_seed(seed: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Warm start once, then GRPO under each controller from that checkpoint; the held-out points come
    from the trainer's own `eval_every` evaluation, read back from the run log."""
    from collections import Counter

    from taskforge.trainers.grpo import train
    from taskforge.trainers.heldout import PREFIX, HeldOut

    warm, sft_s = warm_start(seed, args, work)
    # The same set the trainer evaluates (same seed, levels, size): its size per level weights the mean.
    held = HeldOut.build(
        {FAMILY: HELDOUT_LEVELS}, tasks_per_level=args.heldout_per_level, samples=1, seed=seed
    )
    sizes = Counter(item.level for item in held.items)
    runs: dict[str, Any] = {
        "warm_start": {"seconds": sft_s, "loss": warm["train_loss"]},
        "heldout_sizes": sizes,
    }
    per_step = args.prompts * args.group_size  # one generation batch per optimizer step
    for name in args.controllers:
        t0 = time.perf_counter()
        out = work / f"grpo-{seed}-{name}"
        cfg = {
            "model": warm["output_dir"],
            "output_dir": str(out),
            "seed": seed,
            "tasks": [{"family": FAMILY, "curriculum": True, "max_level": TRAIN_MAX_LEVEL}],
            "controller": CONTROLLERS[name],
            "eval_every": args.eval_every,
            "eval": {
                "levels": HELDOUT_LEVELS,
                "tasks_per_level": args.heldout_per_level,
                "samples": 1,
                "temperature": 0.0,  # greedy: a deterministic pass@1 for given weights
                "max_new_tokens": 16,
            },
            "grpo": {
                "max_steps": args.steps,
                "num_generations": args.group_size,
                "per_device_train_batch_size": per_step,
                "max_completion_length": 16,
                "learning_rate": args.lr,
                "temperature": 1.0,
                "beta": 0.0,
            },
        }
        result = train(cfg)
        # Rollouts are counted from the step, checked against what the reward function actually routed.
        routed = result.reward.groups_routed * args.group_size
        if routed != result.global_step * per_step:
            raise RuntimeError(
                f"{name}: {routed} completions rewarded, expected {result.global_step * per_step}"
            )
        points = [json.loads(line) for line in Path(result.log_path).read_text().splitlines()]
        points = [p for p in points if p.get("event") == "heldout"]
        per_level = {f"L{lv}": [p[f"{PREFIX}{FAMILY}/L{lv}"] for p in points] for lv in HELDOUT_LEVELS}
        total = sum(sizes.values())
        runs[name] = {
            "seconds": time.perf_counter() - t0,
            "steps": result.global_step,
            "rollouts": [p["step"] * per_step for p in points],
            "heldout_pass": [
                sum(per_level[f"L{lv}"][i] * sizes[f"L{lv}"] for lv in HELDOUT_LEVELS) / total
                for i in range(len(points))
            ],
            "per_level": per_level,
        }
        first, last = runs[name]["heldout_pass"][0], runs[name]["heldout_pass"][-1]
        print(
            f"seed {seed} {name:9s} held-out {first:.3f} -> {last:.3f} in {runs[name]['seconds']:.0f}s",
            flush=True,
        )
    return runs


def rollouts_to(target: float, rollouts: list[int], passes: list[float]) -> float:
    """First rollout count at which held-out pass reaches `target` (linear between evaluation points);
    inf when never reached (censored)."""
    for i, p in enumerate(passes):
        if p >= target:
            if i == 0:
                return 0.0
            r0, r1, p0 = rollouts[i - 1], rollouts[i], passes[i - 1]
            return r0 + (r1 - r0) * (target - p0) / (p - p0)
    return float("inf")


def bootstrap_ci(
    values: np.ndarray, stat: Any = np.mean, n: int = 2000, seed: int = 0
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    if len(values) < 2:
        return (float(stat(values)), float(stat(values)))
    draws = [stat(rng.choice(values, size=len(values), replace=True)) for _ in range(n)]
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def summarise(results: dict[str, Any], args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Gains over the warm start, rollouts to the stated target, ratios to uniform (paired by seed)."""
    seeds = sorted(results["runs"])
    summary: dict[str, Any] = {"target_gain": args.target_gain}
    lines = [
        f"_Measured {results['date']} on {results['machine']}, load average {results['load']}. "
        f"Command: `python benchmarks/learning_curve.py {results['command']}`._",
        "",
        f"Held-out greedy pass@1 (all distinct test-split tasks of levels {HELDOUT_LEVELS}, each once), {len(seeds)} seeds "
        f"({', '.join(map(str, seeds))}), {args.steps} GRPO steps x {args.prompts} prompts x G={args.group_size}; "
        f"target = warm start + {args.target_gain:.2f} (per seed). Ratios: rollouts to target / uniform's, "
        "paired by seed (inf = never reached within the budget).",
        "",
        "| controller | warm start | final | gain (95% CI) | rollouts to target (median) | ratio to uniform (median, 95% CI) |",
        "|---|---|---|---|---|---|",
    ]
    to_target: dict[str, np.ndarray] = {}
    for name in args.controllers:
        start = np.array([results["runs"][s][name]["heldout_pass"][0] for s in seeds])
        final = np.array([results["runs"][s][name]["heldout_pass"][-1] for s in seeds])
        gain = final - start
        to_target[name] = np.array(
            [
                rollouts_to(
                    results["runs"][s][name]["heldout_pass"][0] + args.target_gain,
                    results["runs"][s][name]["rollouts"],
                    results["runs"][s][name]["heldout_pass"],
                )
                for s in seeds
            ]
        )
        summary[name] = {
            "warm": float(start.mean()),
            "final": float(final.mean()),
            "gain": float(gain.mean()),
            "gain_ci": bootstrap_ci(gain),
            "rollouts_to_target": to_target[name].tolist(),
        }
    for name in args.controllers:
        s = summary[name]
        ratio_txt = "-"
        if "uniform" in to_target and name != "uniform":
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = to_target[name] / to_target["uniform"]
            ratio = np.where(np.isnan(ratio), 1.0, ratio)  # both censored: a tie
            s["ratio_to_uniform"] = ratio.tolist()
            lo, hi = bootstrap_ci(ratio, np.median)
            ratio_txt = f"{np.median(ratio):.2f} ({lo:.2f}-{hi:.2f})"
        med = float(np.median(to_target[name]))
        lines.append(
            f"| {name} | {s['warm']:.3f} | {s['final']:.3f} | {s['gain']:+.3f} ({s['gain_ci'][0]:+.3f} to "
            f"{s['gain_ci'][1]:+.3f}) | {med:.0f} | {ratio_txt} |"
        )
    return summary, "\n".join(lines) + "\n"


def plot(results: dict[str, Any], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    seeds = sorted(results["runs"])
    for name in args.controllers:
        xs = np.array([results["runs"][s][name]["rollouts"] for s in seeds], dtype=float)
        ys = np.array([results["runs"][s][name]["heldout_pass"] for s in seeds], dtype=float)
        x, m = xs.mean(0), ys.mean(0)
        ax.plot(x, m, label=name, marker="o", ms=3)
        if len(seeds) > 1:  # 95% normal band of the mean over seeds
            half = 1.96 * ys.std(0, ddof=1) / np.sqrt(len(seeds))
            ax.fill_between(x, m - half, m + half, alpha=0.2)
    ax.set_xlabel("GRPO rollouts (completions)")
    ax.set_ylabel(f"held-out greedy pass@1 (levels {HELDOUT_LEVELS})")
    ax.set_title(f"{FAMILY}: GRPO from one warm start per seed ({len(seeds)} seeds, {args.preset} model)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 seed, adaptive and uniform, short")
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    ap.add_argument("--controllers", nargs="+", default=list(CONTROLLERS), choices=list(CONTROLLERS))
    ap.add_argument("--preset", default="tiny", help="model size: tiny (CPU), small / base (GPU)")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--prompts", type=int, default=8, help="prompts per GRPO step")
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--heldout-per-level", type=int, default=64)
    ap.add_argument("--sft-examples", type=int, default=9000)
    ap.add_argument("--sft-steps", type=int, default=1100)
    ap.add_argument("--sft-lr", type=float, default=4e-3)
    ap.add_argument("--work", type=Path, default=None, help="keep models here; warm starts are reused")
    ap.add_argument("--name", default="learning_curve", help="stem of the result files")
    ap.add_argument("--jobs", type=int, default=1, help="seeds run in this many parallel processes")
    ap.add_argument("--warm-only", action="store_true", help="only build the warm starts (needs --work)")
    ap.add_argument("--target-gain", type=float, default=0.05, help="held-out target: warm start + this")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.controllers = args.seeds[:1], ["adaptive", "uniform"]
        args.steps, args.eval_every, args.heldout_per_level = 6, 3, 16
        args.sft_examples, args.sft_steps = 512, 40
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.name + ("_quick" if args.quick else "")
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load": round(os.getloadavg()[0], 1),
        "command": " ".join(sys.argv[1:]),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "runs": {},
    }
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="taskforge-lc-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.warm_only:
            for seed in args.seeds:
                print(f"seed {seed}: warm start {warm_start(seed, args, work)}", flush=True)
            return
        if args.jobs > 1:  # seeds in parallel processes (spawned: torch and forks do not mix)
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
                futures = {seed: pool.submit(run_seed, seed, args, work) for seed in args.seeds}
                results["runs"] = {seed: f.result() for seed, f in futures.items()}
        else:
            for seed in args.seeds:
                results["runs"][seed] = run_seed(seed, args, work)
    results["seconds"] = time.perf_counter() - t0
    summary, table = summarise(results, args)
    results["summary"] = summary
    # The layout: per controller, a list of runs {"seed", "rollouts", "heldout_pass"} (+ detail).
    results["controllers"] = {
        name: [
            {"seed": s, **{k: results["runs"][s][name][k] for k in ("rollouts", "heldout_pass", "per_level")}}
            for s in sorted(results["runs"])
        ]
        for name in args.controllers
    }
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
    (args.out / f"{stem}.md").write_text(table)
    plot(results, args, args.out / f"{stem}.png")
    print(table)
    print(f"{results['seconds']:.0f} s; results in {args.out / stem}.{{json,md,png}}")


if __name__ == "__main__":
    main()
