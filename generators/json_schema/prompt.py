"""Prompt text of a JSON-schema task: the schema shown compactly, the prose of extract mode, and the
constraints of conform mode."""

from __future__ import annotations

import json
import random
from json.encoder import encode_basestring
from typing import Any

from taskforge.generators.json_schema.strict import render_path


def pretty_json(value: Any) -> str:
    """Indented JSON whose small parts stay on one line (about half the characters of indent=2)."""
    return _pretty(value, "")[0]


def _scalar(value: Any) -> str:
    # What json.dumps writes, without its per-call setup (schemas have hundreds of scalars).
    if isinstance(value, str):
        return encode_basestring(value)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (int, float)):
        return float.__repr__(value) if isinstance(value, float) else int.__repr__(value)
    return json.dumps(value, ensure_ascii=False)  # empty containers


def _pretty(value: Any, indent: str) -> tuple[str, str]:
    # Returns (pretty, flat); building both bottom-up keeps it linear in the size of the value.
    if not isinstance(value, (dict, list)) or not value:
        flat = _scalar(value)
        return flat, flat
    inner = indent + "  "
    if isinstance(value, dict):
        keys = [encode_basestring(k) for k in value]
        kids = [_pretty(v, inner) for v in value.values()]
        flat = "{" + ", ".join(f"{k}: {f}" for k, (_, f) in zip(keys, kids, strict=True)) + "}"
        rows = [f"{inner}{k}: {p}" for k, (p, _) in zip(keys, kids, strict=True)]
        opened, closed = "{", "}"
    else:
        kids = [_pretty(v, inner) for v in value]
        flat = "[" + ", ".join(f for _, f in kids) + "]"
        rows = [inner + p for p, _ in kids]
        opened, closed = "[", "]"
    if len(flat) <= 88:
        return flat, flat
    return opened + "\n" + ",\n".join(rows) + "\n" + indent + closed, flat


def _facts(value: Any, path: list[str | int]) -> list[tuple[list[str | int], str]]:
    """(path, statement) for every leaf, empty container and array length of an instance."""
    where = f"`{render_path(path)}`"
    if isinstance(value, dict):
        if not value:
            return [(path, f"{where} is an empty object")]
        return [f for k, v in value.items() for f in _facts(v, [*path, k])]
    if isinstance(value, list):
        head = [(path, f"{where} is an empty list" if not value else f"{where} has {len(value)} item(s)")]
        return head + [f for i, v in enumerate(value) for f in _facts(v, [*path, i])]
    return [(path, f"{where} is {json.dumps(value, ensure_ascii=False)}")]


_TEMPLATES = ("{fact}.", "Note that {fact}.", "According to the record, {fact}.", "Also, {fact}.")


def prose(instance: dict[str, Any], rng: random.Random, shuffle: bool) -> str:
    facts = [s for _, s in _facts(instance, [])]
    if shuffle:
        rng.shuffle(facts)
    return " ".join(rng.choice(_TEMPLATES).format(fact=f) for f in facts)


def draw_constraints(instance: Any, omitted: list[list[str | int]], n: int, rng: random.Random) -> list[dict]:
    pool: list[dict[str, Any]] = []

    def walk(v: Any, path: list[str | int]) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, [*path, k])
        elif isinstance(v, list):
            pool.append({"op": "length", "path": path, "value": len(v)})
            for i, x in enumerate(v):
                walk(x, [*path, i])
        else:
            pool.append({"op": "equals", "path": path, "value": v})

    walk(instance, [])
    pool += [{"op": "absent", "path": p} for p in omitted]
    return rng.sample(pool, min(n, len(pool)))


def keywords_used(schema: Any) -> list[str]:
    """Sorted schema keywords (not property or $defs names), for dataset statistics."""
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            found.update(node)
            for key, sub in node.items():
                stack.extend(sub.values() if key in ("properties", "$defs") else [sub])
    return sorted(found)


def describe(c: dict[str, Any]) -> str:
    where = f"`{render_path(c['path'])}`"
    if c["op"] == "equals":  # a leaf: `_scalar` writes what json.dumps would, without its setup
        return f"{where} must equal {_scalar(c['value'])}"
    if c["op"] == "length":
        return f"{where} must have exactly {c['value']} item(s)"
    return f"{where} must be left out"
