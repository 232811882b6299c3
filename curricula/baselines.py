"""The baseline controllers: uniform, a fixed easy-to-hard schedule, Saturn's threshold rule, AdaRFT, and the
published adaptive samplers MoPPS, SEC and DUMP, re-implemented from their update rules.

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
    `eval_size` held-out tasks of that level (`eval_samples` rollouts each, all counted in
    `eval_rollouts`; pass@1 is the mean over them, as Saturn's eval_k.py computes it from its n samples),
    and advance to the next level of the training ladder when it exceeds `epsilon` (strictly).

    The training ladder, as Saturn runs it:
    - `start`: the first level: a cell ({n: 3, k: 5, l: 13}), its knob values in the space's order
      ([3, 5, 13]), or a position on the ladder (default 0);
    - `move`: a knob name (Saturn: "l") makes the ladder move that knob only, the others fixed at the
      start cell's values; None walks the space's own ladder (which, for SAT, changes n and k too);
    - `holdout`: cells kept off the ladder, by default ("auto") the family's evaluation levels (SAT:
      Saturn's ten benchmark levels), so the benchmark is never trained on; [] keeps every cell;
    - `iterations`: after this many levels trained to epsilon the curriculum stops advancing and stays on
      its last level (Saturn-7B ran 2); None: no cap;
    - `estimate`: on entering a level (the start one included), evaluate before training there, and skip
      a level already above epsilon (Saturn's estimation loop). A skipped level is not an iteration.

    The caller runs the evaluation: `eval_request()` lists the cells (one entry per held-out task, each
    to be sampled `eval_samples` times) and `observe_eval(cell, rewards)` takes each task's rewards.
    `eval_temperature`, `eval_top_p` and `eval_max_tokens` are the sampling protocol for an evaluator
    that asks (Saturn's: 0.6, 0.95). With `eval_source="train"` no extra rollouts are spent: the training
    groups of the level since the last check stand in for the held-out set (cheaper, biased by training
    on them; no estimation step).
    """

    name = "saturn"
    defaults = {
        "epsilon": 0.5,
        "check_every": 256,
        "eval_size": 32,
        "eval_source": "heldout",
        "eval_samples": 1,
        "eval_temperature": 0.6,
        "eval_top_p": 0.95,
        "eval_max_tokens": None,
        "start": None,
        "move": None,
        "holdout": "auto",
        "iterations": None,
        "estimate": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        if s["eval_source"] not in ("heldout", "train"):
            raise ValueError("saturn eval_source must be 'heldout' or 'train'")
        if int(s["eval_samples"]) < 1 or int(s["eval_size"]) < 1:
            raise ValueError("saturn eval_size and eval_samples must be >= 1")
        if s["iterations"] is not None and int(s["iterations"]) < 1:
            raise ValueError("saturn iterations must be >= 1 (or null for no cap)")
        self._init_counts(self.space.size)
        self.ladder, self.level = self._build_ladder()
        self.completed = 0  # levels trained until they passed epsilon
        self.finished = False  # the iteration cap or the ladder's top was passed: no more evaluations
        self._estimating = self._estimation_on()
        self._since_check = 0  # training prompts observed since the last evaluation
        self._pending = 0  # evaluation rollouts requested and not yet observed
        self._eval_passes: list[float] = []
        self._window: list[float] = []  # eval_source="train": pass rates of this level's groups
        self.history: list[list[float]] = []  # [rollouts so far, level, pass@1] per evaluation

    # ---- the ladder ---------------------------------------------------------------------------------
    def _build_ladder(self) -> tuple[list[int], int]:
        s, space = self.settings, self.space
        start = s["start"]
        start_cell = None if start is None or isinstance(start, int) else self._as_cell(start)
        if s["move"] is None:
            ladder = list(space.levels)
        else:
            if s["move"] not in space.names:
                raise ValueError(f"saturn move={s['move']!r} is not a knob of this space {space.describe()}")
            anchor = start_cell if start_cell is not None else space.cell(space.levels[0])
            j = space.names.index(s["move"])
            ladder = [space.index({**anchor, s["move"]: v}) for v in space.values[j]]
            ladder = [c for c in ladder if self._valid(c)]
        held = set(self._holdout())
        if start_cell is not None and space.index(start_cell) in held:
            raise ValueError(f"saturn start {start_cell} is a held-out evaluation level; set holdout: []")
        ladder = [c for c in ladder if c not in held]
        if not ladder:
            raise ValueError("saturn: no training level left on the ladder")
        if start is None:
            return ladder, 0
        if isinstance(start, int):
            if not 0 <= start < len(ladder):
                raise ValueError(f"saturn start={start} is not a ladder position (0..{len(ladder) - 1})")
            return ladder, start
        c = space.index(start_cell)
        if c not in ladder:
            raise ValueError(f"saturn start {start_cell} is not on the training ladder")
        return ladder, ladder.index(c)

    def _as_cell(self, start: Any) -> dict[str, Any]:
        if isinstance(start, Mapping):
            cell = {n: start[n] for n in self.space.names if n in start}
        elif isinstance(start, list | tuple) and len(start) == len(self.space.names):
            cell = dict(zip(self.space.names, start, strict=True))
        else:
            raise ValueError(
                f"saturn start must be a cell, a list of {self.space.names} or an int; got {start!r}"
            )
        self.space.index(cell)  # raises a clear error for a cell outside the space
        return cell

    def _family_class(self) -> Any:
        if not self.space.family:
            return None
        from taskforge.registry import UnknownFamilyError, generator_class

        try:
            return generator_class(self.space.family)
        except UnknownFamilyError:
            return None

    def _holdout(self) -> list[int]:
        spec = self.settings["holdout"]
        if spec == "auto":
            cls = self._family_class()
            spec = list(getattr(cls, "eval_levels", ()) or ())
        out = []
        for cell in spec or ():
            try:
                out.append(self.space.index(self._as_cell(cell)))
            except ValueError:
                continue  # an evaluation level outside this space cannot be trained on anyway
        return out

    def _valid(self, c: int) -> bool:
        """Whether the family can generate a cell (e.g. SAT has no 88 distinct 3-clauses over 5 variables)."""
        cls = self._family_class()
        if cls is None:
            return True
        from taskforge.errors import KnobError

        try:
            gen = cls()
            params = gen.resolve_params(None, self.space.to_params(self.space.cell(c)))
            check = getattr(gen, "check_params", None) or getattr(gen, "_check_params", None)
            if callable(check):
                check(params)
        except (KnobError, ValueError):
            return False
        return True

    def _estimation_on(self) -> bool:
        return bool(self.settings["estimate"]) and self.settings["eval_source"] == "heldout"

    @property
    def current(self) -> int:
        return self.ladder[self.level]

    # ---- proposals and observations -----------------------------------------------------------------
    def _propose(self, m: int) -> np.ndarray:
        return np.full(m, self.current, dtype=int)

    def _observe(self, c: int, rewards: np.ndarray) -> None:
        self._count(c, rewards)
        self._since_check += 1  # every training prompt counts toward the next check, as in Saturn's rule
        if c == self.current:
            self._window.extend((rewards > PASS_THRESHOLD).astype(float).tolist())
        if (
            self.settings["eval_source"] == "train"
            and not self.finished
            and self._since_check >= self.settings["check_every"]
        ):
            self._decide(self._window)

    def eval_request(self) -> list[dict[str, Any]]:
        with self._lock:
            if (
                self.settings["eval_source"] != "heldout"
                or self.finished
                or self._pending
                or (not self._estimating and self._since_check < self.settings["check_every"])
            ):
                return []
            size = int(self.settings["eval_size"])
            self._pending = size * int(self.settings["eval_samples"])
            self._eval_passes = []
            return [self.space.cell(self.current)] * size

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
        estimating, self._estimating = self._estimating, False
        self._since_check = 0
        self._window = []
        if pass1 <= self.settings["epsilon"]:
            return  # train on
        if not estimating:
            self.completed += 1
        cap = self.settings["iterations"]
        if (cap is not None and self.completed >= int(cap)) or self.level >= len(self.ladder) - 1:
            self.finished = True  # Saturn stops here; the stream keeps serving this level
            return
        self.level += 1
        self._estimating = self._estimation_on()

    def _state(self) -> dict[str, Any]:
        return {
            **super()._state(),
            "level": self.level,
            "ladder": self.ladder,
            "completed": self.completed,
            "finished": self.finished,
            "estimating": self._estimating,
            "since_check": self._since_check,
            "pending": self._pending,
            "eval_passes": self._eval_passes,
            "window": self._window,
            "history": self.history,
        }

    def _load(self, state: Mapping[str, Any]) -> None:
        super()._load(state)
        self.level, self._since_check, self._pending = state["level"], state["since_check"], state["pending"]
        self.ladder = [int(c) for c in state.get("ladder", self.ladder)]
        self.completed, self.finished = int(state.get("completed", 0)), bool(state.get("finished", False))
        self._estimating = bool(state.get("estimating", False))
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


def _abs_advantage(rewards: np.ndarray) -> float:
    """Mean |r - mean(r)| of a group: GRPO's advantage magnitude without the std normalisation (Dr.GRPO's
    form; for binary rewards it is 2 p (1 - p), zero for a group of identical rewards)."""
    return float(np.abs(rewards - rewards.mean()).mean())


@register_controller
class MoPPS(EmpiricalMixin, Controller):
    """MoPPS (Qu et al. 2025, model predictive prompt selection): a Beta posterior on each cell's pass
    rate, decayed toward the prior after every update (alpha <- lam alpha + (1 - lam) alpha0 + passes,
    likewise beta); each prompt takes the cell whose Thompson draw is nearest the target pass rate."""

    name = "mopps"
    defaults = {"target": 0.5, "decay": 0.95, "alpha0": 1.0, "beta0": 1.0}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_counts(self.space.size)
        self.alpha = np.full(self.space.size, float(self.settings["alpha0"]))
        self.beta = np.full(self.space.size, float(self.settings["beta0"]))

    def _propose(self, m: int) -> np.ndarray:
        draws = self._rng.beta(
            np.broadcast_to(self.alpha, (m, self.space.size)),
            np.broadcast_to(self.beta, (m, self.space.size)),
        )
        return np.argmin(np.abs(draws - self.settings["target"]), axis=1)

    def _observe(self, c: int, rewards: np.ndarray) -> None:
        self._count(c, rewards)
        k = float((rewards > 0.5).sum())
        lam = self.settings["decay"]
        self.alpha[c] = lam * self.alpha[c] + (1.0 - lam) * self.settings["alpha0"] + k
        self.beta[c] = lam * self.beta[c] + (1.0 - lam) * self.settings["beta0"] + rewards.size - k

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "alpha": self.alpha.tolist(), "beta": self.beta.tolist()}

    def _load(self, state: Mapping[str, Any]) -> None:
        super()._load(state)
        self.alpha, self.beta = np.array(state["alpha"], dtype=float), np.array(state["beta"], dtype=float)


@register_controller
class SEC(EmpiricalMixin, Controller):
    """SEC (Chen et al. 2025, self-evolving curriculum): a non-stationary bandit over cells whose reward is
    the batch's mean absolute advantage (their learning-gain proxy). Q <- lr * reward + (1 - lr) Q per
    observed group of the cell; prompts are drawn from softmax(Q / temperature)."""

    name = "sec"
    defaults = {"lr": 0.5, "temperature": 0.05, "q0": 0.0}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_counts(self.space.size)
        self.q = np.full(self.space.size, float(self.settings["q0"]))

    def _propose(self, m: int) -> np.ndarray:
        z = self.q / self.settings["temperature"]
        w = np.exp(z - z.max())
        return self._rng.choice(self.space.size, size=m, p=w / w.sum())

    def _observe(self, c: int, rewards: np.ndarray) -> None:
        self._count(c, rewards)
        self.q[c] += self.settings["lr"] * (_abs_advantage(rewards) - self.q[c])

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "q": self.q.tolist()}

    def _load(self, state: Mapping[str, Any]) -> None:
        super()._load(state)
        self.q = np.array(state["q"], dtype=float)


@register_controller
class DUMP(EmpiricalMixin, Controller):
    """DUMP (Wang et al. 2025, distribution-level curriculum): each cell's learnability is the mean absolute
    advantage over its last `window` groups; its UCB adds c * sqrt(2 ln N / n) (N groups in all, n of the
    cell; a cell never tried scores infinity); prompts are drawn from softmax(UCB / temperature)."""

    name = "dump"
    defaults = {"window": 16, "c": 0.1, "temperature": 0.02}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_counts(self.space.size)
        self.recent: list[list[float]] = [[] for _ in range(self.space.size)]
        self.n = np.zeros(self.space.size)

    def ucb(self) -> np.ndarray:
        mean = np.array([np.mean(r) if r else 0.0 for r in self.recent])
        total = max(self.n.sum(), 1.0)
        ratio = np.divide(2.0 * np.log(total), self.n, out=np.full_like(self.n, np.inf), where=self.n > 0)
        return mean + self.settings["c"] * np.sqrt(ratio)

    def _propose(self, m: int) -> np.ndarray:
        u = self.ucb()
        untried = np.flatnonzero(np.isinf(u))
        if untried.size:  # every cell once before any is repeated
            return self._rng.choice(untried, size=m, replace=untried.size < m)
        z = u / self.settings["temperature"]
        w = np.exp(z - z.max())
        return self._rng.choice(self.space.size, size=m, p=w / w.sum())

    def _observe(self, c: int, rewards: np.ndarray) -> None:
        self._count(c, rewards)
        self.n[c] += 1
        self.recent[c].append(_abs_advantage(rewards))
        del self.recent[c][: -int(self.settings["window"])]

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "recent": self.recent, "n": self.n.tolist()}

    def _load(self, state: Mapping[str, Any]) -> None:
        super()._load(state)
        self.recent = [list(r) for r in state["recent"]]
        self.n = np.array(state["n"], dtype=float)
