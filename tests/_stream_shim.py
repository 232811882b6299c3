"""A thin stand-in for `taskforge.stream.TaskStream` (issue 5), used by the trainer tests only until the
real one is installed. Same interface as the real one for what the trainer uses: built from a Mixture,
an endless iterator of Tasks whose meta carries family, cell and the controller's prediction,
`observe(task_id, rewards)`, `state_dict()` (controller state under "mixture"), `load_state_dict()`,
`as_hf_dataset()`, `log_path`, `close()`."""

from __future__ import annotations

import json
from pathlib import Path

from taskforge.registry import get_generator
from taskforge.task import Task


class TaskStream:
    def __init__(self, mixture, seed=0, *, batch=16, prefetch=1, log_path=None, **_):
        self.mixture, self.seed, self.batch = mixture, seed, batch
        self.next_index, self.observed = 0, 0
        self.queue: list = []
        self.pending: dict[str, list] = {}
        self.log_path = Path(log_path) if log_path else None

    def __iter__(self):
        return self

    def __next__(self):
        if not self.queue:
            self.queue = [[f, c] for f, c in self.mixture.propose(self.batch)]
        family, cell = self.queue.pop(0)
        space = self.mixture.controllers[family].space
        gen = get_generator(family)
        task = gen.sample(gen.resolve_params(None, space.to_params(cell)), self.seed, "train", self.next_index)
        self.next_index += 1
        pred = self.mixture.predict(family, cell)
        meta = {**task.meta, "family": family, "cell": cell, "predicted_zero_var": pred["p_zero_var"]}
        self.pending[task.id] = [family, cell]
        return Task(**{**task.to_dict(), "meta": meta})

    def observe(self, task_id, rewards):
        family, cell = self.pending.pop(task_id)
        self.observed += 1
        self.mixture.observe(family, cell, rewards)
        if self.log_path:
            with self.log_path.open("a") as fh:
                fh.write(json.dumps({"event": "observe", "family": family, "cell": cell, "rewards": list(rewards)}) + "\n")
        return True

    def state_dict(self):
        return {"mixture": self.mixture.state_dict(), "next_index": self.next_index, "queue": self.queue,
                "pending": self.pending}

    def load_state_dict(self, state):
        self.mixture.load_state_dict(state["mixture"])
        self.next_index, self.queue, self.pending = state["next_index"], state["queue"], state["pending"]

    def as_hf_dataset(self):
        from datasets import IterableDataset

        def rows():
            for task in self:
                yield {"prompt": task.messages, "task": task.to_json()}

        return IterableDataset.from_generator(rows)

    def close(self):
        pass
