"""A fixed held-out set, evaluated with pass@1 per family and level: during training (`eval_every: N`)
and by anything else that wants a learning curve from a model (benchmarks).

    held = HeldOut.build({"arithmetic": [0, 1, 2]}, tasks_per_level=8, samples=4, seed=0)
    held.run(model_sampler(model, tokenizer))        # {"heldout/pass@1/arithmetic/L0": 0.75, ...}
    held.run(lambda items, s: sample_hf("runs/model", items, s))   # a saved model, evaluate.py's backend

The tasks come from the `test` split, a namespace disjoint from the `train` split the stream draws from,
and are the same for every evaluation of a run (and every run with the same seed), so successive points
of the curve differ by the model only. Scoring is evaluate.py's (`score`, unbiased pass@k).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskforge.api import generate, level_label
from taskforge.registry import generator_class
from taskforge.trainers.evaluate import Completions, EvalItem, Sampling, score

Sampler = Callable[[Sequence[EvalItem], Sampling], Completions]
PREFIX = "heldout/pass@1/"


@dataclass
class HeldOut:
    items: list[EvalItem]
    sampling: Sampling
    every: int = 0  # steps between evaluations during training; 0: only when called

    @classmethod
    def build(
        cls,
        families: Mapping[str, Sequence[int] | None],
        *,
        tasks_per_level: int = 4,
        samples: int = 4,
        seed: int = 0,
        temperature: float = 1.0,
        max_new_tokens: int = 64,
        every: int = 0,
        params: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> HeldOut:
        """`families`: family -> ladder levels to evaluate (None: every level). `params` (family -> knobs)
        evaluates a family at fixed knobs instead, reported under its own label."""
        items: list[EvalItem] = []
        for family, levels in families.items():
            fixed = (params or {}).get(family)
            if fixed is not None:
                for t in generate(family, tasks_per_level, params=dict(fixed), seed=seed, split="test"):
                    items.append(EvalItem(t, level_label(t), t.messages))
                continue
            ladder = range(len(generator_class(family).levels)) if levels is None else levels
            for lvl in ladder:
                for t in generate(family, tasks_per_level, level=int(lvl), seed=seed, split="test"):
                    items.append(EvalItem(t, f"L{int(lvl)}", t.messages))
        if not items:
            raise ValueError("the held-out set is empty: give at least one family and level")
        return cls(items, Sampling(samples, temperature, 1.0, max_new_tokens, seed), every)

    @classmethod
    def from_config(cls, cfg: Any) -> HeldOut:
        """From a TrainConfig: curriculum families at `eval.levels` (default: all), fixed families at
        their configured level or params."""
        ev = cfg.eval
        families: dict[str, Sequence[int] | None] = {}
        params: dict[str, dict[str, Any]] = {}
        for t in cfg.tasks:
            if t.curriculum:
                families[t.family] = ev["levels"]
            elif t.params:
                families[t.family] = None
                params[t.family] = generator_class(t.family).resolve_params(t.level, t.params)
            else:
                families[t.family] = [t.level or 0]
        max_new = ev["max_new_tokens"] or int(cfg.grpo.get("max_completion_length", 64))
        return cls.build(
            families,
            tasks_per_level=int(ev["tasks_per_level"]),
            samples=int(ev["samples"]),
            seed=cfg.seed,
            temperature=float(ev["temperature"]),
            max_new_tokens=max_new,
            every=cfg.eval_every,
            params=params,
        )

    def run(self, sampler: Sampler | Any) -> dict[str, float]:
        """pass@1 per family and level, keyed `heldout/pass@1/<family>/<level>`. `sampler` is a Sampler,
        or a transformers Trainer whose live model (and tokenizer) is sampled."""
        if not callable(sampler):
            sampler = trainer_sampler(sampler)
        result = score(self.items, sampler(self.items, self.sampling), [1])
        return {PREFIX + key: float(g["pass@1"]) for key, g in result.groups.items()}


def trainer_sampler(trainer: Any) -> Sampler:
    return model_sampler(trainer.accelerator.unwrap_model(trainer.model), trainer.processing_class)


def model_sampler(model: Any, tokenizer: Any, batch_prompts: int = 8) -> Sampler:
    """Sample from a model in memory (the policy being trained), leaving the caller's RNG streams and the
    model's train/eval mode as they were: an evaluation must not change the training that follows it."""

    def sample(items: Sequence[EvalItem], s: Sampling) -> Completions:
        import torch

        was_training, side = model.training, tokenizer.padding_side
        tokenizer.padding_side = "left"  # decoder-only generation pads on the left
        model.eval()
        out: Completions = []
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(s.seed)  # the same noise at every evaluation: points differ by the model
                for start in range(0, len(items), batch_prompts):
                    chunk = items[start : start + batch_prompts]
                    texts = [
                        tokenizer.apply_chat_template(it.messages, tokenize=False, add_generation_prompt=True)
                        for it in chunk
                    ]
                    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
                        model.device
                    )
                    gen = model.generate(
                        **enc,
                        do_sample=s.temperature > 0,
                        temperature=s.temperature if s.temperature > 0 else None,
                        top_p=s.top_p if s.temperature > 0 else None,
                        max_new_tokens=s.max_tokens,
                        num_return_sequences=s.samples,
                        pad_token_id=tokenizer.pad_token_id,
                    )
                    new = gen[:, enc["input_ids"].shape[1] :].tolist()
                    for i in range(len(chunk)):
                        rows = []
                        for ids in new[i * s.samples : (i + 1) * s.samples]:
                            if tokenizer.eos_token_id in ids:
                                ids = ids[: ids.index(tokenizer.eos_token_id) + 1]
                            ids = [t for t in ids if t != tokenizer.pad_token_id]
                            rows.append((tokenizer.decode(ids, skip_special_tokens=True), len(ids)))
                        out.append(rows)
        finally:
            tokenizer.padding_side = side
            model.train(was_training)
        return out

    return sample
