"""Our verifiers as TRL reward functions, and the path from a reward call back to the controller.

TRL calls a reward function once per generation batch with every completion and, as keyword arguments,
the dataset's extra columns (one value per completion; here `task`, the task's JSON) plus
`trainer_state` and `log_metric`. Its `RepeatSampler` places the G completions of one prompt next to each
other, so a global batch is a run of groups; each finished group goes to `on_group(task_id, rewards,
step=...)` (the stream's `observe`), which is how the controller sees every group. Our pass rates and the
curriculum's figures go out through `log_metric`, so they reach whatever `report_to` backends TRL writes
to (TensorBoard, W&B) next to TRL's own metrics. The format reward is a separate function, never folded
into correctness.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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

    def add_sample(self, family: str, level: str, passed: bool, surface: str | None = None) -> None:
        with self._lock:
            # With `surface:` training, the pass rate per surface form too (`pass_rate/surface/<form>`).
            for key in (family, f"{family}/{level}", *([f"surface/{surface}"] if surface else [])):
                self.total[key] += 1
                self.passed[key] += bool(passed)

    def add_group(
        self, family: str, level: str, rewards: Sequence[float], predicted_zero_var: float | None
    ) -> None:
        with self._lock:
            self.groups += 1
            self.zero_var_groups += len(set(rewards)) == 1
            if predicted_zero_var is not None:
                self.predicted_zero_var.append(predicted_zero_var)
            self.cells[f"{family}/{level}"] += 1

    def drain(self) -> dict[str, float]:
        """The metrics since the last drain, flat scalars named as they appear in TensorBoard / W&B; then
        start afresh. `cells/<family>/<level>` is the share of the groups the controller put there."""
        with self._lock:
            out: dict[str, float] = {
                f"pass_rate/{k}": self.passed[k] / n for k, n in sorted(self.total.items())
            }
            if self.groups:
                out["taskforge/groups"] = float(self.groups)
                out["taskforge/frac_groups_zero_var"] = self.zero_var_groups / self.groups
                out.update({f"cells/{k}": n / self.groups for k, n in sorted(self.cells.items())})
            if self.predicted_zero_var:
                out["taskforge/predicted_zero_var"] = sum(self.predicted_zero_var) / len(
                    self.predicted_zero_var
                )
            self._reset()
            return out


REWARDS = ("verifier", "saturn")


@dataclass(frozen=True)
class Scored:
    """One completion's outcome: what every rank needs to route groups and count pass rates (small, so
    that gathering it across ranks costs little)."""

    task_id: str
    reward: float
    passed: bool
    family: str
    level: str
    predicted_zero_var: float | None
    surface: str | None = None  # the surface form the prompt was asked in (taskforge.surface), if any


class TaskReward:
    """The verifier reward (1.0 pass, 0.0 otherwise) as one TRL reward function; with `reward="saturn"`,
    SAT tasks get Saturn's reward instead (1 satisfied, 0 not, -1 no `\\boxed{}`), passed to GRPO as it
    is, and other families keep their verifier. A pass is a reward of 1 either way.

    `on_group(task_id, rewards, step)` gets each prompt's group once its G rewards are in;
    `predict_zero_var` (task -> probability, or None) records what the controller expected for the group.
    Under several processes each rank scores its own completions and `gather` (accelerate's
    `gather_object`) collects every rank's outcomes in rank order, which is the order of the global batch:
    every rank then routes every group, whichever ranks its completions landed on, in the same order, so
    the controllers of all ranks see the same observations and stay identical.
    """

    def __init__(
        self,
        group_size: int,
        on_group: Callable[..., Any] | None = None,
        *,
        predict_zero_var: Callable[[Task], float | None] | None = None,
        workers: int = 1,
        name: str = "correct",
        reward: str = "verifier",
        gather: Callable[[list[Scored]], list[Scored]] | None = None,
        metrics: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        if group_size < 1:
            raise ValueError("group_size must be >= 1")
        if reward not in REWARDS:
            raise ValueError(f"unknown reward {reward!r}; valid: {', '.join(REWARDS)}")
        self.reward = reward
        self.__name__ = name  # TRL names its reward metrics after this
        self.group_size = group_size
        self.on_group = on_group
        self.predict_zero_var = predict_zero_var
        self.workers = workers
        self.gather = gather
        self.metrics = metrics  # extra scalars (a controller summary) sent with each call's log_metric
        self.stats = StepStats()
        self.groups_routed = 0
        self.history: list[tuple[int, int]] = []  # (passes, completions) per reward call, global
        self._pending: tuple[str, list[Scored]] | None = None
        self.last_outcome: tuple[list[str], list[bool]] | None = None  # read by trainers/shaping.py
        self._cache: dict[str, Task] = {}

    def _task(self, value: Any) -> Task:
        key = value if isinstance(value, str) else canonical_json(value)
        task = self._cache.get(key)
        if task is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            task = self._cache[key] = Task.from_dict(json.loads(key))
        return task

    def score(self, completions: Sequence[Any], task_column: Sequence[Any]) -> list[Scored]:
        """Score this rank's completions (one task JSON per completion)."""
        tasks = [self._task(t) for t in task_column]
        texts = [completion_text(c) for c in completions]
        if self.reward == "saturn":
            from taskforge.trainers.evaluate import score_completions  # one scoring path for eval and train

            outcomes = score_completions(tasks, texts, "saturn")
            rewards, passed = [o["reward"] for o in outcomes], [o["passed"] for o in outcomes]
        else:
            verdicts = verify_many(tasks, texts, self.workers)
            rewards, passed = [float(v.score) for v in verdicts], [v.passed for v in verdicts]
        return [
            Scored(
                t.id,
                float(r),
                bool(ok),
                t.family,
                level_label(t),
                self.predict_zero_var(t) if self.predict_zero_var else None,
                t.meta.get("surface"),
            )
            for t, r, ok in zip(tasks, rewards, passed, strict=True)
        ]

    def __call__(
        self, prompts: Any = None, completions: Any = None, completion_ids: Any = None, **kwargs: Any
    ) -> list[float]:
        if "task" not in kwargs:
            raise ValueError("reward function needs the dataset's `task` column (the task JSON)")
        local = self.score(completions, kwargs["task"])
        self.last_outcome = ([completion_text(c) for c in completions], [s.passed for s in local])
        scored = list(self.gather(local)) if self.gather is not None else local
        self.history.append((sum(s.passed for s in scored), len(scored)))
        for s in scored:
            self.stats.add_sample(s.family, s.level, s.passed, s.surface)
        state = kwargs.get("trainer_state")
        # TRL calls the reward for the step about to be taken: global_step + 1.
        self._route(scored, None if state is None else int(state.global_step) + 1)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            # Every rank holds the same global figures, so TRL's average over ranks leaves them unchanged.
            extra = self.metrics() if self.metrics is not None else {}
            for key, value in {**self.stats.drain(), **extra}.items():
                log_metric(key, float(value))
        return [s.reward for s in local]

    def _route(self, scored: list[Scored], step: int | None) -> None:
        # Consecutive completions of one task form its group; a group cut by a batch edge waits for the rest.
        for s in scored:
            if self._pending is not None and self._pending[0] != s.task_id:
                self._pending = None  # an incomplete group cannot be judged; drop it rather than mix tasks
            if self._pending is None:
                self._pending = (s.task_id, [])
            self._pending[1].append(s)
            if len(self._pending[1]) == self.group_size:
                task_id, group = self._pending
                self._pending = None
                rewards = [g.reward for g in group]
                self.stats.add_group(group[0].family, group[0].level, rewards, group[0].predicted_zero_var)
                self.groups_routed += 1
                if self.on_group is not None:
                    self.on_group(task_id, rewards, step=step)


def format_reward(prompts: Any = None, completions: Any = None, **kwargs: Any) -> list[float]:
    """1.0 when the completion gives a final answer the extractor can read (<answer> or \\boxed{})."""
    return [float(extract_answer(completion_text(c)) is not None) for c in completions]


format_reward.__name__ = "format"
