"""Held-out evaluation with the policy being trained: the default evaluator of a `saturn` curriculum.

Saturn decides when to move up a level from pass@1 on a held-out set of the level, sampled from the
current model at temperature 0.6, top_p 0.95 (its eval_k protocol). A training YAML cannot pass a Python
evaluator, so `taskforge train` builds this one whenever a saturn controller evaluates on held-out tasks:
the stream draws the tasks from the `val` split (disjoint from training), this samples one completion per
entry with the trainer's model and scores it with the run's reward (Saturn's reward under
`reward: saturn`, else the family's verifier).

Sampling runs under a forked torch RNG, so an evaluation never shifts the training run's random stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskforge.task import Task


class PolicyEvaluator:
    """`evaluator(tasks) -> [1.0 | 0.0 per task]`, sampling from the trainer's model once bound."""

    def __init__(
        self,
        reward: str = "verifier",
        *,
        temperature: float = 0.6,
        top_p: float = 0.95,
        max_tokens: int = 256,
        batch: int = 16,
        seed: int = 0,
    ) -> None:
        self.reward = reward
        self.temperature, self.top_p = float(temperature), float(top_p)
        self.max_tokens, self.batch, self.seed = int(max_tokens), max(int(batch), 1), int(seed)
        self.trainer: Any = None
        self.tokenizer: Any = None
        self.calls = 0

    def bind(self, trainer: Any, tokenizer: Any) -> None:
        self.trainer, self.tokenizer = trainer, tokenizer

    def __call__(self, tasks: Sequence[Task]) -> list[float]:
        if self.trainer is None:
            raise RuntimeError("the policy evaluator samples from the trainer's model: bind() it first")
        texts = self.generate(tasks)
        from taskforge.api import verify_many
        from taskforge.trainers.evaluate import score_completions

        if self.reward == "saturn":
            return [float(s["passed"]) for s in score_completions(list(tasks), texts, "saturn")]
        return [float(v.passed) for v in verify_many(list(tasks), texts)]

    def generate(self, tasks: Sequence[Task]) -> list[str]:
        llm = getattr(getattr(self.trainer, "vllm_generation", None), "llm", None)
        if llm is not None:
            try:
                return self._generate_vllm(llm, tasks)
            except Exception:  # an engine asleep or mid-sync: transformers' generate still works
                pass
        return self._generate_hf(tasks)

    def _generate_vllm(self, llm: Any, tasks: Sequence[Task]) -> list[str]:
        # TRL's colocated engine (trainer.vllm_generation.llm in TRL 1.16) holds the weights synced at the
        # last rollout, i.e. the policy that produced the batch being rewarded.
        from vllm import SamplingParams

        self.calls += 1
        params = SamplingParams(
            n=1,
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            seed=self.seed * 1_000_003 + self.calls,
        )
        outputs = llm.chat([t.messages for t in tasks], params, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]

    def _generate_hf(self, tasks: Sequence[Task]) -> list[str]:
        import torch

        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        tok = self.tokenizer
        was_training, side = model.training, tok.padding_side
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        out: list[str] = []
        self.calls += 1
        try:
            model.eval()
            tok.padding_side = "left"  # decoder-only generation pads on the left
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                torch.manual_seed(self.seed * 1_000_003 + self.calls)
                for start in range(0, len(tasks), self.batch):
                    chunk = tasks[start : start + self.batch]
                    prompts = [
                        tok.apply_chat_template(t.messages, tokenize=False, add_generation_prompt=True)
                        for t in chunk
                    ]
                    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(
                        model.device
                    )
                    gen = model.generate(
                        **enc,
                        do_sample=self.temperature > 0,
                        temperature=self.temperature if self.temperature > 0 else None,
                        top_p=self.top_p if self.temperature > 0 else None,
                        max_new_tokens=self.max_tokens,
                        pad_token_id=tok.pad_token_id,
                    )
                    new = gen[:, enc["input_ids"].shape[1] :]
                    out.extend(tok.batch_decode(new, skip_special_tokens=True))
        finally:
            tok.padding_side = side
            if was_training:
                model.train()
        return out


def needs_policy_evaluator(controllers: Sequence[Any]) -> Any:
    """The first saturn controller that evaluates on held-out tasks, or None."""
    for ctrl in controllers:
        if getattr(ctrl, "name", "") == "saturn" and ctrl.settings.get("eval_source") == "heldout":
            return ctrl
    return None
