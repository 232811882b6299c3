"""TaskStream: an endless iterator of Tasks whose difficulty follows a curriculum controller.

    stream = TaskStream("arithmetic", "adaptive", seed=0, log_path="run.jsonl")
    task = next(stream)                       # task.meta["cell"], task.meta["family"]
    stream.observe(task.id, [1.0, 0.0, ...])  # the rewards of its group reach the controller
    ds = stream.as_hf_dataset()               # for TRL's GRPOTrainer (shuffle_dataset=False)

Proposals are made in batches, synchronously with consumption: a new batch is proposed when fewer than
`prefetch` batches are waiting, so the tasks produced depend only on the seed and on the order of
`next` and `observe` calls, never on timing. Generation of proposed tasks runs ahead in a pool of worker
processes (`workers=0`: in-process, on demand). Task i is `Generator.sample(params, seed, split, i)`, so a
restored stream regenerates exactly the tasks it had proposed.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from taskforge.curricula.base import PASS_THRESHOLD, Controller, make_controller
from taskforge.curricula.mixture import Mixture
from taskforge.curricula.space import KnobSpace
from taskforge.generator import Generator
from taskforge.registry import get_generator
from taskforge.task import Task

# Evaluator for controllers that ask for held-out evaluation (saturn): tasks -> one reward per task.
Evaluator = Callable[[list[Task]], Sequence[float]]
MAX_PENDING = 100_000  # tasks handed out and not yet observed; the oldest are forgotten beyond this


def _sample(gen_cls: type[Generator], params: dict[str, Any], seed: int, split: str, index: int) -> dict[str, Any]:
    # Runs in a worker process: the class travels by reference (module + name), the task back as a dict.
    return gen_cls().sample(params, seed, split, index).to_dict()


class TaskStream:
    def __init__(
        self,
        source: Any,
        controller: Controller | Mixture | str | None = "adaptive",
        seed: int = 0,
        *,
        group_size: int = 8,
        batch: int = 16,
        prefetch: int = 2,
        workers: int = 0,
        split: str = "train",
        weights: Mapping[str, float] | str | None = None,
        log_path: str | Path | None = None,
        evaluator: Evaluator | None = None,
        controller_settings: Mapping[str, Any] | None = None,
    ) -> None:
        """`source`: a family name, a Generator (class or instance), a list of them, or a Mixture.
        `controller`: a controller name (one is built per family on the family's KnobSpace), a Controller
        (single family), or a Mixture; `weights` share batches among families (fixed or "adaptive")."""
        self.seed = int(seed)
        self.split = split
        self.batch = max(int(batch), 1)
        self.prefetch = max(int(prefetch), 1)
        self.evaluator = evaluator
        self.generators: dict[str, Generator] = {}
        if isinstance(source, Mixture):
            controller, source = source, list(source.families)
        for item in source if isinstance(source, list | tuple) else [source]:
            gen = _as_generator(item)
            self.generators[gen.family] = gen
        if isinstance(controller, Mixture):
            self.mixture = controller
        elif isinstance(controller, Controller):
            if len(self.generators) != 1:
                raise ValueError("one Controller drives one family; pass a Mixture or a controller name")
            self.mixture = Mixture({next(iter(self.generators)): controller}, seed=self.seed)
        else:
            name = controller or "adaptive"
            ctrls = {
                f: make_controller(
                    name, KnobSpace.from_generator(g), group_size=group_size, seed=self.seed, **dict(controller_settings or {})
                )
                for f, g in self.generators.items()
            }
            self.mixture = Mixture(ctrls, weights, seed=self.seed)
        missing = set(self.mixture.families) - set(self.generators)
        if missing:
            raise ValueError(f"the mixture has families without a generator: {sorted(missing)}")
        for f, c in self.mixture.controllers.items():
            if c.name == "saturn" and c.settings["eval_source"] == "heldout" and evaluator is None:
                raise ValueError(
                    f"saturn ({f}) evaluates on held-out tasks: pass an evaluator, or eval_source='train'"
                )
        self._lock = threading.RLock()
        self._queue: deque[tuple[str, dict[str, Any], int, dict[str, float], Future | None]] = deque()
        self._pending: dict[str, deque[tuple[str, dict[str, Any], int, dict[str, float], float]]] = {}
        self._pending_order: deque[str] = deque()
        self.next_index = 0  # index of the next proposal
        self.consumed = 0
        self.observed = 0
        self._eval_index = 0
        self._pool: ProcessPoolExecutor | None = None
        if workers > 0:
            # fork: spawned workers would re-import the caller's __main__ (a script without a main guard
            # would recurse). The workers only run generator code, which holds no locks of the parent.
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self._pool = ProcessPoolExecutor(workers, mp_context=ctx)
        self.log_path = Path(log_path) if log_path is not None else None
        self._log = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    # ---- iteration ------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Task]:
        return self

    def __next__(self) -> Task:
        with self._lock:
            while len(self._queue) < self.prefetch * self.batch:
                self._propose_batch()
            family, cell, index, pred, fut = self._queue.popleft()
        # Wait for the worker outside the lock so observe() from a reward thread is never blocked.
        task = Task.from_dict(fut.result()) if fut is not None else self._make(family, cell, index)
        meta = {**task.meta, "family": family, "cell": cell, "stream_index": index, **pred}
        task = Task(**{**task.to_dict(), "meta": meta})
        with self._lock:
            self.consumed += 1
            queue = self._pending.setdefault(task.id, deque())
            queue.append((family, cell, index, pred, task.difficulty))
            self._pending_order.append(task.id)
            while len(self._pending_order) > MAX_PENDING:
                self._forget(self._pending_order.popleft())
        return task

    def _make(self, family: str, cell: dict[str, Any], index: int) -> Task:
        gen = self.generators[family]
        space = self.mixture.controllers[family].space
        return gen.sample(gen.resolve_params(None, space.to_params(cell)), self.seed, self.split, index)

    def _propose_batch(self) -> None:
        self._run_evaluations()  # an evaluation due before training (saturn's estimation step) comes first
        for family, cell in self.mixture.propose(self.batch):
            index = self.next_index
            self.next_index += 1
            pred = self._prediction(family, cell)
            self._queue.append((family, cell, index, pred, self._submit(family, cell, index)))
            self._write({"event": "propose", "step": index, "family": family, "cell": cell, **pred})

    def _submit(self, family: str, cell: dict[str, Any], index: int) -> Future | None:
        if self._pool is None:
            return None
        gen = self.generators[family]
        params = gen.resolve_params(None, self.mixture.controllers[family].space.to_params(cell))
        return self._pool.submit(_sample, type(gen), params, self.seed, self.split, index)

    def _prediction(self, family: str, cell: dict[str, Any]) -> dict[str, float]:
        pred = self.mixture.predict(family, cell)
        return {"predicted_p": round(pred["p"], 6), "predicted_zero_var": round(pred["p_zero_var"], 6)}

    # ---- feedback -------------------------------------------------------------------------------------
    def observe(self, task: Task | Mapping[str, Any] | str, rewards: Sequence[float]) -> bool:
        """Route one prompt's group rewards to its family's controller. Returns False (and changes
        nothing) for a task this stream did not hand out or already observed."""
        task_id = task.id if isinstance(task, Task) else task["id"] if isinstance(task, Mapping) else str(task)
        rewards = [float(r) for r in rewards]
        with self._lock:
            queue = self._pending.get(task_id)
            if not queue:
                return False
            family, cell, index, pred, difficulty = queue.popleft()
            if not queue:
                del self._pending[task_id]
            self.mixture.observe(family, cell, rewards)
            self.observed += 1
            passes = sum(r > PASS_THRESHOLD for r in rewards)
            self._write({
                "event": "observe", "step": index, "observed": self.observed, "family": family, "cell": cell,
                "params": self.mixture.controllers[family].space.to_params(cell), "difficulty": difficulty,
                "rewards": rewards, "pass_rate": passes / len(rewards) if rewards else None, **pred,
            })
            self._run_evaluations()
            return True

    def _forget(self, task_id: str) -> None:
        queue = self._pending.get(task_id)
        if queue:
            queue.popleft()
            if not queue:
                del self._pending[task_id]

    def _run_evaluations(self) -> None:
        if self.evaluator is None:
            return
        for family, ctrl in self.mixture.controllers.items():
            cells = ctrl.eval_request()
            if not cells:
                continue
            # Each held-out task is sampled `eval_samples` times (Saturn: n per task); one reward per entry.
            n = int(ctrl.settings.get("eval_samples", 1) or 1)
            tasks = []
            for cell in cells:
                gen = self.generators[family]
                params = gen.resolve_params(None, ctrl.space.to_params(cell))
                tasks.extend([gen.sample(params, self.seed, "val", self._eval_index)] * n)
                self._eval_index += 1
            rewards = list(self.evaluator(tasks))
            if len(rewards) != len(tasks):
                raise ValueError(f"the evaluator returned {len(rewards)} rewards for {len(tasks)} tasks")
            for j, cell in enumerate(cells):
                ctrl.observe_eval(cell, [float(r) for r in rewards[j * n : (j + 1) * n]])
            self._write({"event": "eval", "family": family, "cell": cells[0], "rewards": rewards})

    # ---- checkpoints ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Controller state, counters, the proposals not yet consumed and the tasks awaiting rewards."""
        with self._lock:
            return {
                "mixture": self.mixture.state_dict(),
                "next_index": self.next_index,
                "consumed": self.consumed,
                "observed": self.observed,
                "eval_index": self._eval_index,
                "queue": [[f, c, i, p] for f, c, i, p, _ in self._queue],
                "pending": {tid: [list(x) for x in q] for tid, q in self._pending.items()},
                "pending_order": list(self._pending_order),
            }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        with self._lock:
            self.mixture.load_state_dict(state["mixture"])
            self.next_index, self.consumed = int(state["next_index"]), int(state["consumed"])
            self.observed, self._eval_index = int(state["observed"]), int(state["eval_index"])
            for *_, fut in self._queue:
                if fut is not None:
                    fut.cancel()
            self._queue = deque(
                (f, dict(c), int(i), dict(p), self._submit(f, c, int(i))) for f, c, i, p in state["queue"]
            )
            self._pending = {tid: deque(tuple(x) for x in q) for tid, q in state["pending"].items()}
            self._pending_order = deque(state["pending_order"])

    # ---- Hugging Face datasets ------------------------------------------------------------------------
    def as_hf_dataset(self) -> Any:
        """A `datasets.IterableDataset` over this stream with the columns TRL's GRPOTrainer reads:
        `prompt` (chat messages), `task` (the Task as JSON, for the reward function), `task_id`, `family`.
        Use it with `shuffle_dataset=False`: a shuffle buffer would draw ~1000 tasks before the first step."""
        try:
            from datasets import Features, IterableDataset, Value
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("as_hf_dataset needs `datasets`: pip install 'taskforge[train]'") from exc
        features = Features({
            "prompt": [{"role": Value("string"), "content": Value("string")}],
            "task": Value("string"),
            "task_id": Value("string"),
            "family": Value("string"),
        })
        return IterableDataset.from_generator(_rows, features=features, gen_kwargs={"stream": _Handle(self)})

    # ---- logging and shutdown -------------------------------------------------------------------------
    def _write(self, record: dict[str, Any]) -> None:
        if self._log is not None:
            self._log.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
            self._log.flush()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> TaskStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()


class _Handle:
    """Carries the live stream into `datasets`' generator without being copied: datasets fingerprints
    and may pickle gen_kwargs, and a copy of the stream would never see the controller's updates."""

    _live: dict[int, TaskStream] = {}

    def __init__(self, stream: TaskStream) -> None:
        self.key = id(stream)
        _Handle._live[self.key] = stream

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Handle._restore, (self.key,))

    @staticmethod
    def _restore(key: int) -> _Handle:
        h = object.__new__(_Handle)
        h.key = key
        return h

    @property
    def stream(self) -> TaskStream:
        try:
            return _Handle._live[self.key]
        except KeyError:
            raise RuntimeError("the TaskStream behind this dataset lives in another process") from None


def _rows(stream: _Handle) -> Iterator[dict[str, Any]]:
    for task in stream.stream:
        yield {"prompt": task.messages, "task": task.to_json(), "task_id": task.id, "family": task.family}


def _as_generator(item: Any) -> Generator:
    if isinstance(item, Generator):
        return item
    if isinstance(item, type) and issubclass(item, Generator):
        return item()
    if isinstance(item, str):
        return get_generator(item)
    raise TypeError(f"expected a family name, Generator class or instance, got {item!r}")


