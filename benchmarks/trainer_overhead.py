"""taskforge's own share of a GRPO step: drawing tasks from the stream, verifying completions, updating
the controller, at a batch of 64 completions (8 prompts x G=8), next to a CPU step of the tiny model.

    OMP_NUM_THREADS=1 python benchmarks/trainer_overhead.py [--steps 50] [--model-steps 4]

Prints a markdown table. Target: taskforge's part <= 20 ms per step.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

COMPLETIONS, G = 64, 8
FILLER = "Let me work through this step by step, checking each part before giving the result. " * 3


def _config(model: str, out: str, steps: int) -> dict:
    return {
        "model": model,
        "output_dir": out,
        "seed": 0,
        # SAT at its first level: a large formula costs the tiny tokenizer thousands of prompt tokens, and
        # the model step (not taskforge's part) would then dominate everything.
        "tasks": [{"family": "arithmetic", "curriculum": True}, {"family": "sat", "level": 0}],
        "controller": {"name": "adaptive"},
        "grpo": {
            "max_steps": steps,
            "num_generations": G,
            "per_device_train_batch_size": COMPLETIONS,
            "max_completion_length": 32,
            "learning_rate": 1e-4,
        },
    }


def measure_taskforge(cfg_dict: dict, steps: int) -> dict[str, list[float]]:
    """Per step: draw 8 tasks (and the row TRL reads), verify 64 completions, route 8 groups to the controller."""
    from taskforge.registry import get_generator
    from taskforge.trainers.config import load_config
    from taskforge.trainers.grpo import build_stream, predicted_zero_var
    from taskforge.trainers.rewards import TaskReward

    cfg = load_config(cfg_dict)
    with tempfile.TemporaryDirectory() as tmp:
        stream = build_stream(cfg, Path(tmp) / "run_log.jsonl")
        reward = TaskReward(G, stream.observe, predict_zero_var=predicted_zero_var)
        rng = random.Random(0)
        times: dict[str, list[float]] = {"draw": [], "verify+observe": [], "total": []}
        for _ in range(steps + 3):
            t0 = time.perf_counter()
            rows = []
            for _ in range(COMPLETIONS // G):
                task = next(stream)
                rows.append({"prompt": task.messages, "task": task.to_json()})
            t1 = time.perf_counter()
            # Completions as a model writes them: reasoning, then an answer, right about half the time.
            tasks_col, completions = [], []
            for row in rows:
                from taskforge.task import Task

                task = Task.from_json(row["task"])
                gen = get_generator(task.family)
                for _ in range(G):
                    if rng.random() < 0.5:
                        answer = gen.gold_response(task)
                    else:
                        answer = gen.corrupt_answer(task, rng) or "<answer>no idea</answer>"
                    tasks_col.append(row["task"])
                    completions.append([{"role": "assistant", "content": FILLER + answer}])
            t2 = time.perf_counter()
            reward(prompts=None, completions=completions, task=tasks_col)
            t3 = time.perf_counter()
            times["draw"].append(t1 - t0)
            times["verify+observe"].append(t3 - t2)
            times["total"].append((t1 - t0) + (t3 - t2))
        close = getattr(stream, "close", None)
        if callable(close):
            close()
    return {k: v[3:] for k, v in times.items()}  # the first steps warm caches and imports


def measure_model_step(cfg_dict: dict) -> float:
    """Median TRL step time (generation + loss + update) of the tiny model on this CPU, in seconds."""
    from taskforge.trainers import train

    res = train(cfg_dict)
    steps = [json.loads(x) for x in Path(res.log_path).read_text().splitlines()]
    times = [r["step_time"] for r in steps if r.get("event") == "train_step" and "step_time" in r]
    return statistics.median(times[1:] or times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--model-steps", type=int, default=4)
    args = ap.parse_args()
    from taskforge.trainers.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model = str(build_tiny_model(Path(tmp) / "model", seed=0))
        tf = measure_taskforge(_config(model, str(Path(tmp) / "a"), 1), args.steps)
        step = measure_model_step(_config(model, str(Path(tmp) / "b"), args.model_steps))

    def ms(xs: list[float], q: float) -> float:
        return 1000 * sorted(xs)[min(int(q * len(xs)), len(xs) - 1)]

    print(
        f"batch {COMPLETIONS} completions = {COMPLETIONS // G} prompts x G={G}; "
        f"{args.steps} steps; arithmetic (adaptive) + sat level 0\n"
    )
    print("| part | median ms/step | p90 ms/step | share of a tiny-model CPU step |")
    print("|---|---:|---:|---:|")
    for k in ("draw", "verify+observe", "total"):
        med = statistics.median(tf[k]) * 1000
        print(f"| taskforge {k} | {med:.2f} | {ms(tf[k], 0.9):.2f} | {med / (step * 1000):.2%} |")
    print(f"| tiny-model GRPO step (TRL, CPU, 32 new tokens) | {step * 1000:.0f} | | 100% |")
    total = statistics.median(tf["total"]) * 1000
    print(f"\ntarget <= 20 ms per step: {'met' if total <= 20 else 'MISSED'} ({total:.2f} ms)")


if __name__ == "__main__":
    main()
