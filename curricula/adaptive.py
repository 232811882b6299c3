"""The adaptive controller: send the learner the prompts whose GRPO group will teach.

A group of G rollouts carries a gradient only when its rewards differ, which happens with probability
1 - p^G - (1-p)^G; and a mixed group teaches a skill only when the passes come from skill rather than luck.
So for each cell x the controller estimates the pass rate p(x) and scores

    value(x) = P(mixed | p) * 4 q (1 - q) * (1 + hard_bonus * hardness(x)),   p = c + (1 - c) q

where c(x) is the cell's guess rate (from the generator) and q the skill part of the pass rate. The
hardness bonus breaks ties between equally informative cells towards the hardest ones, so the frontier
keeps moving up as the learner improves.

The estimate of p combines:
- a shared item-response model over the knobs, logit q = theta - sum_j b_j[x_j], with each knob's
  difficulties b_j kept non-decreasing along its ladder and fitted online by one gradient step per group,
  so that cells never tried get a prediction from their neighbours and the learner's growth moves theta;
- per-cell Beta counts that decay with a half-life counted in observed groups, so stale observations
  fade instead of corrupting the current estimate; the model's prediction acts as the prior
  (`prior_strength` pseudo-rollouts).
Each prompt is drawn by Thompson sampling: a pass rate per cell from its Beta posterior, then the best
cell under `value`; cells whose posterior mean predicts a group of identical rewards with probability
above `skip_zero_var` are skipped unless nothing else is left.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from taskforge.curricula.base import PASS_THRESHOLD, Controller, p_mixed, register_controller


def teaching_value(p: np.ndarray, guess: np.ndarray, group_size: int) -> np.ndarray:
    """Expected teaching signal of a group at pass rate p with guess rate c (no hardness bonus)."""
    q = np.clip((p - guess) / np.maximum(1.0 - guess, 1e-9), 0.0, 1.0)
    return p_mixed(p, group_size) * 4.0 * q * (1.0 - q)


@register_controller
class Adaptive(Controller):
    name = "adaptive"
    defaults = {
        "half_life": 64.0,  # observed groups after which a cell's counts weigh half
        "prior_strength": 4.0,  # pseudo-rollouts the shared model's prediction is worth
        "lr_theta": 0.08,
        "lr_b": 0.03,
        "init_span": 6.0,  # initial logit gap between the easiest and the hardest cell
        "init_theta": 2.0,
        "hard_bonus": 1.0,
        "skip_zero_var": 0.9,
        "guess_rate": None,  # optional callable params -> guess rate; default: the space's
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sp = self.space
        guess: Callable[[dict[str, Any]], float] | None = self.settings["guess_rate"]
        self.guess = (
            np.clip([guess(sp.to_params(sp.cell(c))) for c in range(sp.size)], 0.0, 0.99)
            if guess is not None
            else sp.guess.copy()
        )
        self.hardness = sp.pos.mean(axis=1)
        k = len(sp.shape)
        width = max(sp.shape)
        self.theta = float(self.settings["init_theta"])
        # b[j, i]: difficulty of value i of knob j; padded to `width` (pads are never indexed).
        self.b = np.zeros((k, width))
        for j, n in enumerate(sp.shape):
            self.b[j, :n] = np.linspace(0.0, self.settings["init_span"] / k, n)
            self.b[j, n:] = self.b[j, n - 1]
        self.passes = np.zeros(sp.size)
        self.fails = np.zeros(sp.size)
        self.stamp = np.zeros(sp.size)  # group clock at each cell's last update
        self.clock = 0.0
        self._knob_index = [sp.grid[:, j] for j in range(k)]

    # ---- estimates ------------------------------------------------------------------------------------
    def _model_q(self) -> np.ndarray:
        eta = self.theta - sum(self.b[j, self._knob_index[j]] for j in range(len(self._knob_index)))
        return 1.0 / (1.0 + np.exp(-eta))

    def _posterior(self) -> tuple[np.ndarray, np.ndarray]:
        p_model = self.guess + (1.0 - self.guess) * self._model_q()
        w = 0.5 ** ((self.clock - self.stamp) / self.settings["half_life"])
        n0 = self.settings["prior_strength"]
        return n0 * p_model + w * self.passes + 0.05, n0 * (1.0 - p_model) + w * self.fails + 0.05

    def _predict(self, c: int) -> float:
        a, b = self._posterior()
        return float(a[c] / (a[c] + b[c]))

    def scores(self) -> np.ndarray:
        """Value of every cell under the posterior mean (for plots and the run log)."""
        a, b = self._posterior()
        return teaching_value(a / (a + b), self.guess, self.group_size) * (1.0 + self.settings["hard_bonus"] * self.hardness)

    # ---- the controller -----------------------------------------------------------------------------
    def _propose(self, m: int) -> np.ndarray:
        if m <= 0:
            return np.zeros(0, dtype=int)
        a, b = self._posterior()
        mean = a / (a + b)
        allowed = (1.0 - p_mixed(mean, self.group_size)) <= self.settings["skip_zero_var"]
        bonus = 1.0 + self.settings["hard_bonus"] * self.hardness
        draws = self._rng.beta(np.broadcast_to(a, (m, a.size)), np.broadcast_to(b, (m, b.size)))
        value = teaching_value(draws, self.guess, self.group_size) * bonus
        if allowed.any():
            value = np.where(allowed, value, -1.0)
        return np.argmax(value, axis=1)

    def _observe(self, c: int, rewards: np.ndarray) -> None:
        k = float((rewards > PASS_THRESHOLD).sum())
        n = float(rewards.size)
        # Decay this cell's counts to now, then add the group.
        w = 0.5 ** ((self.clock - self.stamp[c]) / self.settings["half_life"])
        self.passes[c] = self.passes[c] * w + k
        self.fails[c] = self.fails[c] * w + (n - k)
        self.stamp[c] = self.clock
        self.clock += 1.0
        # One gradient step of the binomial log-likelihood of p = g + (1 - g) sigmoid(eta) in eta.
        idx = self.space.grid[c]
        eta = self.theta - sum(self.b[j, i] for j, i in enumerate(idx))
        q = 1.0 / (1.0 + np.exp(-eta))
        g = self.guess[c]
        p = min(max(g + (1.0 - g) * q, 1e-6), 1.0 - 1e-6)
        grad = (k / p - (n - k) / (1.0 - p)) * (1.0 - g) * q * (1.0 - q) / n
        self.theta += self.settings["lr_theta"] * grad
        for j, i in enumerate(idx):
            row = self.b[j]
            row[i] -= self.settings["lr_b"] * grad
            # Keep the knob's difficulties non-decreasing along its ladder.
            if grad < 0:
                np.maximum.accumulate(row, out=row)
            else:
                row[:i] = np.minimum(row[:i], row[i])

    def _state(self) -> dict[str, Any]:
        return {
            "theta": self.theta,
            "b": self.b.tolist(),
            "passes": self.passes.tolist(),
            "fails": self.fails.tolist(),
            "stamp": self.stamp.tolist(),
            "clock": self.clock,
        }

    def _load(self, state: Mapping[str, Any]) -> None:
        self.theta = float(state["theta"])
        self.b = np.array(state["b"], dtype=float)
        self.passes = np.array(state["passes"], dtype=float)
        self.fails = np.array(state["fails"], dtype=float)
        self.stamp = np.array(state["stamp"], dtype=float)
        self.clock = float(state["clock"])
