"""The adaptive controller: send the learner the prompts whose GRPO group will teach.

A group of G rollouts carries a gradient only when its rewards differ, which happens with probability
1 - p^G - (1-p)^G; and a mixed group teaches only the skills that are still in doubt on that prompt,
not the ones already mastered, and not luck. The controller models a cell x as needing one skill per
knob (a conjunctive item-response model with a floor and a ceiling),

    p(x) = c(x) + (1 - c(x) - slip) * q(x),   q(x) = prod_j sigmoid(theta_j - b_j[x_j])

with theta_j the learner's skill on knob j, b_j non-decreasing along the knob's ladder (an irrelevant
knob ends up with a flat b_j), c(x) the chance of passing by luck and 1 - slip the ceiling. Neither the
floor nor the ceiling is taken as given: c(x) = prior(x) + sum_j f_j[x_j], where prior is the generator's
declared `guess_rate` (zero when none is declared) and the per-knob corrections f_j are refitted every
`floor_every` groups by weighted least squares to the floors the cells' counts imply where skill is
absent (a ridge pulls them to the prior); the slip is fitted online with the skills, and no floor is
allowed above what a cell is seen to pass. A declared guess rate is therefore a prior, not a fact: a
space built by hand with no guess rate, or with a wrong one, still learns that cells low on a knob pass
by luck, because the same skill fails on the cells of that knob where luck is absent.

A cell's value is

    value(x) = P(mixed | p)^2 * sum_j 4 s_j (1 - s_j) prod_{k != j} s_k * progress(x) * (1 + hard_bonus * hardness(x))

the chance of a mixed group (squared: a cell where several skills are in doubt has a low pass rate, and
the square keeps such cells from costing too many all-fail groups), times how many skills sit at their
frontier there, each counted only as far as the other skills the cell needs are present (s_j =
sigmoid(theta_j - b_j[x_j]); the term of skill j is 4 s_j (1 - s_j) prod_{k != j} s_k, so a cell whose
groups are mixed by luck while some skill is far below it scores little, whichever skill the model
believes in doubt), times its measured learning progress. The progress term is the model-free safety net:
each cell keeps a decayed least-squares fit of its groups' pass fraction against time (the absolute
learning progress of ALP-GMM and MAGELLAN, measured as a slope with its standard error). A cell whose
slope is confidently flat (its upper confidence bound well below the best progress measured anywhere)
loses priority in proportion, whatever the model says: a cell whose groups stay mixed by luck, or by
slips on a mastered skill, while its pass rate does not move, yields to cells whose pass rate changes.
Cells with too few or too recent observations keep a factor of 1 (nothing shows they are stuck). The
hardness bonus breaks near-ties towards the harder cells, so the frontier keeps moving up.

The estimate of p combines the shared model, fitted online by one gradient step per group (so cells
never tried get a prediction from their neighbours, and the learner's growth moves theta), with per-cell
Beta counts that decay with a half-life counted in observed groups; the model's prediction is the prior,
worth `prior_strength` rollouts. Each prompt is drawn by Thompson sampling: a pass rate per cell from its
Beta posterior gives P(mixed), the model gives the frontier terms. Cells whose posterior mean predicts a
group of identical rewards with probability above `skip_zero_var` are skipped; when every cell is
skipped, the controller goes to the edge of mastery (the hardest cell that mostly passes; the easiest if
none does).

It starts at the easy edge: skills start at `init_theta` = 1 logit above the easiest value of every knob
and `init_span` logits below the hardest, so the first proposals go to the easiest cells and the
frontier moves up only as they pass.

Freshness: `propose` reads every observation made before it is called; nothing is cached. How fresh
that is depends on the caller: TRL's GRPOTrainer (trainers/) draws the prompts of step t+1 from the
stream before the rewards of step t reach `observe` (with `shuffle_dataset=False` tasks are produced one
generation batch ahead of the rewards that judge them), so there the proposals lag one batch behind;
`benchmarks/curriculum_sim.py --lag 1` measures what that lag costs.

Settings were tuned on the simulated learners of benchmarks/curriculum_sim.py (seeds 0-7).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from taskforge.curricula.base import PASS_THRESHOLD, Controller, p_mixed, register_controller

FLOOR_MAX = 0.95  # a floor above this would leave no room to learn; it also keeps p away from 1


@register_controller
class Adaptive(Controller):
    name = "adaptive"
    defaults = {
        "half_life": 256.0,  # observed groups after which a cell's counts weigh half
        "prior_strength": 4.0,  # pseudo-rollouts the shared model's prediction is worth
        "lr_theta": 0.1,
        "lr_b": 0.05,
        "lr_slip": 0.005,
        "floor_power": 3.0,  # the floor takes the residual where skill is absent: weight (1 - q)^power
        "floor_prior": 16.0,  # rollouts' worth of pull of each floor correction back to the declared prior
        "floor_every": 16,  # observed groups between refits of the floor corrections
        "init_span": 4.0,  # initial logit gap between a knob's easiest and hardest value
        "init_theta": 1.0,  # initial skill, in logits above the easiest value: start at the easy edge
        "hard_bonus": 1.0,
        "skip_zero_var": 0.4,
        "mixed_power": 2.0,  # weight of P(mixed) against the frontier terms
        "teach_others": 1.0,  # weight of the other skills' presence in a skill's frontier term
        "progress_half_life": 512.0,  # observed groups after which a group weighs half in the slope fits
        "progress_z": 1.0,  # the slope's upper confidence bound, in standard errors
        "progress_min": 12.0,  # effective groups a cell needs before it can be called stuck
        "progress_rate": 1e-4,  # slope (pass rate per observed group) below which a trained cell is stuck
        "guess_rate": None,  # optional callable params -> guess rate (a prior); default: the space's
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sp = self.space
        guess: Callable[[dict[str, Any]], float] | None = self.settings["guess_rate"]
        self.prior_floor = (
            np.clip([guess(sp.to_params(sp.cell(c))) for c in range(sp.size)], 0.0, FLOOR_MAX)
            if guess is not None
            else np.clip(sp.guess, 0.0, FLOOR_MAX)
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
        self.f = np.zeros((k, width))  # f[j, i]: floor correction of value i of knob j
        self.slip = 0.0
        self.passes = np.zeros(sp.size)
        self.fails = np.zeros(sp.size)
        self.stamp = np.zeros(sp.size)  # group clock at each cell's last update
        self.clock = 0.0
        # Decayed least-squares sums per cell, pass fraction y against the group clock t, with t measured
        # from the cell's own last update (so the sums stay small): [w, w t, w t^2, w y, w t y].
        self.fit = np.zeros((sp.size, 5))
        self._rows = np.arange(k)[None, :]

    # ---- estimates ------------------------------------------------------------------------------------
    def _skills(self) -> np.ndarray:
        """s[c, j] = sigmoid(theta_j - b_j[x_j]) for every cell."""
        return 1.0 / (1.0 + np.exp(-(self.theta[None, :] - self.b[self._rows, self.space.grid])))

    def floor(self, cells: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The estimated chance of passing each cell by luck: the prior plus the fitted corrections, and
        never above what the cell is seen to pass (an upper confidence bound on its decayed pass rate), so
        that a declared floor the data contradict gives way where the data are."""
        grid = self.space.grid[cells]
        c = self.prior_floor[cells] + self.f[self._rows, grid].sum(axis=-1)
        n = self.passes[cells] + self.fails[cells]
        seen = (self.passes[cells] + 0.5) / (n + 1.0) + 1.0 / np.sqrt(n + 1.0)
        return np.clip(np.minimum(c, seen), 0.0, FLOOR_MAX)

    def _model_p(self, s: np.ndarray) -> np.ndarray:
        c = self.floor()
        return c + np.maximum(1.0 - c - self.slip, 0.0) * s.prod(axis=1)

    def _posterior(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p_model = self._model_p(s)
        w = 0.5 ** ((self.clock - self.stamp) / self.settings["half_life"])
        n0 = self.settings["prior_strength"]
        return n0 * p_model + w * self.passes + 0.05, n0 * (1.0 - p_model) + w * self.fails + 0.05

    def _predict(self, c: int) -> float:
        a, b = self._posterior(self._skills())
        return float(a[c] / (a[c] + b[c]))

    def progress(self) -> np.ndarray:
        """Per cell, in (0, 1]: the upper confidence bound of its learning progress (|slope| of its pass
        fraction per observed group) relative to a reference; 1 where too little is known to call the
        cell stuck. The reference is the best lower bound measured in any cell, or `progress_rate` when
        nothing is confidently moving (then a cell is stuck in absolute terms: its pass rate moved by
        less than progress_rate * progress_half_life, about 0.05, while it was being trained)."""
        decay = 0.5 ** ((self.clock - self.stamp) / self.settings["progress_half_life"])
        w, wt, wtt, wy, wty = (self.fit * decay[:, None]).T
        # Times were stored relative to each cell's last update; shift them to now (t -> t - age).
        age = self.clock - self.stamp
        wt, wtt, wty = wt - age * w, wtt - 2 * age * wt + age * age * w, wty - age * wy
        n = np.maximum(w, 1e-9)
        var_t = np.maximum(wtt / n - (wt / n) ** 2, 0.0)
        ybar = wy / n
        slope = (wty / n - (wt / n) * ybar) / np.maximum(var_t, 1e-12)
        noise = np.clip(ybar * (1.0 - ybar), 0.02, 0.25) / self.group_size  # variance of one group's y
        se = np.sqrt(noise / np.maximum(n * var_t, 1e-12))
        known = (w >= self.settings["progress_min"]) & (var_t > 1.0)
        z = self.settings["progress_z"]
        upper = np.abs(slope) + z * se
        lower = np.where(known, np.abs(slope) - z * se, 0.0)
        ref = max(float(lower.max()), self.settings["progress_rate"])
        return np.where(known, np.clip(upper / ref, 0.0, 1.0), 1.0)

    def _value(self, p: np.ndarray, s: np.ndarray, progress: np.ndarray) -> np.ndarray:
        # P(mixed) from the (sampled) pass rate; the frontier terms from the shared model, which knows
        # which knob holds a cell back (per-cell counts only know the product). A skill is taught by a
        # cell only where the other skills it needs are there too: otherwise its passes are luck. So the
        # term of skill j is 4 s_j (1 - s_j) times the other skills' product (`teach_others` = 1), or
        # that product to a lower power (0: the skills count alone).
        doubt = 4.0 * s * (1.0 - s)
        q = s.prod(axis=-1, keepdims=True)
        others = (q / np.maximum(s, 1e-12)) ** self.settings["teach_others"]
        frontier = (doubt * others).sum(axis=-1)
        return (
            p_mixed(p, self.group_size) ** self.settings["mixed_power"]
            * frontier
            * progress
            * (1.0 + self.settings["hard_bonus"] * self.hardness)
        )

    def scores(self) -> np.ndarray:
        """Value of every cell under the posterior mean (for plots and the run log)."""
        s = self._skills()
        a, b = self._posterior(s)
        return self._value(a / (a + b), s, self.progress())

    # ---- the controller -----------------------------------------------------------------------------
    def _propose(self, m: int) -> np.ndarray:
        if m <= 0:
            return np.zeros(0, dtype=int)
        s = self._skills()
        a, b = self._posterior(s)
        mean = a / (a + b)
        allowed = (
            (1.0 - p_mixed(mean, self.group_size)) <= self.settings["skip_zero_var"]
        ) & self.space.valid
        draws = self._rng.beta(np.broadcast_to(a, (m, a.size)), np.broadcast_to(b, (m, b.size)))
        if allowed.any():
            value = np.where(allowed, self._value(draws, s, self.progress()), -1.0)
        else:
            # Every cell looks saturated: go to the edge of mastery, the hardest cell that passes (all
            # pass: the hardest; all fail: the easiest). The draws only break ties between equals.
            passing = mean >= 0.5
            edge = np.where(passing, self.hardness, -1.0) if passing.any() else -self.hardness
            value = np.where(self.space.valid, edge + 1e-3 * draws, -np.inf)
        return np.argmax(value, axis=1)

    def _observe(self, c: int, rewards: np.ndarray) -> None:
        k = float((rewards > PASS_THRESHOLD).sum())
        n = float(rewards.size)
        # Decay this cell's counts and slope sums to now, then add the group (at t = 0, i.e. now).
        age = self.clock - self.stamp[c]
        w = 0.5 ** (age / self.settings["half_life"])
        self.passes[c] = self.passes[c] * w + k
        self.fails[c] = self.fails[c] * w + (n - k)
        f0, f1, f2, f3, f4 = self.fit[c] * 0.5 ** (age / self.settings["progress_half_life"])
        y = k / n
        self.fit[c] = [f0 + 1.0, f1 - age * f0, f2 - 2 * age * f1 + age * age * f0, f3 + y, f4 - age * f3]
        self.stamp[c] = self.clock
        self.clock += 1.0
        # One gradient step of the binomial log-likelihood of p = c + (1 - c - slip) prod_j s_j.
        idx = self.space.grid[c]
        rows = self._rows[0]
        sj = 1.0 / (1.0 + np.exp(-(self.theta - self.b[rows, idx])))
        q = float(sj.prod())
        floor = float(self.floor(np.array([c]))[0])
        room = max(1.0 - floor - self.slip, 0.0)
        p = min(max(floor + room * q, 1e-6), 1.0 - 1e-6)
        dp = (k / p - (n - k) / (1.0 - p)) / n  # d loglik / d p, per rollout
        dp = float(np.clip(dp, -20.0, 20.0))  # one group at a p near 0 or 1 must not throw the fit
        grad = dp * room * q * (1.0 - sj)  # d loglik / d (theta_j - b_j)
        self.theta += self.settings["lr_theta"] * grad
        # Floor and slip: the floor explains what skill cannot (weight 1 - q), the slip what it should.
        # The slip explains the failures that skill should not have.
        self.slip = float(np.clip(self.slip - self.settings["lr_slip"] * dp * q, 0.0, 0.3))
        if int(self.clock) % int(self.settings["floor_every"]) == 0:
            self._fit_floor()
        for j, i in enumerate(idx):
            row = self.b[j]
            row[i] -= self.settings["lr_b"] * grad[j]
            # Keep the knob's difficulties non-decreasing along its ladder.
            if grad[j] < 0:
                np.maximum.accumulate(row, out=row)
            else:
                row[:i] = np.minimum(row[:i], row[i])

    def _fit_floor(self) -> None:
        """Refit the per-knob floor corrections to the decayed per-cell counts, the skills held fixed.

        Each cell's counts imply a floor: p = c + (1 - c - slip) q gives c = (p - (1 - slip) q) / (1 - q),
        which is well determined only where skill is absent (q small): weight n (1 - q)^floor_power. The
        corrections are the weighted least-squares fit of c = prior + sum_j f_j[x_j] (coordinate descent,
        a ridge of `floor_prior` rollouts toward the declared prior). A few sweeps per refit suffice: the
        fit starts from the previous one.
        """
        w_age = 0.5 ** ((self.clock - self.stamp) / self.settings["half_life"])
        n = w_age * (self.passes + self.fails)
        if n.sum() <= 0:
            return
        rate = (w_age * self.passes + 0.5) / (n + 1.0)
        q = self._skills().prod(axis=1)
        implied = (rate - (1.0 - self.slip) * q) / np.maximum(1.0 - q, 1e-3)
        weight = n * (1.0 - q) ** self.settings["floor_power"]
        grid = self.space.grid
        lam = self.settings["floor_prior"]
        for _ in range(3):
            for j, size in enumerate(self.space.shape):
                others = self.f[self._rows, grid].sum(axis=1) - self.f[j, grid[:, j]]
                target = implied - self.prior_floor - others
                num = np.bincount(grid[:, j], weights=weight * target, minlength=size)
                den = np.bincount(grid[:, j], weights=weight, minlength=size) + lam
                self.f[j, :size] = num / den

    def _state(self) -> dict[str, Any]:
        return {
            "theta": self.theta.tolist(),
            "b": self.b.tolist(),
            "f": self.f.tolist(),
            "slip": self.slip,
            "passes": self.passes.tolist(),
            "fails": self.fails.tolist(),
            "stamp": self.stamp.tolist(),
            "fit": self.fit.tolist(),
            "clock": self.clock,
        }

    def _load(self, state: Mapping[str, Any]) -> None:
        self.theta = np.array(state["theta"], dtype=float)
        self.b = np.array(state["b"], dtype=float)
        self.passes = np.array(state["passes"], dtype=float)
        self.fails = np.array(state["fails"], dtype=float)
        self.stamp = np.array(state["stamp"], dtype=float)
        self.clock = float(state["clock"])
        # States saved before floors, slips and progress were learned: start those afresh.
        self.f = np.array(state["f"], dtype=float) if "f" in state else np.zeros_like(self.b)
        self.slip = float(state.get("slip", 0.0))
        self.fit = np.array(state["fit"], dtype=float) if "fit" in state else np.zeros((self.space.size, 5))
