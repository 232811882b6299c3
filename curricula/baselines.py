"""The baseline controllers: uniform, a fixed easy-to-hard schedule, Saturn's threshold rule, AdaRFT.

They exist to be beaten honestly, so each follows its published rule and nothing more.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from taskforge.curricula.base import PASS_THRESHOLD, Controller, EmpiricalMixin, register_controller


@register_controller
class Uniform(EmpiricalMixin, Controller):
    """Every cell equally likely, whatever the learner does."""

    name = "uniform"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_counts(self.space.size)

    def _propose(self, m: int) -> np.ndarray:
        return self._rng.integers(0, self.space.size, size=m)


@register_controller
class Fixed(EmpiricalMixin, Controller):
    """The ladder from easy to hard, `per_level` prompts per level, then the top level forever."""

    name = "fixed"
    defaults = {"per_level": 256}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_counts(self.space.size)

    def level_at(self, prompt_index: int) -> int:
        return min(prompt_index // max(int(self.settings["per_level"]), 1), len(self.space.levels) - 1)

    def _propose(self, m: int) -> np.ndarray:
        return np.array([self.space.levels[self.level_at(self.proposed + i)] for i in range(m)], dtype=int)


@register_controller
class Saturn(EmpiricalMixin, Controller):
    """Saturn's rule: train on the current level; every `check_every` training prompts, evaluate pass@1 on
    `eval_size` held-out tasks of that level (one rollout each, counted in `eval_rollouts`), and advance
    to the next level when it exceeds `epsilon` (strictly).

    The caller runs the evaluation: `eval_request()` lists the cells to evaluate and `observe_eval` takes
    the rewards. With `eval_source="train"` no extra rollouts are spent: the training groups of the level
    since the last check stand in for the held-out set (cheaper, and biased by training on them).
    """

    name = "saturn"
    defaults = {"epsilon": 0.5, "check_every": 256, "eval_size": 32, "eval_source": "heldout"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.settings["eval_source"] not in ("heldout", "train"):
            raise ValueError("saturn eval_source must be 'heldout' or 'train'")
        self._init_counts(self.space.size)
        self.level = 0
        self._since_check = 0  # training prompts observed since the last evaluation
        self._pending = 0  # evaluation rollouts requested and not yet observed
        self._eval_passes: list[float] = []
        self._window: list[float] = []  # eval_source="train": pass rates of this level's groups
        self.history: list[list[float]] = []  # [rollouts so far, level, pass@1] per evaluation

    def _propose(self, m: int) -> np.ndarray:
        return np.full(m, self.space.levels[self.level], dtype=int)

    def _observe(self, c: int, rewards: np.ndarray) -> None:
        self._count(c, rewards)
        self._since_check += 1
        if c == self.space.levels[self.level]:
            self._window.extend((rewards > PASS_THRESHOLD).astype(float).tolist())
        if self.settings["eval_source"] == "train" and self._since_check >= self.settings["check_every"]:
            self._decide(self._window)

    def eval_request(self) -> list[dict[str, Any]]:
        with self._lock:
            if (
                self.settings["eval_source"] != "heldout"
                or self._pending
                or self._since_check < self.settings["check_every"]
            ):
                return []
            self._pending = int(self.settings["eval_size"])
            self._eval_passes = []
            return [self.space.cell(self.space.levels[self.level])] * self._pending

    def observe_eval(self, cell: Mapping[str, Any], rewards: Sequence[float]) -> None:
        with self._lock:
            if not self._pending:
                return
            self.eval_rollouts += len(rewards)
            self._eval_passes.extend(float(r > PASS_THRESHOLD) for r in rewards)
            self._pending = max(self._pending - len(rewards), 0)
            if not self._pending:
                self._decide(self._eval_passes)

    def _decide(self, passes: Sequence[float]) -> None:
        pass1 = float(np.mean(passes)) if len(passes) else 0.0
        self.history.append([self.rollouts + self.eval_rollouts, self.level, pass1])
        if pass1 > self.settings["epsilon"] and self.level < len(self.space.levels) - 1:
            self.level += 1
        self._since_check = 0
        self._window = []

    def _state(self) -> dict[str, Any]:
        return {
            **super()._state(),
            "level": self.level,
            "since_check": self._since_check,
            "pending": self._pending,
            "eval_passes": self._eval_passes,
            "window": self._window,
            "history": self.history,
        }

    def _load(self, state: Mapping[str, Any]) -> None:
        super()._load(state)
        self.level, self._since_check, self._pending = state["level"], state["since_check"], state["pending"]
        self._eval_passes, self._window = list(state["eval_passes"]), list(state["window"])
        self.history = [list(h) for h in state["history"]]


@register_controller
class AdaRFT(EmpiricalMixin, Controller):
    """AdaRFT: a target difficulty T on the space's 0-100 scale, moved after every batch by
    eta * tanh(alpha * (mean reward - beta)); prompts come from the cells nearest T (ties at random).
    A batch is `batch` prompts, by default the size of the last `propose` call."""

    name = "adarft"
    defaults = {"beta": 0.5, "alpha": 2.0, "eta": 50.0, "t0": 0.0, "batch": None}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_counts(self.space.size)
        self.target = float(self.settings["t0"])
        self._batch = int(self.settings["batch"] or 1)
        self._sum = 0.0
        self._n = 0  # rollouts in the current batch
        self._prompts = 0

    def _propose(self, m: int) -> np.ndarray:
        if not self.settings["batch"] and m > 0:
            self._batch = m
        gap = np.abs(self.space.difficulty - self.target)
        nearest = np.flatnonzero(gap <= gap.min() + 1e-9)
        return self._rng.choice(nearest, size=m)

    def _observe(self, c: int, rewards: np.ndarray) -> None:
        self._count(c, rewards)
        self._sum += float(rewards.sum())
        self._n += rewards.size
        self._prompts += 1
        if self._prompts >= self._batch:
            s = self.settings
            step = s["eta"] * math.tanh(s["alpha"] * (self._sum / self._n - s["beta"]))
            self.target = min(max(self.target + step, 0.0), 100.0)
            self._sum, self._n, self._prompts = 0.0, 0, 0

    def _state(self) -> dict[str, Any]:
        return {
            **super()._state(),
            "target": self.target,
            "batch": self._batch,
            "acc": [self._sum, self._n, self._prompts],
        }

    def _load(self, state: Mapping[str, Any]) -> None:
        super()._load(state)
        self.target, self._batch = float(state["target"]), int(state["batch"])
        self._sum, self._n, self._prompts = state["acc"]
