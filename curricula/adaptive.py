"""The adaptive controller: send the learner the prompts whose GRPO group will teach.

A group of G rollouts carries a gradient only when its rewards differ, which happens with probability
1 - p^G - (1-p)^G; and a mixed group teaches only the skills that are still in doubt on that prompt,
not the ones already mastered, and not luck. The controller models a cell x as needing one skill per
knob (a conjunctive item-response model),

    p(x) = c(x) + (1 - c(x)) * q(x),   q(x) = prod_j sigmoid(theta_j - b_j[x_j])

with c(x) the cell's guess rate (from the generator's `guess_rate`), theta_j the learner's skill on
knob j and b_j non-decreasing along the knob's ladder; an irrelevant knob ends up with a flat b_j. It
scores each cell by

    value(x) = P(mixed | p)^2 * sum_j 4 s_j (1 - s_j) * (1 + hard_bonus * hardness(x)),   s_j = sigmoid(theta_j - b_j[x_j])

the chance of a mixed group (squared: a cell where several skills are in doubt has a low pass rate, and
the square keeps such cells from costing too many all-fail groups) times how many skills sit at their
frontier there (a cell passed only by guessing has every s_j near 0 and scores nothing). The hardness bonus breaks near-ties towards the
harder cells, so the frontier keeps moving up as the learner improves.

The estimate of p combines the shared model, fitted online by one gradient step per group (so cells
never tried get a prediction from their neighbours, and the learner's growth moves theta), with per-cell
Beta counts that decay with a half-life counted in observed groups (stale observations fade instead of
corrupting the estimate); the model's prediction is the prior, worth `prior_strength` rollouts. Each
prompt is drawn by Thompson sampling: a pass rate per cell from its Beta posterior gives P(mixed), the
model gives the frontier terms. Cells whose posterior mean predicts a group of identical rewards with
probability above `skip_zero_var` are skipped; when every cell is skipped, the controller goes to the
edge of mastery (the hardest cell that mostly passes; the easiest if none does).

Settings were tuned on the simulated learners of benchmarks/curriculum_sim.py (seeds 0-7).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from taskforge.curricula.base import PASS_THRESHOLD, Controller, p_mixed, register_controller


@register_controller
class Adaptive(Controller):
    name = "adaptive"
    defaults = {
        "half_life": 256.0,  # observed groups after which a cell's counts weigh half
        "prior_strength": 4.0,  # pseudo-rollouts the shared model's prediction is worth
        "lr_theta": 0.1,
        "lr_b": 0.05,
        "init_span": 4.0,  # initial logit gap between a knob's easiest and hardest value
        "init_theta": 2.0,
        "hard_bonus": 1.0,
        "skip_zero_var": 0.4,
        "mixed_power": 2.0,  # weight of P(mixed) against the frontier terms
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
        self.theta = np.full(k, float(self.settings["init_theta"]))
        # b[j, i]: difficulty of value i of knob j; padded to `width` (pads are never indexed).
        self.b = np.zeros((k, width))
        for j, n in enumerate(sp.shape):
            self.b[j, :n] = np.linspace(0.0, self.settings["init_span"], n)
            self.b[j, n:] = self.b[j, n - 1]
        self.passes = np.zeros(sp.size)
        self.fails = np.zeros(sp.size)
        self.stamp = np.zeros(sp.size)  # group clock at each cell's last update
        self.clock = 0.0
        self._rows = np.arange(k)[None, :]

    # ---- estimates ------------------------------------------------------------------------------------
    def _skills(self) -> np.ndarray:
        """s[c, j] = sigmoid(theta_j - b_j[x_j]) for every cell."""
        return 1.0 / (1.0 + np.exp(-(self.theta[None, :] - self.b[self._rows, self.space.grid])))

    def _posterior(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p_model = self.guess + (1.0 - self.guess) * s.prod(axis=1)
        w = 0.5 ** ((self.clock - self.stamp) / self.settings["half_life"])
        n0 = self.settings["prior_strength"]
        return n0 * p_model + w * self.passes + 0.05, n0 * (1.0 - p_model) + w * self.fails + 0.05

    def _predict(self, c: int) -> float:
        a, b = self._posterior(self._skills())
        return float(a[c] / (a[c] + b[c]))

    def _value(self, p: np.ndarray, s: np.ndarray) -> np.ndarray:
        # P(mixed) from the (sampled) pass rate; the frontier terms from the shared model, which knows
        # which knob holds a cell back (per-cell counts only know the product).
        frontier = (4.0 * s * (1.0 - s)).sum(axis=-1)
        return p_mixed(p, self.group_size) ** self.settings["mixed_power"] * frontier * (1.0 + self.settings["hard_bonus"] * self.hardness)

    def scores(self) -> np.ndarray:
        """Value of every cell under the posterior mean (for plots and the run log)."""
        s = self._skills()
        a, b = self._posterior(s)
        return self._value(a / (a + b), s)

    # ---- the controller -----------------------------------------------------------------------------
    def _propose(self, m: int) -> np.ndarray:
        if m <= 0:
            return np.zeros(0, dtype=int)
        s = self._skills()
        a, b = self._posterior(s)
        mean = a / (a + b)
        allowed = (1.0 - p_mixed(mean, self.group_size)) <= self.settings["skip_zero_var"]
        draws = self._rng.beta(np.broadcast_to(a, (m, a.size)), np.broadcast_to(b, (m, b.size)))
        if allowed.any():
            value = np.where(allowed, self._value(draws, s), -1.0)
        else:
            # Every cell looks saturated: go to the edge of mastery, the hardest cell that passes (all
            # pass: the hardest; all fail: the easiest). The draws only break ties between equals.
            passing = mean >= 0.5
            edge = np.where(passing, self.hardness, -1.0) if passing.any() else -self.hardness
            value = edge + 1e-3 * draws
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
        # One gradient step of the binomial log-likelihood of p = g + (1 - g) prod_j s_j.
        idx = self.space.grid[c]
        sj = 1.0 / (1.0 + np.exp(-(self.theta - self.b[self._rows[0], idx])))
        q = float(sj.prod())
        g = self.guess[c]
        p = min(max(g + (1.0 - g) * q, 1e-6), 1.0 - 1e-6)
        dq = (k / p - (n - k) / (1.0 - p)) * (1.0 - g) / n
        grad = dq * q * (1.0 - sj)  # d loglik / d (theta_j - b_j)
        self.theta += self.settings["lr_theta"] * grad
        for j, i in enumerate(idx):
            row = self.b[j]
            row[i] -= self.settings["lr_b"] * grad[j]
            # Keep the knob's difficulties non-decreasing along its ladder.
            if grad[j] < 0:
                np.maximum.accumulate(row, out=row)
            else:
                row[:i] = np.minimum(row[:i], row[i])

    def _state(self) -> dict[str, Any]:
        return {
            "theta": self.theta.tolist(),
            "b": self.b.tolist(),
            "passes": self.passes.tolist(),
            "fails": self.fails.tolist(),
            "stamp": self.stamp.tolist(),
            "clock": self.clock,
        }

    def _load(self, state: Mapping[str, Any]) -> None:
        self.theta = np.array(state["theta"], dtype=float)
        self.b = np.array(state["b"], dtype=float)
        self.passes = np.array(state["passes"], dtype=float)
        self.fails = np.array(state["fails"], dtype=float)
        self.stamp = np.array(state["stamp"], dtype=float)
        self.clock = float(state["clock"])
