"""Mutations: near-miss instances for corrupt answers and the validator agreement test."""

from __future__ import annotations

import json
import random
from typing import Any

from taskforge.generators.json_schema.strict import lookup


def _spots(value: Any, path: list[str | int], out: list[list[str | int]]) -> None:
    out.append(path)
    if isinstance(value, dict):
        for k, v in value.items():
            _spots(v, [*path, k], out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _spots(v, [*path, i], out)


def _mutated_value(v: Any, rng: random.Random) -> Any:
    if isinstance(v, bool):
        return rng.choice((not v, 1, "true"))
    if isinstance(v, (int, float)):
        return rng.choice((v + 1, v - 1, v + 0.5, v * 1000 + 7, -v - 3, str(v), None))
    if isinstance(v, str):
        return rng.choice((v + "x", v[: len(v) // 2], "", v.upper(), v + v, v[::-1], 12, "zz-" + v, v + "-1"))
    if isinstance(v, list):
        return rng.choice(([*v, *v[:1]], v[:-1], [], [*v, 0], {"items": v}))
    if isinstance(v, dict):
        keys = list(v)
        choices: list[Any] = [{**v, "zz_extra": 1}, [], "x"]
        if keys:
            drop = rng.choice(keys)
            choices.append({k: x for k, x in v.items() if k != drop})
        return rng.choice(choices)
    return rng.choice((0, "null", False, {}))


def mutate(value: Any, rng: random.Random) -> Any:
    """A copy of a JSON value with one spot changed (type, bound, length, key dropped or added)."""
    spots: list[list[str | int]] = []
    _spots(value, [], spots)
    path = rng.choice(spots)
    if not path:
        return _mutated_value(value, rng)
    copy = json.loads(json.dumps(value))
    _, parent = lookup(copy, path[:-1])
    parent[path[-1]] = _mutated_value(parent[path[-1]], rng)
    return copy
