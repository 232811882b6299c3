"""GRESO: skip prompts of a fixed dataset before rollout when they keep giving uninformative groups.

From "Act Only When It Pays: Efficient Reinforcement Learning for LLM Reasoning via Selective Rollouts"
(Zheng et al., 2025). A GRPO group whose G rewards are all equal (all correct, or all wrong) has zero
advantage and teaches nothing, and a prompt that gave such a group is likely to give one again. The rule,
per prompt i, as we implement it:

    z_i      = its current run of consecutive zero-variance groups (reset by a mixed group)
    kind_i   = easy if its last group was all correct, hard if all wrong
    P(roll out prompt i) = p_kind ** z_i            (1 for a prompt never seen or last mixed)

so the skip probability 1 - p ** z grows with the run, and exploration keeps retrying every prompt. The
exploration rates p_easy and p_hard adapt (GRESO's adaptive exploration): after every `adapt_every`
observed groups, p_kind moves by `step` down when the share of zero-variance groups of that kind among
the rolled-out prompts exceeds `target`, up otherwise, within [p_min, 1].

It is the fixed-dataset counterpart of the adaptive controller (which skips cells predicted to give
all-equal groups): a `datasets.IterableDataset` over a fixed list of tasks, walked epoch by epoch in a
seeded order, fed by the reward function's group outcomes through `observe(task_id, rewards)` (the same
hook as TaskStream), so it plugs into TRL's GRPOTrainer the way the stream does. The run log gets a
`greso` record every `adapt_every` groups: skip rate, predicted vs observed zero-variance share, the
exploration rates. The prediction for a rolled-out prompt is the empirical P(zero-var | it was zero-var
last time) or P(zero-var | it was mixed / unseen), counted over the run; it rides in the handed-out
task's `meta["predicted_zero_var"]` (as the stream's does), so the trainer's per-step metrics compare it
with the zero-variance share it observes.

In `taskforge train` (the `dataset:` and `greso:` keys) the filter is the trainer's task source in place
of the stream: it has the stream's interface (`observe(..., step=)`, `log_record`, `state_dict` /
`load_state_dict(replay=)`, `observed`, `close`), and without `greso:` it runs with exploration fixed at 1,
which is plain epochs over the dataset.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from taskforge.curricula.base import PASS_THRESHOLD
from taskforge.io import load_tasks
from taskforge.task import Task

KINDS = ("easy", "hard")
# The filter's settings and defaults: the `greso:` keys of the training YAML (besides `enabled`).
DEFAULTS: dict[str, float] = {"p_start": 0.5, "p_min": 0.05, "step": 0.01, "target": 0.25, "adapt_every": 64}


def check_settings(p_start: float, p_min: float, step: float, target: float, adapt_every: int) -> None:
    """ValueError (one line, naming the setting, its value and what is valid) for settings the rule cannot
    use; a wrong type is named as such rather than surfacing as a comparison error."""
    for name, value in (("p_start", p_start), ("p_min", p_min), ("step", step), ("target", target)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
    if isinstance(adapt_every, bool) or not isinstance(adapt_every, int):
        raise ValueError(f"adapt_every must be an integer >= 1 (groups), got {adapt_every!r}")
    if not 0 < p_start <= 1:
        raise ValueError(f"p_start must be in (0, 1], got {p_start}")
    if not 0 < p_min <= p_start:
        raise ValueError(f"p_min must be in (0, p_start] = (0, {p_start}], got {p_min}")
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    if not 0 <= target < 1:
        raise ValueError(f"target must be in [0, 1), got {target}")
    if adapt_every < 1:
        raise ValueError(f"adapt_every must be an integer >= 1 (groups), got {adapt_every}")


class GresoFilter:
    def __init__(
        self,
        tasks: Any,
        *,
        seed: int = 0,
        p_start: float = 0.5,
        p_min: float = 0.05,
        step: float = 0.01,
        target: float = 0.25,
        adapt_every: int = 64,
        log_path: str | Path | None = None,
    ) -> None:
        """`tasks`: Tasks, task dicts, a `datasets.Dataset` of task rows, or a tasks file (JSONL/Parquet) or
        folder of them (an exported benchmark: every file, by name)."""
        self.tasks = load_tasks(tasks)
        if not self.tasks:
            raise ValueError("GRESO needs a non-empty dataset")
        check_settings(p_start, p_min, step, target, adapt_every)
        self.index = {t.id: i for i, t in enumerate(self.tasks)}
        self.seed, self.p_min, self.step, self.target, self.adapt_every = (
            int(seed),
            p_min,
            step,
            target,
            adapt_every,
        )
        self.p = {k: float(p_start) for k in KINDS}
        n = len(self.tasks)
        self.run = np.zeros(n, np.int64)  # consecutive zero-variance groups
        self.kind = np.zeros(n, np.int8)  # 0 mixed/unseen, 1 easy (all correct), 2 hard (all wrong)
        self.epoch, self.pos = 0, 0
        self.considered = self.skipped = self.observed = 0
        self.transitions = np.ones((2, 2), np.int64)  # [last zero-var?][now zero-var?], Laplace prior
        # Handed out and awaiting their group, in hand-out order: (task id, epoch, predicted zero-var).
        self._pending: deque[tuple[str, int, float]] = deque()
        self._replay: deque[tuple[str, int, float]] = deque()  # handed out again first after a resume
        self._window: dict[str, Any] = self._fresh_window()
        self._lock = threading.RLock()
        self.log_path = Path(log_path) if log_path is not None else None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)

    @classmethod
    def plain(cls, tasks: Any, *, seed: int = 0, log_path: str | Path | None = None) -> GresoFilter:
        """Exploration fixed at 1: never skips, so plain seeded epochs over the dataset (GRESO off)."""
        return cls(tasks, seed=seed, p_start=1.0, p_min=1.0, log_path=log_path)

    # ---- selection ---------------------------------------------------------------------------------
    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.tasks))

    def select_probability(self, i: int) -> float:
        z = int(self.run[i])
        return 1.0 if z == 0 else self.p[KINDS[self.kind[i] - 1]] ** z

    def __iter__(self) -> Iterator[Task]:
        return self

    def __next__(self) -> Task:
        with self._lock:
            if self._replay:
                task_id, epoch, predicted = self._replay.popleft()
                return self._hand_out(self.index[task_id], epoch, predicted)
            while True:
                order = self._order(self.epoch)
                if self.pos >= len(order):
                    self.epoch, self.pos = self.epoch + 1, 0
                    continue
                i = int(order[self.pos])
                # One uniform per (seed, epoch, position): the same choices in any process, after a resume.
                u = np.random.default_rng([self.seed, self.epoch, self.pos, 1]).random()
                self.pos += 1
                self.considered += 1
                self._window["considered"] += 1
                if u >= self.select_probability(i):
                    self.skipped += 1
                    self._window["skipped"] += 1
                    continue
                return self._hand_out(i, self.epoch, self.predict_zero_var(i))

    def _hand_out(self, i: int, epoch: int, predicted: float) -> Task:
        task = self.tasks[i]
        self._pending.append((task.id, epoch, predicted))
        # The prediction travels with the task (as the stream's does) for the trainer's zero-var metrics;
        # the epoch lets a surface form be chosen per pass over the dataset. The id is unchanged.
        meta = {**task.meta, "predicted_zero_var": round(predicted, 6), "dataset_epoch": epoch}
        return Task(**{**task.to_dict(), "meta": meta})

    def predict_zero_var(self, i: int) -> float:
        t = self.transitions[int(self.run[i] > 0)]
        return float(t[1] / t.sum())

    # ---- feedback ----------------------------------------------------------------------------------
    def observe(
        self, task: Task | Mapping[str, Any] | str, rewards: Sequence[float], *, step: int | None = None
    ) -> bool:
        """One prompt's group; False (and nothing changes) for a task not handed out or already observed.
        `step` (the trainer's) goes to the run log."""
        task_id = (
            task.id if isinstance(task, Task) else task["id"] if isinstance(task, Mapping) else str(task)
        )
        rewards = [float(r) for r in rewards]
        with self._lock:
            i = self.index.get(task_id)
            k = next((k for k, p in enumerate(self._pending) if p[0] == task_id), None)
            if i is None or k is None:
                return False
            _, epoch, predicted = self._pending[k]
            del self._pending[k]
            self.observed += 1
            passes = sum(float(r) > PASS_THRESHOLD for r in rewards)
            zero_var = len(set(float(r) for r in rewards)) == 1
            self.transitions[int(self.run[i] > 0), int(zero_var)] += 1
            if zero_var:
                kind = 1 if passes == len(rewards) else 2
                self.run[i] = self.run[i] + 1 if self.kind[i] == kind else 1
                self.kind[i] = kind
            else:
                self.run[i], self.kind[i] = 0, 0
            w = self._window
            w["groups"] += 1
            w["predicted"] += predicted
            w["zero_var"] += zero_var
            if zero_var:
                w[KINDS[self.kind[i] - 1]] += 1
            if self.log_path is not None:
                self._write(
                    {
                        "event": "observe",
                        "step": step,
                        "task_id": task_id,
                        "observed": self.observed,
                        "epoch": epoch,
                        "rewards": rewards,
                        "pass_rate": passes / len(rewards) if rewards else None,
                        "predicted_zero_var": predicted,
                    }
                )
            if w["groups"] >= self.adapt_every:
                self._adapt()
            return True

    def _adapt(self) -> None:
        w = self._window
        for k in KINDS:
            share = w[k] / w["groups"]
            self.p[k] = float(
                np.clip(self.p[k] + (-self.step if share > self.target else self.step), self.p_min, 1.0)
            )
        self._write(
            {
                "event": "greso",
                "skip_rate": w["skipped"] / max(w["considered"], 1),
                "predicted_zero_var": w["predicted"] / w["groups"],
                "observed_zero_var": w["zero_var"] / w["groups"],
                "groups": w["groups"],
                "p_easy": self.p["easy"],
                "p_hard": self.p["hard"],
                "epoch": self.epoch,
            }
        )
        self._window = self._fresh_window()

    @staticmethod
    def _fresh_window() -> dict[str, Any]:
        return {
            "considered": 0,
            "skipped": 0,
            "groups": 0,
            "predicted": 0.0,
            "zero_var": 0,
            "easy": 0,
            "hard": 0,
        }

    @property
    def skip_rate(self) -> float:
        return self.skipped / max(self.considered, 1)

    def metrics(self) -> dict[str, float]:
        """Scalars for the trainer's dashboards (cumulative skip rate, exploration rates, epoch)."""
        with self._lock:
            return {
                "greso/skip_rate": self.skip_rate,
                "greso/p_easy": self.p["easy"],
                "greso/p_hard": self.p["hard"],
                "greso/epoch": float(self.epoch),
            }

    def log_record(self, record: Mapping[str, Any]) -> None:
        """Append a caller's record (a trainer's step metrics) to the run log, in order with ours."""
        with self._lock:
            self._write(dict(record))

    def _write(self, record: dict[str, Any]) -> None:
        if self.log_path is not None:
            with self.log_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")

    def close(self) -> None:
        """Nothing to release (the log is opened per record); the trainer closes every task source."""

    # ---- checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "p": dict(self.p),
                "run": self.run.tolist(),
                "kind": self.kind.tolist(),
                "epoch": self.epoch,
                "pos": self.pos,
                "considered": self.considered,
                "skipped": self.skipped,
                "observed": self.observed,
                "transitions": self.transitions.tolist(),
                "window": dict(self._window),
                "pending": [list(p) for p in (*self._replay, *self._pending)],
            }

    def load_state_dict(self, state: Mapping[str, Any], *, replay: bool = False) -> None:
        """Restore a `state_dict`. `replay=True` hands the prompts that were out and not yet observed out
        again, first and in their order (a trainer's dataloader had pulled them before the checkpoint),
        without counting them again as considered."""
        with self._lock:
            self.p = {k: float(v) for k, v in state["p"].items()}
            self.run = np.asarray(state["run"], np.int64)
            self.kind = np.asarray(state["kind"], np.int8)
            self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
            self.considered, self.skipped = int(state["considered"]), int(state["skipped"])
            self.transitions = np.asarray(state["transitions"], np.int64)
            self.observed = int(state.get("observed", 0))
            self._window = dict(state["window"])
            pending = deque((str(t), int(e), float(p)) for t, e, p in state["pending"])
            self._pending, self._replay = (deque(), pending) if replay else (pending, deque())

    # ---- Hugging Face datasets ---------------------------------------------------------------------
    def as_hf_dataset(self) -> Any:
        """A `datasets.IterableDataset` with the columns TaskStream gives TRL (prompt, task, task_id,
        family); use it with `shuffle_dataset=False` and route the reward's groups to `observe`."""
        from taskforge.curricula.stream import TaskStream

        return TaskStream.as_hf_dataset(self)  # type: ignore[arg-type]  # it only iterates Tasks
