"""TaskStream: an endless iterator of Tasks whose difficulty follows a curriculum controller.

    stream = TaskStream.from_families("arithmetic", "adaptive", seed=0, log_path="run.jsonl")
    task = next(stream)                       # Proposal.from_meta(task.meta): family, cell, level, ...
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
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
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


def _sample(
    gen_cls: type[Generator], params: dict[str, Any], seed: int, split: str, index: int
) -> dict[str, Any]:
    # Runs in a worker process: the class travels by reference (module + name), the task back as a dict.
    return gen_cls().sample(params, seed, split, index).to_dict()


@dataclass(frozen=True)
class Proposal:
    """The cell a controller chose for one prompt: it travels from the controller through the Task's meta
    (`Proposal.from_meta(task.meta)`) to the run log. `index` is the prompt's position in the stream, and
    task i is `Generator.sample(params, seed, split, i)`, so a proposal regenerates its task exactly."""

    family: str
    cell: Mapping[str, Any]
    index: int
    level: int  # the nearest level of the family's ladder (`nearest_level` in meta: a cell may lie between)
    predicted_p: float
    predicted_zero_var: float

    def record(self) -> dict[str, Any]:
        """The JSON form, as stored in `Task.meta` and written to the run log."""
        return {
            "family": self.family,
            "cell": dict(self.cell),
            "stream_index": self.index,
            "nearest_level": self.level,
            "predicted_p": self.predicted_p,
            "predicted_zero_var": self.predicted_zero_var,
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Proposal:
        return cls(
            str(meta["family"]),
            dict(meta["cell"]),
            int(meta["stream_index"]),
            int(meta["nearest_level"]),
            float(meta["predicted_p"]),
            float(meta["predicted_zero_var"]),
        )


class TaskStream:
    """Build it with `TaskStream.from_families(...)` (family names and a controller name) or
    `TaskStream.from_controller(family, controller)`; `TaskStream(mixture)` takes a ready Mixture."""

    def __init__(
        self,
        mixture: Mixture,
        seed: int = 0,
        *,
        generators: Mapping[str, Generator] | None = None,
        batch: int = 16,
        prefetch: int = 2,
        workers: int = 0,
        split: str = "train",
        log_path: str | Path | None = None,
        evaluator: Evaluator | None = None,
    ) -> None:
        """`generators`: the Generator of each family of the mixture (default: the registered ones)."""
        if not isinstance(mixture, Mixture):
            raise TypeError(
                "TaskStream(mixture, ...) takes a Mixture; for family names use TaskStream.from_families(...), "
                "for one Controller TaskStream.from_controller(...)"
            )
        self.mixture = mixture
        self.generators = {f: _as_generator((generators or {}).get(f, f)) for f in mixture.families}
        self.seed = int(seed)
        self.split = split
        self.batch = max(int(batch), 1)
        self.prefetch = max(int(prefetch), 1)
        self.evaluator = evaluator
        for f, c in self.mixture.controllers.items():
            if c.name == "saturn" and c.settings["eval_source"] == "heldout" and evaluator is None:
                raise ValueError(
                    f"saturn ({f}) evaluates on held-out tasks: pass an evaluator, or eval_source='train'"
                )
        self._lock = threading.RLock()
        self._queue: deque[tuple[Proposal, Future | None]] = deque()  # proposed, not yet handed out
        # Handed out, awaiting rewards, in hand-out order: stream index -> (task id, proposal, difficulty),
        # and each task id's indices (a task drawn twice is observed twice, oldest first).
        self._pending: dict[int, tuple[str, Proposal, float]] = {}
        self._by_id: dict[str, deque[int]] = {}
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

    @classmethod
    def from_families(
        cls,
        source: Any,
        controller: str | None = "adaptive",
        seed: int = 0,
        *,
        group_size: int = 8,
        weights: Mapping[str, float] | str | None = None,
        controller_settings: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TaskStream:
        """`source`: a family name, a Generator (class or instance) or a list of them; one `controller`
        (by name) is built per family on its KnobSpace; `weights` share batches among families (fixed or
        "adaptive"). `options` are the TaskStream keywords (batch, prefetch, workers, log_path, ...)."""
        gens = {
            g.family: g for g in map(_as_generator, source if isinstance(source, list | tuple) else [source])
        }
        settings = dict(controller_settings or {})
        ctrls = {
            f: make_controller(
                controller or "adaptive",
                KnobSpace.from_generator(g),
                group_size=group_size,
                seed=seed,
                **settings,
            )
            for f, g in gens.items()
        }
        return cls(Mixture(ctrls, weights, seed=seed), seed, generators=gens, **options)

    @classmethod
    def from_controller(
        cls, source: Any, controller: Controller, seed: int = 0, **options: Any
    ) -> TaskStream:
        """One family (name or Generator) driven by one ready Controller."""
        gen = _as_generator(source)
        return cls(
            Mixture({gen.family: controller}, seed=seed), seed, generators={gen.family: gen}, **options
        )

    # ---- iteration ------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Task]:
        return self

    def __next__(self) -> Task:
        with self._lock:
            while len(self._queue) < self.prefetch * self.batch:
                self._propose_batch()
            prop, fut = self._queue.popleft()
        # Wait for the worker outside the lock so observe() from a reward thread is never blocked.
        task = Task.from_dict(fut.result()) if fut is not None else self._make(prop)
        task = Task(**{**task.to_dict(), "meta": {**task.meta, **prop.record()}})
        with self._lock:
            self.consumed += 1
            self._hold(task.id, prop, task.difficulty)
            while len(self._pending) > MAX_PENDING:
                self._release(next(iter(self._pending)))
        return task

    def _params(self, prop: Proposal) -> dict[str, Any]:
        gen = self.generators[prop.family]
        return gen.resolve_params(None, self.mixture.controllers[prop.family].space.to_params(prop.cell))

    def _make(self, prop: Proposal) -> Task:
        return self.generators[prop.family].sample(self._params(prop), self.seed, self.split, prop.index)

    def _propose_batch(self) -> None:
        self._run_evaluations()  # an evaluation due before training (saturn's estimation step) comes first
        for family, cell in self.mixture.propose(self.batch):
            pred = self.mixture.predict(family, cell)
            level = self.mixture.controllers[family].space.nearest_level(cell)
            prop = Proposal(
                family, cell, self.next_index, level, round(pred["p"], 6), round(pred["p_zero_var"], 6)
            )
            self.next_index += 1
            self._queue.append((prop, self._submit(prop)))
            self._write({"event": "propose", **prop.record()})

    def _submit(self, prop: Proposal) -> Future | None:
        if self._pool is None:
            return None
        gen = self.generators[prop.family]
        return self._pool.submit(_sample, type(gen), self._params(prop), self.seed, self.split, prop.index)

    # ---- feedback -------------------------------------------------------------------------------------
    def observe(
        self, task: Task | Mapping[str, Any] | str, rewards: Sequence[float], *, step: int | None = None
    ) -> bool:
        """Route one prompt's group rewards to its family's controller; `step` (the trainer's) goes to the
        run log. Returns False (and changes nothing) for a task this stream did not hand out or already
        observed."""
        task_id = (
            task.id if isinstance(task, Task) else task["id"] if isinstance(task, Mapping) else str(task)
        )
        rewards = [float(r) for r in rewards]
        with self._lock:
            queue = self._by_id.get(task_id)
            if not queue:
                return False
            _, prop, difficulty = self._release(queue[0])
            self.mixture.observe(prop.family, prop.cell, rewards)
            self.observed += 1
            passes = sum(r > PASS_THRESHOLD for r in rewards)
            self._write(
                {
                    "event": "observe",
                    "step": step,
                    "task_id": task_id,
                    "observed": self.observed,
                    **prop.record(),
                    "params": self._params(prop),
                    "difficulty": difficulty,
                    "rewards": rewards,
                    "pass_rate": passes / len(rewards) if rewards else None,
                }
            )
            self._run_evaluations()
            return True

    def _hold(self, task_id: str, prop: Proposal, difficulty: float) -> None:
        self._pending[prop.index] = (task_id, prop, difficulty)
        self._by_id.setdefault(task_id, deque()).append(prop.index)

    def _release(self, index: int) -> tuple[str, Proposal, float]:
        entry = self._pending.pop(index)
        queue = self._by_id[entry[0]]
        queue.remove(index)
        if not queue:
            del self._by_id[entry[0]]
        return entry

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
                "queue": [p.record() for p, _ in self._queue],
                "pending": [[tid, p.record(), d] for tid, p, d in self._pending.values()],
            }

    def load_state_dict(self, state: Mapping[str, Any], *, replay: bool = False) -> None:
        """Restore a `state_dict`. `replay=True` hands the tasks that were out and not yet observed out
        again, first and in their order: for a consumer that lost them when it stopped (a trainer's
        dataloader had pulled the next step's prompts before the checkpoint was written)."""
        with self._lock:
            self.mixture.load_state_dict(state["mixture"])
            self.next_index, self.consumed = int(state["next_index"]), int(state["consumed"])
            self.observed, self._eval_index = int(state["observed"]), int(state["eval_index"])
            for _, fut in self._queue:
                if fut is not None:
                    fut.cancel()
            queue = [Proposal.from_meta(r) for r in state["queue"]]
            pending = [(str(tid), Proposal.from_meta(r), float(d)) for tid, r, d in state["pending"]]
            self._pending, self._by_id = {}, {}
            if replay:
                queue = [p for _, p, _ in pending] + queue
                self.consumed -= len(pending)
            else:
                for tid, p, d in pending:
                    self._hold(tid, p, d)
            self._queue = deque((p, self._submit(p)) for p in queue)

    # ---- Hugging Face datasets ------------------------------------------------------------------------
    def as_hf_dataset(self) -> Any:
        """A `datasets.IterableDataset` over this stream with the columns TRL's GRPOTrainer reads:
        `prompt` (chat messages), `task` (the Task as JSON, for the reward function), `task_id`, `family`.
        Use it with `shuffle_dataset=False`: a shuffle buffer would draw ~1000 tasks before the first step."""
        try:
            from datasets import Features, IterableDataset, Value
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("as_hf_dataset needs `datasets`: pip install 'taskforge[train]'") from exc
        features = Features(
            {
                "prompt": [{"role": Value("string"), "content": Value("string")}],
                "task": Value("string"),
                "task_id": Value("string"),
                "family": Value("string"),
            }
        )
        return IterableDataset.from_generator(_rows, features=features, gen_kwargs={"stream": _Handle(self)})

    # ---- logging and shutdown -------------------------------------------------------------------------
    def log_record(self, record: Mapping[str, Any]) -> None:
        """Append a record of the caller's (a trainer's step metrics) to the run log, in order with ours."""
        with self._lock:
            self._write(dict(record))

    def _write(self, record: dict[str, Any]) -> None:
        if self._log is not None:
            self._log.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
            self._log.flush()

    def close(self) -> None:
        if _Handle._live.get(id(self)) is self:
            del _Handle._live[id(self)]
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
    and may pickle gen_kwargs, and a copy of the stream would never see the controller's updates. The
    registry holds streams weakly (and `close` drops them), so a finished run's stream can be freed."""

    _live: weakref.WeakValueDictionary[int, TaskStream] = weakref.WeakValueDictionary()

    def __init__(self, stream: TaskStream) -> None:
        self.key = id(stream)
        self._stream: TaskStream | None = stream  # the dataset's own handle keeps its stream alive
        _Handle._live[self.key] = stream

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Handle._restore, (self.key,))

    @staticmethod
    def _restore(key: int) -> _Handle:
        h = object.__new__(_Handle)
        h.key, h._stream = key, None
        return h

    @property
    def stream(self) -> TaskStream:
        stream = self._stream or _Handle._live.get(self.key)
        if stream is None:
            raise RuntimeError("the TaskStream behind this dataset was closed or lives in another process")
        return stream


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
