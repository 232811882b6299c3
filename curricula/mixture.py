"""A Mixture: one controller per family, and weights that share each batch among the families.

Weights are fixed (`weights={"sat": 2, "arithmetic": 1}`) or adaptive (`weights="adaptive"`): each
family's share follows its recent learning signal, an exponential average of how often its groups were
mixed (not all-pass, not all-fail), with a floor so that no family is starved of the observations that
would show it became useful again.

Shares are honoured across calls, whatever the batch size: each family earns its weight in credit per
prompt and the family with the most credit takes the prompt (smooth weighted round-robin, the deficit
round-robin of packet schedulers). Rounding each `propose(m)` on its own would starve a 1-in-3 family
when m = 1 and give 50/50 for 2:1 when m = 2; carried credit keeps every family within one prompt of
its exact share at every point of the stream.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from taskforge.curricula.base import PASS_THRESHOLD, Controller


class Mixture:
    def __init__(
        self,
        controllers: Mapping[str, Controller],
        weights: Mapping[str, float] | str | None = None,
        *,
        seed: int = 0,
        floor: float = 0.1,
        memory: float = 0.05,
    ) -> None:
        if not controllers:
            raise ValueError("a Mixture needs at least one family")
        self.controllers = dict(controllers)
        self.families = list(self.controllers)
        self.adaptive = weights == "adaptive"
        if isinstance(weights, str) and not self.adaptive:
            raise ValueError(f"weights must be a mapping, None or 'adaptive', got {weights!r}")
        fixed = {f: 1.0 for f in self.families} if weights is None or self.adaptive else dict(weights)
        missing = set(self.families) - set(fixed)
        if missing or any(w < 0 for w in fixed.values()) or sum(fixed.values()) <= 0:
            raise ValueError(f"weights need one non-negative value per family {self.families}, got {fixed}")
        self.base_weights = np.array([float(fixed[f]) for f in self.families])
        self.signal = np.full(len(self.families), 0.5)  # EMA of the mixed-group rate per family
        self.credit = np.zeros(len(self.families))  # shares earned and not yet spent, carried across calls
        self.floor = float(floor)
        self.memory = float(memory)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()

    @property
    def group_size(self) -> int:
        return next(iter(self.controllers.values())).group_size

    def weights(self) -> dict[str, float]:
        """The current share of each family (sums to 1)."""
        with self._lock:
            w = self.base_weights * (np.maximum(self.signal, self.floor) if self.adaptive else 1.0)
            w = w / w.sum()
            return dict(zip(self.families, w.tolist(), strict=True))

    def propose(self, m: int) -> list[tuple[str, dict[str, Any]]]:
        """(family, cell) for the next `m` prompts: families by carried credit, order shuffled."""
        with self._lock:
            w = np.array(list(self.weights().values()))
            counts = np.zeros(len(w), dtype=int)
            for _ in range(max(int(m), 0)):
                self.credit += w
                # Ties go to the first family; the credit carried over breaks them differently next time.
                i = int(np.argmax(self.credit))
                self.credit[i] -= 1.0
                counts[i] += 1
            out: list[tuple[str, dict[str, Any]]] = []
            for f, n in zip(self.families, counts, strict=True):
                out.extend((f, cell) for cell in self.controllers[f].propose(int(n)))
            perm = self._rng.permutation(len(out))
            return [out[i] for i in perm]

    def observe(self, family: str, cell: Mapping[str, Any], rewards: Sequence[float]) -> None:
        with self._lock:
            self.controllers[family].observe(cell, rewards)
            r = np.asarray(list(rewards), dtype=float) > PASS_THRESHOLD
            mixed = float(r.size > 0 and 0 < r.sum() < r.size)
            i = self.families.index(family)
            self.signal[i] += self.memory * (mixed - self.signal[i])

    def predict(self, family: str, cell: Mapping[str, Any]) -> dict[str, float]:
        return self.controllers[family].predict(cell)

    def state_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "controllers": {f: c.state_dict() for f, c in self.controllers.items()},
                "signal": self.signal.tolist(),
                "credit": self.credit.tolist(),
                "rng": self._rng.bit_generator.state,
            }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        with self._lock:
            for f, c in self.controllers.items():
                c.load_state_dict(state["controllers"][f])
            self.signal = np.array(state["signal"], dtype=float)
            # States saved before credit was carried have none: start from zero credit.
            self.credit = np.array(state.get("credit", np.zeros(len(self.families))), dtype=float)
            self._rng.bit_generator.state = state["rng"]
