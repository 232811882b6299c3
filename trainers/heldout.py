"""A fixed held-out set, evaluated with pass@1 per family and level: during training (`eval_every: N`)
and by anything else that wants a learning curve from a model (benchmarks).

    held = HeldOut.build({"arithmetic": [0, 1, 2]}, tasks_per_level=8, samples=4, seed=0)
    held.run(trainer)                                # the policy being trained: {"heldout/pass@1/arithmetic/L0": 0.75, ...}
    held.run(lambda items, s: sample_hf("runs/model", items, s))   # a saved model, evaluate.py's backend

The tasks come from the `test` split, a namespace disjoint from the `train` split the stream draws from,
and are the same for every evaluation of a run (and every run with the same seed), so successive points
of the curve differ by the model only. Scoring is evaluate.py's (`score`, unbiased pass@k).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskforge.api import generate, level_label
from taskforge.registry import generator_class
from taskforge.task import Task
from taskforge.trainers.evaluate import Completions, EvalItem, Sampling, score

Sampler = Callable[[Sequence[EvalItem], Sampling], Completions]
PREFIX = "heldout/pass@1/"


def distinct(tasks: Iterable[Task], n: int) -> list[Task]:
    """The first `n` tasks with distinct ids. A level with few distinct problems in the test split
    (1x1-digit multiplication has 81 problems, a handful of them in the test split) gives fewer: repeating
    them would only weight those few more."""
    seen: dict[str, Task] = {}
    for task in tasks:
        seen.setdefault(task.id, task)
        if len(seen) == n:
            break
    return list(seen.values())


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
                for t in distinct(
                    generate(family, tasks_per_level * 8, params=dict(fixed), seed=seed, split="test"),
                    tasks_per_level,
                ):
                    items.append(EvalItem(t, level_label(t), t.messages))
                continue
            ladder = range(len(generator_class(family).levels)) if levels is None else levels
            for lvl in ladder:
                for t in distinct(
                    generate(family, tasks_per_level * 8, level=int(lvl), seed=seed, split="test"),
                    tasks_per_level,
                ):
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
                top = None if t.max_level is None else list(range(t.max_level + 1))
                families[t.family] = ev["levels"] if ev["levels"] is not None else top
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
    """Sample the policy being trained: policy_eval.py's generation (the colocated vLLM engine when there
    is one, else transformers' generate under a forked RNG, so an evaluation never shifts training), with
    each task repeated n times. The seed is the same at every evaluation: points differ by the model."""
    from taskforge.trainers.policy_eval import PolicyEvaluator

    def sample(items: Sequence[EvalItem], s: Sampling) -> Completions:
        gen = PolicyEvaluator(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed)
        gen.bind(trainer, trainer.processing_class)
        texts = gen.generate([it.task for it in items for _ in range(s.samples)])
        return [[(t, None) for t in texts[i * s.samples : (i + 1) * s.samples]] for i in range(len(items))]

    return sample
