"""The plain Python API: `generate` tasks, `verify` responses."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

from taskforge.registry import generator_class, get_generator
from taskforge.task import Task, Verdict, canonical_json


def generate(
    family: str,
    n: int | None,
    *,
    level: int | None = None,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    split: str = "train",
    start: int = 0,
) -> Iterator[Task]:
    """Yield tasks `start .. start+n-1` of a family (endless when n is None).

    `level` picks a rung of the family's ladder (0 = easiest); `params` override single knobs.
    """
    gen = get_generator(family)
    resolved = gen.resolve_params(level, params)
    sample = gen.sampler(resolved, seed, split)
    i = start
    while n is None or i < start + n:
        yield sample(i)
        i += 1


def verify(task: Task | dict[str, Any], response: Any) -> Verdict:
    """Check one response against a task (a Task or its dict form). Never raises on bad responses."""
    if isinstance(task, dict):
        task = Task.from_dict(task)
    return get_generator(task.family).safe_verify(task, response)


@functools.lru_cache(maxsize=4096)
def _label(family: str, params_json: str) -> str:
    params = json.loads(params_json)
    try:
        level = generator_class(family).level_of(params)
    except KeyError:
        level = None
    if level is not None:
        return f"L{level}"
    return ",".join(f"{k}={v}" for k, v in sorted(params.items()))


def level_label(task: Task) -> str:
    """The label pass rates are reported under: `L<i>` for a task on its family's ladder, else its knobs."""
    if "level" in task.meta:
        return f"L{task.meta['level']}"
    return _label(task.family, canonical_json(task.params))
