"""Length-aware reward shaping: LASER, LASER-D, HAPO and ShorterBetter as TRL reward functions.

Each method is one reward function that GRPO adds to correctness with a weight (`reward_weights`):

    reward = correct + weight * length_reward

configured in the training YAML as

    length_reward: {method: laser_d, weight: 0.2}       # or laser / hapo / shorter_better, plus settings

Lengths are counted in completion tokens (`completion_ids`). Correctness is the verifier's pass: taken
from the correctness reward of the same call when one is given (TRL calls the reward functions in order,
on the same completions, so the verifier runs once), else verified here. Completions arrive as runs of
G completions of one prompt (TRL's `RepeatSampler`), which is what "the group" means below.

Several processes: each rank gets only its own slice of the global batch, and a group may straddle two
ranks. With `gather` (accelerate's `gather_object`) every rank collects every rank's (task, length,
correct) rows, in rank order, which is the global batch's order: each group is scored whole, the state
(HAPO's histories, LASER-D's targets) takes the same updates on every rank, and each rank returns the
rewards of its own rows. So rank 0's checkpoint holds the complete state, and the trainer's per-step
check that the ranks' states agree covers it.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from taskforge.api import verify_many
from taskforge.task import Task, canonical_json
from taskforge.trainers.rewards import completion_text

SHAPING_FILE = "taskforge_shaping.json"  # beside the stream's state in every checkpoint folder


# ---- the shared frame -------------------------------------------------------------------------------


class LengthReward:
    """The frame every method shares: it reads tasks, lengths and correctness, cuts the batch into groups,
    hands each group to `_group`, and logs the method's mean length reward through `log_metric`.

    `correct`: the correctness reward of the same trainer (a `TaskReward`), whose last call's outcome is
    reused when its completions are these; without it the verifier runs here.
    """

    method = "length"

    def __init__(
        self,
        group_size: int,
        *,
        correct: Any = None,
        workers: int = 1,
        gather: Callable[[list[Any]], list[Any]] | None = None,
        rank: int = 0,
    ) -> None:
        if group_size < 1:
            raise ValueError("group_size must be >= 1")
        self.group_size = int(group_size)
        self.correct = correct
        self.workers = workers
        self.gather = gather  # all ranks' rows, in rank order (None: one process)
        self.rank = int(rank)
        self.__name__ = f"length_{self.method}"  # TRL names its reward metrics after this
        self._lock = threading.Lock()
        self._meta: dict[str, dict[str, Any]] = {}

    # -- inputs
    def _info(self, raw: Any) -> dict[str, Any]:
        """id, family, difficulty and meta of a task column value; cached, since G rows repeat it."""
        key = raw if isinstance(raw, str) else canonical_json(raw)
        info = self._meta.get(key)
        if info is None:
            row = json.loads(key) if isinstance(raw, str) else dict(raw)
            meta = row.get("meta")
            meta = json.loads(meta) if isinstance(meta, str) else dict(meta or {})
            info = {
                "id": str(row.get("id")),
                "family": row.get("family"),
                "difficulty": row.get("difficulty"),
                "meta": meta,
            }
            if len(self._meta) > 4096:
                self._meta.clear()
            self._meta[key] = info
        return info

    def _passed(self, raw_tasks: Sequence[Any], texts: list[str]) -> list[bool]:
        last = getattr(self.correct, "last_outcome", None)
        if last is not None and last[0] == texts:
            return list(last[1])
        tasks = [Task.from_dict(json.loads(t) if isinstance(t, str) else t) for t in raw_tasks]
        return [v.passed for v in verify_many(tasks, texts, self.workers)]

    def __call__(
        self, prompts: Any = None, completions: Any = None, completion_ids: Any = None, **kwargs: Any
    ) -> list[float]:
        if "task" not in kwargs:
            raise ValueError("length reward needs the dataset's `task` column (the task JSON)")
        raw = list(kwargs["task"])
        texts = [completion_text(c) for c in completions]
        if completion_ids is not None:
            lengths = [len(ids) for ids in completion_ids]
        else:  # called outside TRL: characters stand in for tokens
            lengths = [len(t) for t in texts]
        passed = self._passed(raw, texts)
        rows = [
            (self.rank, info, n, ok)
            for info, n, ok in zip(map(self._info, raw), lengths, passed, strict=True)
        ]
        if self.gather is not None:
            rows = list(self.gather(rows))  # a collective: every rank calls it once per reward call
        with self._lock:
            scores = self._score(rows)
        out = [s for (rank, *_), s in zip(rows, scores, strict=True) if rank == self.rank]
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and out:
            log_metric(f"taskforge/{self.__name__}", sum(out) / len(out))
            for name, value in self.metrics().items():
                log_metric(f"taskforge/{self.method}/{name}", value)
        return out

    def _score(self, rows: Sequence[tuple[int, Mapping[str, Any], int, bool]]) -> list[float]:
        """Score (rank, task info, length, correct) rows of a global batch, then move the batch state."""
        out = [0.0] * len(rows)
        start = 0
        # Consecutive rows of one task form its group (a group cut by the batch edge is scored alone).
        for i in range(1, len(rows) + 1):
            if i == len(rows) or rows[i][1]["id"] != rows[start][1]["id"] or i - start == self.group_size:
                idx = range(start, i)
                scores = self._group(rows[start][1], [rows[j][2] for j in idx], [rows[j][3] for j in idx])
                for j, s in zip(idx, scores, strict=True):
                    out[j] = float(s)
                start = i
        self._after_batch()
        return out

    # -- the method
    def _group(self, info: Mapping[str, Any], lengths: list[int], passed: list[bool]) -> list[float]:
        raise NotImplementedError

    def _after_batch(self) -> None:
        """Hook for methods whose state moves once per batch (LASER-D's targets)."""

    def metrics(self) -> dict[str, float]:
        return {}

    # -- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Stateless methods have nothing to restore."""


# ---- LASER and LASER-D ------------------------------------------------------------------------------


class Laser(LengthReward):
    """LASER, from "Learn to Reason Efficiently with Adaptive Length-based Reward Shaping" (Liu et al.,
    2025): a step function on length. A correct response whose length is within the target length L_T
    gets the bonus; a longer one, or a wrong one, does not:

        length_reward(y) = 1  if correct(y) and L(y) <= L_T   else 0

    and the trainer's reward is correct(y) + weight * length_reward(y). `target` is L_T in tokens.
    """

    method = "laser"

    def __init__(self, group_size: int, *, target: int = 256, **kw: Any) -> None:
        super().__init__(group_size, **kw)
        if int(target) < 1:
            raise ValueError("laser: target must be >= 1 token")
        self.target = int(target)

    def target_for(self, info: Mapping[str, Any]) -> float:
        return float(self.target)

    def _group(self, info: Mapping[str, Any], lengths: list[int], passed: list[bool]) -> list[float]:
        target = self.target_for(info)
        return [1.0 if ok and n <= target else 0.0 for n, ok in zip(lengths, passed, strict=True)]


BUCKETS = ("easy", "medium", "hard")


class LaserD(Laser):
    """LASER-D, the dynamic and difficulty-aware form of LASER (same paper): the step reward of LASER,
    with one target per difficulty bucket that adapts during training.

    Bucket of a task, from our own signals rather than a separate estimate: the controller's predicted
    pass rate `task.meta["predicted_p"]` when the stream wrote one (easy >= 2/3 > medium >= 1/3 > hard);
    else the task's level on its family's ladder (`meta["level"]` against `levels`, split in thirds);
    else the group's own pass rate, as in the paper (which buckets by batch accuracy).

    Target of a bucket: the paper's "expected correct responses" rule. Over the bucket's recent responses
    (the last `window`), the target is the smallest length L such that

        ECR(L) = G * #{recent responses that are correct and have length <= L} / #{recent responses} >= 1

    i.e. a group of G would expect at least one correct response within L. Easy buckets have many short
    correct responses, so they get tighter targets. Targets start at `target` and move once per reward
    call (after the batch is scored, so a batch is scored against the targets it was sampled under);
    a bucket with no correct response keeps its target.
    """

    method = "laser_d"

    def __init__(
        self, group_size: int, *, target: int = 256, window: int = 512, levels: int = 0, **kw: Any
    ) -> None:
        super().__init__(group_size, target=target, **kw)
        if int(window) < group_size:
            raise ValueError("laser_d: window must be >= the group size")
        self.window = int(window)
        self.levels = int(levels)
        self.targets = {b: float(self.target) for b in BUCKETS}
        self.recent: dict[str, deque[tuple[int, bool]]] = {b: deque(maxlen=self.window) for b in BUCKETS}

    def bucket(self, info: Mapping[str, Any], passed: Sequence[bool] | None = None) -> str:
        meta = info.get("meta") or {}
        p = meta.get("predicted_p")
        if not isinstance(p, (int, float)):
            level = meta.get("level")
            if isinstance(level, int) and self.levels > 1:
                frac = level / (self.levels - 1)  # level 0 is the easiest rung
                p = 1.0 - frac
            elif passed:
                p = sum(passed) / len(passed)
            else:
                return "medium"
        return "easy" if p >= 2 / 3 else "medium" if p >= 1 / 3 else "hard"

    def _group(self, info: Mapping[str, Any], lengths: list[int], passed: list[bool]) -> list[float]:
        b = self.bucket(info, passed)
        target = self.targets[b]
        self.recent[b].extend(zip(lengths, passed, strict=True))
        return [1.0 if ok and n <= target else 0.0 for n, ok in zip(lengths, passed, strict=True)]

    def _after_batch(self) -> None:
        for b, rows in self.recent.items():
            target = ecr_target(list(rows), self.group_size)
            if target is not None:
                self.targets[b] = float(target)

    def metrics(self) -> dict[str, float]:
        return {f"target_{b}": t for b, t in self.targets.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "targets": dict(self.targets),
            "recent": {b: [list(x) for x in q] for b, q in self.recent.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.targets = {b: float(state["targets"][b]) for b in BUCKETS}
        for b in BUCKETS:
            self.recent[b] = deque(((int(n), bool(ok)) for n, ok in state["recent"][b]), maxlen=self.window)


def ecr_target(rows: Sequence[tuple[int, bool]], group_size: int) -> int | None:
    """The smallest length L with G * (correct responses of length <= L) / responses >= 1; None when
    even all correct responses together fall short (the target then stays where it was)."""
    if not rows:
        return None
    need = math.ceil(len(rows) / group_size)  # correct responses within L needed for ECR >= 1
    correct = sorted(n for n, ok in rows if ok)
    if len(correct) < need:
        return None
    return correct[need - 1]


# ---- HAPO -------------------------------------------------------------------------------------------


class Hapo(LengthReward):
    """HAPO, from "HAPO: Training Language Models to Reason Concisely via History-Aware Policy
    Optimization" (Huang et al., 2025). A history state per problem, h = the minimum length of its
    correct responses seen so far (none yet: no length reward). With L the response's length,

        f(L, h)          = cos(min(pi/2 * L / h, pi))          in [-1, 1], 0 at L = h
        length_reward(y) = f(L, h)          if correct(y)      shorter than the history is rewarded
                         = min(f(L, h), 0)  otherwise          a short wrong answer gets 0, not a bonus
                                                               and never a penalty
                         = 0                while h is unknown

    then h <- min(h, shortest correct length of the group). Procedural tasks rarely repeat, so the key
    is the task id, or with `key: cell` the controller's difficulty cell (family + cell, from
    `task.meta`), which tasks of one cell share. The histories ride in the checkpoints beside the stream's
    state (`taskforge_shaping.json`); `max_entries` bounds memory (the oldest keys are forgotten).
    """

    method = "hapo"

    def __init__(
        self, group_size: int, *, key: str = "task", max_entries: int = 1_000_000, **kw: Any
    ) -> None:
        super().__init__(group_size, **kw)
        if key not in ("task", "cell"):
            raise ValueError(f"hapo: key must be task or cell, got {key!r}")
        self.key = key
        self.max_entries = int(max_entries)
        self.history: dict[str, int] = {}  # insertion-ordered: the oldest keys are dropped first

    def history_key(self, info: Mapping[str, Any]) -> str:
        meta = info.get("meta") or {}
        if self.key == "cell" and "cell" in meta:
            return f"{meta.get('family', info.get('family'))}:{canonical_json(meta['cell'])}"
        return str(info["id"])

    def _group(self, info: Mapping[str, Any], lengths: list[int], passed: list[bool]) -> list[float]:
        key = self.history_key(info)
        h = self.history.get(key)
        out = [hapo_reward(n, h, ok) for n, ok in zip(lengths, passed, strict=True)]
        shortest = min((n for n, ok in zip(lengths, passed, strict=True) if ok), default=None)
        if shortest is not None:
            self.history.pop(key, None)  # re-insert as the newest
            self.history[key] = shortest if h is None else min(h, shortest)
            while len(self.history) > self.max_entries:
                self.history.pop(next(iter(self.history)))
        return out

    def metrics(self) -> dict[str, float]:
        return {"history_size": float(len(self.history))}

    def state_dict(self) -> dict[str, Any]:
        return {"history": dict(self.history)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.history = {str(k): int(v) for k, v in state["history"].items()}


def hapo_reward(length: int, history: int | None, correct: bool) -> float:
    if history is None or history <= 0:
        return 0.0
    f = math.cos(min(math.pi / 2 * length / history, math.pi))
    return f if correct else min(f, 0.0)


# ---- ShorterBetter ----------------------------------------------------------------------------------


class ShorterBetter(LengthReward):
    """ShorterBetter, from "ShorterBetter: Guiding Reasoning Models to Find Optimal Inference Length for
    Efficient Reasoning" (Yi et al., 2025). The sample optimal length of a group is its shortest correct
    response (the group's mean length when none is correct); every response is rewarded for being close
    to it:

        SOL              = min L(y) over correct y in the group   (mean L(y) over the group if none)
        length_reward(y) = -|L(y) - SOL| / scale

    The paper writes alpha * correct - beta * |L - SOL| with lengths in raw tokens; we divide by `scale`
    (default: the trainer's max_completion_length) so that the YAML weight plays beta's role on a
    0..1 scale whatever the completion budget.
    """

    method = "shorter_better"

    def __init__(self, group_size: int, *, scale: float = 256.0, **kw: Any) -> None:
        super().__init__(group_size, **kw)
        if float(scale) <= 0:
            raise ValueError("shorter_better: scale must be > 0")
        self.scale = float(scale)

    def _group(self, info: Mapping[str, Any], lengths: list[int], passed: list[bool]) -> list[float]:
        correct = [n for n, ok in zip(lengths, passed, strict=True) if ok]
        sol = min(correct) if correct else sum(lengths) / len(lengths)
        return [-abs(n - sol) / self.scale for n in lengths]


# ---- construction, checkpoints ----------------------------------------------------------------------

METHODS: dict[str, type[LengthReward]] = {
    "laser": Laser,
    "laser_d": LaserD,
    "hapo": Hapo,
    "shorter_better": ShorterBetter,
}
SETTINGS: dict[str, set[str]] = {
    "laser": {"target"},
    "laser_d": {"target", "window", "levels"},
    "hapo": {"key", "max_entries"},
    "shorter_better": {"scale"},
}

# The numeric settings' types (`key` is a name: task or cell, checked by HAPO itself).
SETTING_TYPES: dict[str, Any] = {
    "target": int,
    "window": int,
    "levels": int,
    "max_entries": int,
    "scale": (int, float),
}


def check_length_reward(spec: Any, group_size: int = 1) -> str | None:
    """The problem with a `length_reward` YAML entry, as one line, or None when it is valid."""
    if not isinstance(spec, Mapping):
        return "length_reward must be a mapping like {method: hapo, weight: 0.2}"
    known = {"method", "weight"}.union(*SETTINGS.values())
    typo = set(spec) - known
    if typo:  # before the method check, so `methd: laser` is named rather than read as a missing method
        return f"unknown length_reward keys {sorted(typo)}; valid: {', '.join(sorted(known))}"
    method = spec.get("method")
    if method not in METHODS:
        return f"length_reward.method must be one of {', '.join(METHODS)}, got {method!r}"
    weight = spec.get("weight", 0.2)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
        return f"length_reward.weight must be a number > 0, got {weight!r}"
    bad = set(spec) - {"method", "weight"} - SETTINGS[method]
    if bad:
        return (
            f"unknown length_reward settings for {method}: {sorted(bad)}; valid: {sorted(SETTINGS[method])}"
        )
    for key in set(spec) & set(SETTING_TYPES):
        value, kind = spec[key], SETTING_TYPES[key]
        # The constructors would int() what they get: "big" fails with a bare int() message, 12.7 truncates.
        if isinstance(value, bool) or not isinstance(value, kind):
            what = "an integer" if kind is int else "a number"
            return f"length_reward.{key} must be {what}, got {value!r}"
    try:
        make_length_reward(spec, group_size)
    except (TypeError, ValueError) as exc:
        return f"length_reward: {exc}"
    return None


def make_length_reward(
    spec: Mapping[str, Any],
    group_size: int,
    *,
    correct: Any = None,
    max_completion_length: int | None = None,
    workers: int = 1,
    gather: Callable[[list[Any]], list[Any]] | None = None,
    rank: int = 0,
) -> LengthReward:
    """The reward function a `length_reward` entry describes (its `weight` goes to GRPO's reward_weights)."""
    method = spec["method"]
    settings = {k: v for k, v in spec.items() if k not in ("method", "weight")}
    if max_completion_length:
        # The completion budget is the natural default scale for targets and distances.
        if method in ("laser", "laser_d"):
            settings.setdefault("target", max_completion_length)
        if method == "shorter_better":
            settings.setdefault("scale", max_completion_length)
    return METHODS[method](group_size, correct=correct, workers=workers, gather=gather, rank=rank, **settings)


def shaping_callback(shaper: LengthReward) -> Any:
    """A TrainerCallback that saves the method's state in every checkpoint folder, beside the stream's."""
    from transformers import TrainerCallback

    class ShapingCallback(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.is_world_process_zero:
                save_shaping_state(shaper, Path(args.output_dir) / f"checkpoint-{state.global_step}")

    return ShapingCallback()


def save_shaping_state(shaper: LengthReward, ckpt: Path) -> None:
    ckpt.mkdir(parents=True, exist_ok=True)
    tmp = ckpt / (SHAPING_FILE + ".tmp")
    tmp.write_text(json.dumps({"method": shaper.method, "state": shaper.state_dict()}))
    tmp.replace(ckpt / SHAPING_FILE)  # atomic: a crash mid-write leaves the previous file


def load_shaping_state(shaper: LengthReward, ckpt: Path) -> bool:
    """Restore from a checkpoint folder; False when it holds no state for this method."""
    path = ckpt / SHAPING_FILE
    if not path.is_file():
        return False
    saved = json.loads(path.read_text())
    if saved.get("method") != shaper.method:
        return False
    shaper.load_state_dict(saved["state"])
    return True
