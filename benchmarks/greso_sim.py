"""GRESO's pre-rollout filter on a fixed dataset, against the simulated learners of curriculum_sim.py.

A fixed dataset of N prompts, each a cell of the learner's grid drawn uniformly (so, like a real exported
set, many prompts are far too easy or too hard for the learner at any moment). Both arms walk the dataset
epoch by epoch in the same seeded order through `GresoFilter`: the baseline with exploration fixed at 1
(never skips: plain epochs over the dataset), GRESO with its defaults. Each step rolls out BATCH prompts
x G completions on the learner (`Learner.train`: skills move only on mixed groups). Measured per run:
rollouts spent to reach equal learning, i.e. the mean true pass rate over the dataset that the baseline
reaches with 90% of its budget; the share of rollouts saved = 1 - R_greso / R_base; GRESO's skip rate
and its predicted vs observed zero-variance share.

    python benchmarks/greso_sim.py                 # 10 seeds x 2 presets -> benchmarks/results/greso_sim.{json,md}
    python benchmarks/greso_sim.py --seeds 2       # a smoke run
    python benchmarks/greso_sim.py --first-seed 10 # seeds 10..19: a check on seeds the defaults were not chosen on
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import curriculum_sim as cs  # noqa: E402  (the simulated learners live beside this script)

from taskforge.curricula.greso import GresoFilter  # noqa: E402
from taskforge.task import Task  # noqa: E402

N_PROMPTS = 512
RESULTS = Path(__file__).resolve().parent / "results"


def dataset(n_cells: int, seed: int) -> tuple[list[Task], np.ndarray]:
    cells = np.random.default_rng([seed, 11]).integers(n_cells, size=N_PROMPTS)
    tasks = [
        Task(
            id=f"p{i}",
            family="sim",
            version="0",
            params={},
            difficulty=0.0,
            seed=seed,
            split="train",
            index=i,
            prompt="",
            messages=[],
            answer="",
            check={"cell": int(c)},
        )
        for i, c in enumerate(cells)
    ]
    return tasks, cells


def run(preset: str, seed: int, greso: bool, budget: int) -> dict:
    learner, _ = cs.make_learner(preset, seed, quick=True)
    tasks, cells = dataset(learner.B.shape[1], seed)
    filt = GresoFilter(tasks, seed=seed) if greso else GresoFilter(tasks, seed=seed, p_start=1.0, p_min=1.0)
    rng = np.random.default_rng([seed, 7])
    rollouts, curve, records = 0, [], []
    filt._write = records.append  # the run-log records, kept in memory here
    while rollouts < budget:
        batch = [next(filt) for _ in range(cs.BATCH)]
        k = learner.train(np.array([t.check["cell"] for t in batch]), rng)
        for t, passes in zip(batch, k, strict=True):
            filt.observe(t.id, [1.0] * int(passes) + [0.0] * (cs.G - int(passes)))
        rollouts += cs.BATCH * cs.G
        curve.append((rollouts, float(learner.pass_rates(cells).mean())))
    records = [r for r in records if r["event"] == "greso"]
    pred = [r["predicted_zero_var"] for r in records]
    obs = [r["observed_zero_var"] for r in records]
    return {
        "curve": curve,
        "skip_rate": filt.skip_rate,
        "predicted_zero_var": float(np.mean(pred)) if pred else None,
        "observed_zero_var": float(np.mean(obs)) if obs else None,
    }


def rollouts_to(curve: list[tuple[int, float]], level: float) -> int | None:
    return next((r for r, p in curve if p >= level), None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--presets", default="easy-1D,SAT-like")
    ap.add_argument("--budget", type=int, default=40_000, help="rollouts per run")
    ap.add_argument("--out", default=str(RESULTS / "greso_sim"))
    args = ap.parse_args(argv)
    rows = []
    for preset in args.presets.split(","):
        if preset not in cs.PRESETS:
            ap.error(f"unknown preset {preset!r}; valid: {', '.join(cs.PRESETS)}")
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            base, gr = run(preset, seed, False, args.budget), run(preset, seed, True, args.budget)
            level = base["curve"][int(0.9 * len(base["curve"])) - 1][1]
            r_base, r_greso = rollouts_to(base["curve"], level), rollouts_to(gr["curve"], level)
            rows.append(
                {
                    "preset": preset,
                    "seed": seed,
                    "level": level,
                    "rollouts_base": r_base,
                    "rollouts_greso": r_greso,
                    "saved": None if r_greso is None else 1 - r_greso / r_base,
                    "final_base": base["curve"][-1][1],
                    "final_greso": gr["curve"][-1][1],
                    "skip_rate": gr["skip_rate"],
                    "predicted_zero_var": gr["predicted_zero_var"],
                    "observed_zero_var": gr["observed_zero_var"],
                    "baseline_zero_var": base["observed_zero_var"],
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # progress; stdout is the table
    summary = {}
    for preset in args.presets.split(","):
        rs = [r for r in rows if r["preset"] == preset]
        saved = [r["saved"] for r in rs if r["saved"] is not None]
        summary[preset] = {
            "runs": len(rs),
            "reached": len(saved),
            "median_saved": float(np.median(saved)) if saved else None,
            "mean_skip_rate": float(np.mean([r["skip_rate"] for r in rs])),
            "mean_predicted_zero_var": float(np.mean([r["predicted_zero_var"] for r in rs])),
            "mean_observed_zero_var": float(np.mean([r["observed_zero_var"] for r in rs])),
            "mean_baseline_zero_var": float(np.mean([r["baseline_zero_var"] for r in rs])),
            "mean_final_base": float(np.mean([r["final_base"] for r in rs])),
            "mean_final_greso": float(np.mean([r["final_greso"] for r in rs])),
        }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = {
        "seeds": args.seeds,
        "first_seed": args.first_seed,
        "budget": args.budget,
        "n_prompts": N_PROMPTS,
        "G": cs.G,
        "batch": cs.BATCH,
    }
    out.with_suffix(".json").write_text(
        json.dumps({"config": cfg, "summary": summary, "runs": rows}, indent=1)
    )
    lines = [
        f"# GRESO on simulated learners (seeds {args.first_seed}..{args.first_seed + args.seeds - 1}, {args.budget} rollouts, {N_PROMPTS} prompts, G={cs.G})",
        "",
        "Equal learning: the mean true pass rate the baseline (no skipping) reaches with 90% of its budget.",
        "",
        "| preset | runs reaching it | median rollouts saved | skip rate | zero-var predicted / observed "
        "| zero-var without GRESO | final pass base / GRESO |",
        "|---|---|---|---|---|---|---|",
    ]
    for preset, s in summary.items():
        med = "-" if s["median_saved"] is None else f"{s['median_saved']:.1%}"
        lines.append(
            f"| {preset} | {s['reached']}/{s['runs']} | {med} | {s['mean_skip_rate']:.1%} | "
            f"{s['mean_predicted_zero_var']:.1%} / {s['mean_observed_zero_var']:.1%} | "
            f"{s['mean_baseline_zero_var']:.1%} | {s['mean_final_base']:.3f} / {s['mean_final_greso']:.3f} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
