"""Held-out evaluation during training: a fixed set of test-split tasks, pass@1 per level, on the live model.

    heldout = HeldOutSet.build("arithmetic", levels=[0, 1, 2, 3], per_level=64, seed=0)
    scores = heldout.evaluate(model, tokenizer)       # {"L0": 0.67, "L1": 0.44, ..., "mean": 0.21}
    callback = heldout.callback(every=10, on_result=print)   # a transformers TrainerCallback

The set is drawn once from the test split (disjoint from training tasks by construction) and never
changes during a run, so successive evaluations measure the model, not the draw. Decoding is greedy
(one completion per task), so pass@1 here is deterministic for given weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from taskforge.api import generate
from taskforge.registry import get_generator
from taskforge.task import Task


@dataclass
class HeldOutSet:
    family: str
    levels: list[int]
    tasks: list[list[Task]]  # per level
    max_new_tokens: int = 32

    @classmethod
    def build(
        cls, family: str, levels: Sequence[int], per_level: int, seed: int = 0, max_new_tokens: int = 32
    ) -> HeldOutSet:
        """Up to `per_level` distinct test-split tasks of each ladder level, drawn with `seed`. A level with
        few distinct problems (1x1-digit multiplication has 81, about 5 of them in the test split) gives
        fewer: repeating them would only weight those few more."""
        tasks = []
        for lv in levels:
            seen: dict[str, Task] = {}
            for task in generate(family, per_level * 20, level=lv, seed=seed, split="test"):
                seen.setdefault(task.id, task)
                if len(seen) == per_level:
                    break
            tasks.append(list(seen.values()))
        return cls(family, list(levels), tasks, max_new_tokens)

    def evaluate(self, model: Any, tokenizer: Any, batch_size: int = 64) -> dict[str, float]:
        """Greedy pass@1 per level ("L<i>") and over the whole set ("mean": every task counts once)."""
        import torch

        gen = get_generator(self.family)
        was_training = model.training
        model.eval()
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"  # decoder-only generation pads on the left
        out: dict[str, float] = {}
        passed = 0
        try:
            for level, tasks in zip(self.levels, self.tasks, strict=True):
                texts = [
                    tokenizer.apply_chat_template(t.messages, tokenize=False, add_generation_prompt=True)
                    for t in tasks
                ]
                completions: list[str] = []
                for i in range(0, len(texts), batch_size):
                    enc = tokenizer(texts[i : i + batch_size], return_tensors="pt", padding=True).to(
                        model.device
                    )
                    with torch.no_grad():
                        ids = model.generate(
                            **enc,
                            max_new_tokens=self.max_new_tokens,
                            do_sample=False,
                            pad_token_id=tokenizer.pad_token_id,
                        )
                    new = ids[:, enc["input_ids"].shape[1] :]
                    completions += tokenizer.batch_decode(new, skip_special_tokens=True)
                verdicts = gen.verify_many(tasks, completions)
                out[f"L{level}"] = sum(v.passed for v in verdicts) / max(len(verdicts), 1)
                passed += sum(v.passed for v in verdicts)
        finally:
            tokenizer.padding_side = side
            model.train(was_training)
        out["mean"] = passed / max(sum(len(t) for t in self.tasks), 1)
        return out

    def callback(self, every: int, on_result: Callable[[int, dict[str, float]], None]) -> Any:
        """A TrainerCallback that evaluates at step 0 and every `every` optimizer steps (and at the end),
        calling `on_result(step, scores)` on the main process."""
        from transformers import TrainerCallback

        heldout = self

        class HeldOutCallback(TrainerCallback):
            def __init__(self) -> None:
                self.done: set[int] = set()

            def _run(self, state: Any, kw: dict[str, Any]) -> None:
                if state.global_step in self.done or not state.is_world_process_zero:
                    return
                self.done.add(state.global_step)
                model, tok = kw["model"], kw.get("processing_class") or kw.get("tokenizer")
                on_result(state.global_step, heldout.evaluate(model, tok))

            def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                self._run(state, kw)

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if state.global_step % every == 0:
                    self._run(state, kw)

            def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                self._run(state, kw)

        return HeldOutCallback()
