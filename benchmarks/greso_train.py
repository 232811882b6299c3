"""GRESO in `taskforge train` on the tiny model: rollouts saved at equal learning, on CPU.

The simulated learners (greso_sim.py) measure the filter's rule; this measures the trainer's path: a fixed
tasks file, `greso:` in the YAML, TRL's GRPOTrainer, a real (tiny, random-weight) policy. The arithmetic
families teach the tiny model nothing measurable in minutes (benchmarks/results/learning_curve*.md), so the
dataset is a benchmark-only family the model can learn within a few dozen steps: "Reply with T." passes
when the reply contains T. A mixed dataset, as a real fixed dataset is mixed: targets `>` and `7` (the
random model emits them in a few percent of replies: learnable) and `qzx` (never emitted: every group
all wrong, so every rollout on it is wasted), a third of the prompts each.

Both arms train from the same random model with the same seed and budget; `plain` walks the dataset in
epochs (no `greso:`), `greso` adds `greso: {enabled: true}` with the defaults (nothing tuned here).
Learning is held-out pass@1 (test split, 8 samples per prompt at temperature 1) of checkpoints saved every
`--save-every` steps. Equal learning: the held-out pass rate the plain arm reaches at 90% of its budget;
rollouts saved = 1 - R_greso / R_plain, the rollouts each arm spent to first reach it.

    python benchmarks/greso_train.py                  # 3 seeds -> benchmarks/results/greso_train.{json,md}
    python benchmarks/greso_train.py --seeds 0 --steps 6 --save-every 3    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from taskforge.generator import Generator, Knob  # noqa: E402
from taskforge.registry import register  # noqa: E402
from taskforge.task import Verdict  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = (">", "7", "qzx")


class SayTarget(Generator):
    """Benchmark-only family: pass when the reply contains the target string."""

    family = "bench_say_target"
    version = "1"
    knobs = (Knob("target", str, ">", choices=TARGETS),)
    levels = tuple({"target": t} for t in TARGETS)

    def difficulty(self, params: dict[str, Any]) -> float:
        return float(TARGETS.index(params["target"]))

    def generate(self, params: dict[str, Any], rng: Any) -> Any:
        n = rng.randrange(10**9)
        return self.make_task(
            params,
            prompt=f"Reply with {params['target']}. ({n})",
            answer=params["target"],
            check={"target": params["target"]},
        )

    def verify(self, task: Any, response: str) -> Verdict:
        ok = isinstance(response, str) and task.check["target"] in response
        return Verdict.ok(parsed=response[:20]) if ok else Verdict.fail("wrong", parsed=str(response)[:20])


def split_tasks(n_per_target: int, seed: int, split: str) -> list[Any]:
    from taskforge.api import generate

    return [
        t
        for target in TARGETS
        for t in generate(SayTarget.family, n_per_target, params={"target": target}, seed=seed, split=split)
    ]


def heldout_pass(model_dir: Path, items: list[Any], samples: int) -> float:
    from taskforge.api import verify_many
    from taskforge.trainers.evaluate import EvalItem, Sampling, sample_hf

    evals = [EvalItem(t, t.params["target"], t.messages) for t in items]
    comps = sample_hf(str(model_dir), evals, Sampling(samples, 1.0, 1.0, 8, 0))
    tasks = [t for t, c in zip(items, comps, strict=True) for _ in c]
    texts = [text for c in comps for text, _ in c]
    return float(np.mean([v.passed for v in verify_many(tasks, texts)]))


def run_arm(
    model: Path, data: Path, work: Path, seed: int, greso: bool, args: argparse.Namespace, held: list[Any]
) -> dict[str, Any]:
    from taskforge.trainers.grpo import train

    out = work / f"{'greso' if greso else 'plain'}-{seed}"
    per_step = args.prompts * args.group_size
    cfg: dict[str, Any] = {
        "model": str(model),
        "output_dir": str(out),
        "seed": seed,
        "dataset": str(data),
        "grpo": {
            "max_steps": args.steps,
            "num_generations": args.group_size,
            "per_device_train_batch_size": per_step,
            "max_completion_length": 8,
            "learning_rate": args.lr,
            "temperature": 1.0,
            "save_strategy": "steps",
            "save_steps": args.save_every,
        },
    }
    if greso:
        cfg["greso"] = {"enabled": True}
    result = train(cfg)
    curve = [(0, heldout_pass(model, held, args.samples))]
    for step in range(args.save_every, args.steps + 1, args.save_every):
        curve.append((step * per_step, heldout_pass(out / f"checkpoint-{step}", held, args.samples)))
    log = [json.loads(x) for x in Path(result.log_path).read_text().splitlines()]
    obs = [r for r in log if r.get("event") == "observe"]
    zero = [len(set(r["rewards"])) == 1 for r in obs]
    wasted = [r["pass_rate"] == 0.0 for r in obs]
    src = result.stream
    return {
        "curve": curve,
        "skip_rate": src.skip_rate,
        "zero_var_share": float(np.mean(zero)),
        "all_wrong_share": float(np.mean(wasted)),
        "predicted_zero_var": float(np.mean([r["predicted_zero_var"] for r in obs])),
        "train_passes": result.reward.history,
    }


def rollouts_to(curve: list[tuple[int, float]], level: float) -> int | None:
    return next((r for r, p in curve if p >= level), None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--save-every", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=8, help="prompts per step")
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--per-target", type=int, default=16, help="dataset prompts per target")
    ap.add_argument("--heldout-per-target", type=int, default=16)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--out", default=str(RESULTS / "greso_train"))
    args = ap.parse_args(argv)
    register(SayTarget)
    from taskforge.trainers.tiny import build_tiny_model

    rows = []
    with tempfile.TemporaryDirectory(prefix="taskforge-greso-") as tmp:
        work = Path(tmp)
        for seed in args.seeds:
            model = build_tiny_model(work / f"model-{seed}", seed=seed)
            data = work / f"train-{seed}.jsonl"
            data.write_text("".join(t.to_json() + "\n" for t in split_tasks(args.per_target, seed, "train")))
            held = split_tasks(args.heldout_per_target, seed, "test")
            plain = run_arm(model, data, work, seed, False, args, held)
            gr = run_arm(model, data, work, seed, True, args, held)
            level = plain["curve"][int(0.9 * (len(plain["curve"]) - 1))][1]
            r_plain, r_greso = rollouts_to(plain["curve"], level), rollouts_to(gr["curve"], level)
            rows.append(
                {
                    "seed": seed,
                    "level": level,
                    "rollouts_plain": r_plain,
                    "rollouts_greso": r_greso,
                    "saved": None if not r_plain or r_greso is None else 1 - r_greso / r_plain,
                    "plain": plain,
                    "greso": gr,
                }
            )
            print(
                json.dumps({k: v for k, v in rows[-1].items() if k not in ("plain", "greso")}),
                file=sys.stderr,
                flush=True,
            )
    saved = [r["saved"] for r in rows if r["saved"] is not None]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"settings": vars(args), "runs": rows}, indent=1))
    per_step = args.prompts * args.group_size
    lines = [
        f"# GRESO in `taskforge train`, tiny model on CPU (seeds {', '.join(map(str, args.seeds))})",
        "",
        f"Fixed dataset: {args.per_target} prompts per target ({', '.join(TARGETS)}); {args.steps} steps x "
        f"{args.prompts} prompts x G={args.group_size} ({args.steps * per_step} rollouts) per arm; held-out "
        f"pass@1 of checkpoints every {args.save_every} steps ({args.heldout_per_target} test prompts per target, "
        f"{args.samples} samples). Equal learning: the held-out pass rate plain epochs reach at 90% of the budget.",
        "",
        "| seed | equal-learning level | rollouts plain / GRESO | saved | skip rate | all-wrong groups plain / GRESO "
        "| zero-var groups plain / GRESO (GRESO predicted) | final held-out plain / GRESO |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p, g = r["plain"], r["greso"]
        saved_text = "-" if r["saved"] is None else f"{r['saved']:.1%}"
        lines.append(
            f"| {r['seed']} | {r['level']:.3f} | {r['rollouts_plain']} / {r['rollouts_greso'] or 'not reached'} | "
            f"{saved_text} | {g['skip_rate']:.1%} | "
            f"{p['all_wrong_share']:.1%} / {g['all_wrong_share']:.1%} | "
            f"{p['zero_var_share']:.1%} / {g['zero_var_share']:.1%} ({g['predicted_zero_var']:.1%}) | "
            f"{p['curve'][-1][1]:.3f} / {g['curve'][-1][1]:.3f} |"
        )
    med = f"{np.median(saved):.1%}" if saved else "-"
    lines += [
        "",
        f"Median rollouts saved at equal learning: {med} ({len(saved)}/{len(rows)} seeds reached the level).",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
