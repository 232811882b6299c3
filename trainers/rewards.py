"""Our verifiers as TRL reward functions, and the path from a reward call back to the controller.

TRL calls a reward function once per generation batch with every completion and, as keyword arguments,
the dataset's extra columns (one value per completion; here `task`, the task's JSON) plus
`trainer_state`. Its `RepeatSampler` places the G completions of one prompt next to each other, so a
batch is a run of groups; each finished group goes to `on_group(task_id, rewards)` (the stream's
`observe`), which is how the controller sees every group. The format reward is a separate function,
never folded into correctness.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from taskforge.api import level_label, verify_many
from taskforge.extract import extract_answer
from taskforge.task import Task, canonical_json


def completion_text(completion: Any) -> str:
    """TRL gives a string (plain prompts) or a list of chat messages (conversational prompts)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(m.get("content") or "" for m in completion if isinstance(m, dict))
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    return ""


class StepStats:
    """Pass counts per family and level, groups and zero-variance groups, since the last `drain`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.passed: dict[str, int] = defaultdict(int)
        self.total: dict[str, int] = defaultdict(int)
        self.groups = 0
        self.zero_var_groups = 0
        self.predicted_zero_var: list[float] = []
        self.cells: dict[str, int] = defaultdict(int)

    def add_sample(self, family: str, level: str, passed: bool) -> None:
        with self._lock:
            for key in (family, f"{family}/{level}"):
                self.total[key] += 1
                self.passed[key] += bool(passed)

    def add_group(self, task: Task, rewards: Sequence[float], predicted_zero_var: float | None) -> None:
        with self._lock:
            self.groups += 1
            self.zero_var_groups += len(set(rewards)) == 1
            if predicted_zero_var is not None:
                self.predicted_zero_var.append(predicted_zero_var)
            self.cells[f"{task.family}/{level_label(task)}"] += 1

    def drain(self) -> dict[str, Any]:
        """The metrics since the last drain, flat, ready for a log line; then start afresh."""
        with self._lock:
            out: dict[str, Any] = {f"pass_rate/{k}": self.passed[k] / n for k, n in sorted(self.total.items())}
            if self.groups:
                out["taskforge/groups"] = self.groups
                out["taskforge/frac_groups_zero_var"] = self.zero_var_groups / self.groups
            if self.predicted_zero_var:
                out["taskforge/predicted_zero_var"] = sum(self.predicted_zero_var) / len(self.predicted_zero_var)
            if self.cells:
                out["taskforge/choices"] = dict(sorted(self.cells.items()))
            self._reset()
            return out


class TaskReward:
    """The verifier reward (1.0 pass, 0.0 otherwise) as one TRL reward function.

    `on_group(task_id, rewards)` gets each prompt's group once its G rewards are in; `predict_zero_var`
    (task -> probability, or None) records what the controller expected for the group.
    """

    def __init__(
        self,
        group_size: int,
        on_group: Callable[[str, list[float]], None] | None = None,
        *,
        predict_zero_var: Callable[[Task], float | None] | None = None,
        workers: int = 1,
        name: str = "correct",
    ) -> None:
        if group_size < 1:
            raise ValueError("group_size must be >= 1")
        self.__name__ = name  # TRL names its reward metrics after this
        self.group_size = group_size
        self.on_group = on_group
        self.predict_zero_var = predict_zero_var
        self.workers = workers
        self.stats = StepStats()
        self.groups_routed = 0
        self.history: list[tuple[int, int]] = []  # (passes, completions) per reward call, for learning curves
        self._pending: tuple[Task, list[float]] | None = None
        self._cache: dict[str, Task] = {}

    def _task(self, value: Any) -> Task:
        key = value if isinstance(value, str) else canonical_json(value)
        task = self._cache.get(key)
        if task is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            task = self._cache[key] = Task.from_dict(json.loads(key))
        return task

    def __call__(self, prompts: Any = None, completions: Any = None, completion_ids: Any = None, **kwargs: Any) -> list[float]:
        if "task" not in kwargs:
            raise ValueError("reward function needs the dataset's `task` column (the task JSON)")
        tasks = [self._task(t) for t in kwargs["task"]]
        texts = [completion_text(c) for c in completions]
        verdicts = verify_many(tasks, texts, self.workers)
        rewards = [float(v.score) for v in verdicts]
        self.history.append((sum(v.passed for v in verdicts), len(verdicts)))
        for t, v in zip(tasks, verdicts, strict=True):
            self.stats.add_sample(t.family, level_label(t), v.passed)
        self._route(tasks, rewards)
        return rewards

    def _route(self, tasks: list[Task], rewards: list[float]) -> None:
        # Consecutive completions of one task form its group; a group cut by a batch edge waits for the rest.
        for task, r in zip(tasks, rewards, strict=True):
            if self._pending is not None and self._pending[0].id != task.id:
                self._pending = None  # an incomplete group cannot be judged; drop it rather than mix tasks
            if self._pending is None:
                self._pending = (task, [])
            self._pending[1].append(r)
            if len(self._pending[1]) == self.group_size:
                done_task, group = self._pending
                self._pending = None
                pz = self.predict_zero_var(done_task) if self.predict_zero_var else None
                self.stats.add_group(done_task, group, pz)
                self.groups_routed += 1
                if self.on_group is not None:
                    self.on_group(done_task.id, group)


def format_reward(prompts: Any = None, completions: Any = None, **kwargs: Any) -> list[float]:
    """1.0 when the completion gives a final answer the extractor can read (<answer> or \\boxed{})."""
    return [float(extract_answer(completion_text(c)) is not None) for c in completions]


format_reward.__name__ = "format"
