"""The controller contract, the registry behind `make_controller`, and the group-signal arithmetic.

A controller proposes cells of a KnobSpace and observes the rewards of each prompt's group:

    ctrl = make_controller("adaptive", space=space, group_size=8, seed=0)
    cells = ctrl.propose(16)                 # one {knob: value} per prompt of the next batch
    ctrl.observe(cells[0], [1.0, 0.0, ...])  # one call per prompt: the rewards of its group
    ctrl.load_state_dict(json.loads(json.dumps(ctrl.state_dict())))   # exact restore

Every public method takes the controller's lock, so a trainer's reward thread and a prefetching stream
can share one controller.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from taskforge.curricula.space import KnobSpace
from taskforge.errors import ConfigError

PASS_THRESHOLD = 0.5  # a reward above this counts as a pass (rewards are 1.0 / 0.0 unless partial credit)


def p_mixed(p: np.ndarray | float, group_size: int) -> np.ndarray | float:
    """Probability that a group of `group_size` rollouts has both passes and fails: 1 - p^G - (1-p)^G."""
    p = np.clip(p, 0.0, 1.0)
    return 1.0 - p**group_size - (1.0 - p) ** group_size


class Controller:
    """Base class. Subclasses set `name`, `defaults` and implement `_propose` / `_observe` / `_state`."""

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, space: KnobSpace, group_size: int = 8, seed: int = 0, **settings: Any) -> None:
        unknown = set(settings) - set(self.defaults)
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "(none)"
            raise ConfigError(f"controller {self.name!r} has no setting {sorted(unknown)}; valid: {valid}")
        if group_size < 1:
            raise ConfigError(f"group_size must be >= 1, got {group_size}")
        self.space = space
        self.group_size = int(group_size)
        self.seed = int(seed)
        self.settings = {**self.defaults, **settings}
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()
        self.proposed = 0  # prompts proposed
        self.observed = 0  # prompts observed (groups)
        self.rollouts = 0  # training rollouts observed
        self.eval_rollouts = 0  # rollouts spent on evaluation (saturn); they count toward any budget

    # ---- public API (locked) ----------------------------------------------------------------------
    def propose(self, m: int) -> list[dict[str, Any]]:
        """Cells for the next `m` prompts."""
        return [self.space.cell(int(i)) for i in self.propose_index(m)]

    def propose_index(self, m: int) -> np.ndarray:
        """Like `propose`, as flat cell indices of the space (what simulators and logs use)."""
        with self._lock:
            idx = self.space.snap[np.asarray(self._propose(int(m)), dtype=int)]
            self.proposed += len(idx)
            return idx

    def observe(self, cell: Mapping[str, Any] | int, rewards: Sequence[float]) -> None:
        """The rewards of one prompt's group (1.0 = pass)."""
        r = np.asarray(list(rewards), dtype=float)
        if r.size == 0:
            return
        with self._lock:
            c = int(cell) if isinstance(cell, int | np.integer) else self.space.index(cell)
            self.observed += 1
            self.rollouts += r.size
            self._observe(c, r)

    def predict(self, cell: Mapping[str, Any]) -> dict[str, float]:
        """The controller's belief about a cell: pass rate `p` and the chance `p_zero_var` of a group of
        identical rewards. Baselines that keep no estimate return the empirical rate seen so far."""
        with self._lock:
            p = float(self._predict(self.space.index(cell)))
            return {"p": p, "p_zero_var": float(1.0 - p_mixed(p, self.group_size))}

    def eval_request(self) -> list[dict[str, Any]]:
        """Held-out cells the controller wants evaluated now (one rollout each), or [] (only saturn)."""
        return []

    def observe_eval(self, cell: Mapping[str, Any], rewards: Sequence[float]) -> None:
        """Results of an evaluation requested by `eval_request`."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; `load_state_dict` of it makes later proposals identical."""
        with self._lock:
            return {
                "name": self.name,
                "group_size": self.group_size,
                "seed": self.seed,
                "settings": _jsonable(self.settings),
                "rng": self._rng.bit_generator.state,
                "counters": [self.proposed, self.observed, self.rollouts, self.eval_rollouts],
                "shape": list(self.space.shape),
                "state": self._state(),
            }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        with self._lock:
            if state.get("name") != self.name:
                raise ValueError(f"state of controller {state.get('name')!r} given to {self.name!r}")
            if list(state.get("shape", [])) != list(self.space.shape):
                raise ValueError(
                    f"state for a space of shape {state.get('shape')}, this one is {list(self.space.shape)}"
                )
            self.seed = int(state["seed"])
            self._rng.bit_generator.state = state["rng"]
            self.proposed, self.observed, self.rollouts, self.eval_rollouts = state["counters"]
            self._load(state["state"])

    # ---- to implement -----------------------------------------------------------------------------
    def _propose(self, m: int) -> np.ndarray:
        raise NotImplementedError

    def _observe(self, c: int, rewards: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, c: int) -> float:
        return 0.5

    def _state(self) -> dict[str, Any]:
        return {}

    def _load(self, state: Mapping[str, Any]) -> None:
        pass


class EmpiricalMixin:
    """Per-cell pass/rollout counts, for baselines that only need `predict` for the run log."""

    def _init_counts(self, size: int) -> None:
        self._passes = np.zeros(size)
        self._tries = np.zeros(size)

    def _count(self, c: int, rewards: np.ndarray) -> None:
        self._passes[c] += float((rewards > PASS_THRESHOLD).sum())
        self._tries[c] += rewards.size

    def _predict(self, c: int) -> float:
        return float((self._passes[c] + 0.5) / (self._tries[c] + 1.0))

    def _observe(self, c: int, rewards: np.ndarray) -> None:
        self._count(c, rewards)

    def _state(self) -> dict[str, Any]:
        return {"passes": self._passes.tolist(), "tries": self._tries.tolist()}

    def _load(self, state: Mapping[str, Any]) -> None:
        self._passes, self._tries = np.array(state["passes"]), np.array(state["tries"])


CONTROLLERS: dict[str, type[Controller]] = {}


def register_controller(cls: type[Controller]) -> type[Controller]:
    CONTROLLERS[cls.name] = cls
    return cls


def make_controller(
    name: str, space: KnobSpace, group_size: int = 8, seed: int = 0, **settings: Any
) -> Controller:
    """A controller by name: uniform, fixed, saturn, adarft, mopps, sec, dump, adaptive (or a plugin's)."""
    try:
        cls = CONTROLLERS[name]
    except KeyError:
        raise ConfigError(f"unknown controller {name!r}; valid: {', '.join(sorted(CONTROLLERS))}") from None
    return cls(space, group_size=group_size, seed=seed, **settings)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return repr(obj)  # callables and the like: recorded for the reader, not restored
