"""A thin stand-in for `taskforge.stream.TaskStream` (issue 5), used only until the real one lands.

Same interface: an endless iterator of Tasks whose meta carries their cell, `observe(task_id, rewards)`,
`state_dict()`, `load_state_dict()`, `as_hf_dataset()`, `log_path`.
"""

from __future__ import annotations

import json
from pathlib import Path

from taskforge.registry import get_generator


class TaskStream:
    def __init__(self, source, controller=None, seed=0, log_path=None, batch=8):
        from taskforge.curricula import Mixture

        self.mixture = source if isinstance(source, Mixture) else None
        self.controller = self.mixture if self.mixture is not None else controller
        self.single = None if self.mixture is not None else (source.family, controller)
        self.seed, self.batch, self.index = seed, batch, 0
        self.pending: dict[str, tuple[str, dict]] = {}
        self.buffer: list = []
        self.log_path = Path(log_path) if log_path else None
        self.observed = 0

    def _controller(self, family):
        return self.mixture.controllers[family] if self.mixture is not None else self.single[1]

    def __iter__(self):
        return self

    def __next__(self):
        if not self.buffer:
            if self.mixture is not None:
                props = self.mixture.propose(self.batch)
            else:
                props = [(self.single[0], c) for c in self.single[1].propose(self.batch)]
            self.buffer = props
        family, cell = self.buffer.pop(0)
        space = self._controller(family).space
        task = get_generator(family).sample(space.to_params(cell), self.seed, "train", self.index)
        self.index += 1
        task.meta["cell"] = dict(cell)
        self.pending[task.id] = (family, dict(cell))
        return task

    def observe(self, task_id, rewards):
        family, cell = self.pending.pop(task_id)
        self.observed += 1
        if self.mixture is not None:
            self.mixture.observe(family, cell, rewards)
        else:
            self.single[1].observe(cell, rewards)
        if self.log_path:
            with self.log_path.open("a") as fh:
                fh.write(json.dumps({"event": "observe", "family": family, "cell": cell, "rewards": list(rewards)}) + "\n")

    def state_dict(self):
        return {"index": self.index, "controller": self.controller.state_dict(), "buffer": self.buffer,
                "pending": self.pending}

    def load_state_dict(self, state):
        self.index = state["index"]
        self.controller.load_state_dict(state["controller"])
        self.buffer = [tuple(x) for x in state["buffer"]]
        self.pending = {k: tuple(v) for k, v in state["pending"].items()}

    def as_hf_dataset(self):
        from datasets import IterableDataset

        def rows():
            for task in self:
                yield {"prompt": task.messages, "task": task.to_json()}

        return IterableDataset.from_generator(rows)
