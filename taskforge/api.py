"""The plain Python API: `generate` tasks, `verify` one response or `verify_many` of them."""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from taskforge.generator import Generator
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
    block = gen.sampler_many(resolved, seed, split)
    # Blocks through the batch path, small first so that taking a few items costs a few items.
    i, size = start, 8
    while n is None or i < start + n:
        count = size if n is None else min(size, start + n - i)
        yield from block(i, count)
        i, size = i + count, min(2 * size, 512)


def verify(task: Task | Mapping[str, Any], response: Any) -> Verdict:
    """Check one response against a task: a Task, its dict form, or a row read back from our JSONL or
    Parquet files (also through `datasets.load_dataset`). Never raises on bad responses."""
    if type(task) is not Task:
        task = as_task(task)
    return get_generator(task.family).safe_verify(task, response)


def as_task(task: Task | Mapping[str, Any] | str) -> Task:
    """A Task from a Task, a task's JSON text, or a row of any file we write (see `Task.from_dict`)."""
    if isinstance(task, Task):
        return task
    if isinstance(task, str):
        return Task.from_json(task)
    return Task.from_dict(task)


def verify_many(
    tasks: Sequence[Task], responses: Sequence[Any], workers: int = 1, pool: Any = None
) -> list[Verdict]:
    """Verify a mixed batch, one Verdict per pair in order: each family's share goes to its
    `Generator.verify_many` in one call (the code family runs it as one sandbox round). `workers` > 1
    splits the share of a family that keeps the default loop over threads, which pays off only for
    verifiers that wait outside the GIL (DuckDB). The trainer's reward, `taskforge verify` and
    `taskforge eval` all verify through here."""
    if len(tasks) != len(responses):
        raise ValueError(f"{len(tasks)} tasks for {len(responses)} responses")
    if pool is not None:  # a remote backend with the same method, e.g. integrations.ray.VerifierPool
        return pool.verify_many(tasks, responses)
    out: list[Verdict | None] = [None] * len(tasks)
    by_family: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(tasks):
        by_family[t.family].append(i)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for family, idx in by_family.items():
            gen = get_generator(family)
            own_batch = type(gen).verify_many is not Generator.verify_many
            parts = [idx] if own_batch or workers <= 1 else [idx[w::workers] for w in range(workers)]
            futures = [
                pool.submit(_verify_share, gen, [tasks[i] for i in part], [responses[i] for i in part])
                for part in parts
            ]
            for part, future in zip(parts, futures, strict=True):
                for i, v in zip(part, future.result(), strict=True):
                    out[i] = v
    return out  # type: ignore[return-value]


def _verify_share(gen: Generator, tasks: list[Task], responses: list[Any]) -> list[Verdict]:
    try:
        got = list(gen.verify_many(tasks, responses))
    except Exception:  # a broken batch path falls back to the total, one-by-one verifier
        got = []
    if len(got) != len(tasks):
        got = [None] * len(tasks)
    return [
        v if isinstance(v, Verdict) else gen.safe_verify(t, r)
        for v, t, r in zip(got, tasks, responses, strict=True)
    ]


@functools.lru_cache(maxsize=4096)
def _label(family: str, params_json: str) -> str:
    params = json.loads(params_json)
    try:
        level = generator_class(family).level_of(params)
    except KeyError:
        level = None
    if level is not None:
        return f"L{level}"
    # No knobs at all: a problem loaded from a set (HumanEval, ...), not a point of the family's space.
    return ",".join(f"{k}={v}" for k, v in sorted(params.items())) or "loaded"


def level_label(task: Task) -> str:
    """The label pass rates are reported under: `L<i>` for a task on its family's ladder, else its knobs."""
    if "level" in task.meta:
        return f"L{task.meta['level']}"
    return _label(task.family, canonical_json(task.params))
