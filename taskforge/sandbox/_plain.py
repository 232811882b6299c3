"""Plain data across the sandbox boundary: a strict, type-tagged JSON codec and an exact comparison.

Only None, bool, int, float, str, list, tuple, dict, set and frozenset cross, and only their exact types
(an `int` subclass whose `__eq__` says yes to everything is refused). JSON keeps None/bool/int/float/str/
list apart; the rest are one-key objects: {"t": [...]} tuple, {"s": [...]} set, {"z": [...]} frozenset,
{"d": [[k, v], ...]} dict, {"f": "nan"|"inf"|"-inf"} non-finite float. Pickle never crosses.

This file is stdlib-only: the sandbox worker imports it by path, inside bubblewrap, without taskforge.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 100
_SCALARS = (type(None), bool, int, str)


class PlainError(ValueError):
    """A value that is not plain data, or a payload that does not decode to plain data."""


def encode(value: Any, _depth: int = 0) -> Any:
    """A JSON-ready tagged form of a plain value; raises PlainError for anything else."""
    if _depth > MAX_DEPTH:
        raise PlainError("nested too deep")
    t = type(value)
    if t in _SCALARS:
        return value
    if t is float:
        return value if math.isfinite(value) else {"f": repr(value)}
    if t is list:
        return [encode(v, _depth + 1) for v in value]
    if t is tuple:
        return {"t": [encode(v, _depth + 1) for v in value]}
    if t is dict:
        return {"d": [[encode(k, _depth + 1), encode(v, _depth + 1)] for k, v in value.items()]}
    if t is set or t is frozenset:
        # Sorted by spelling: a set of strings iterates in a salted order, the bytes must not.
        items = sorted((encode(v, _depth + 1) for v in value), key=_spelling)
        return {"s" if t is set else "z": items}
    raise PlainError(f"not plain data: {t.__name__}")


def dumps(value: Any) -> str:
    return _spelling(encode(value))


def decode(obj: Any, _depth: int = 0) -> Any:
    """The plain value of a tagged form (from `json.loads`); raises PlainError on anything unexpected."""
    if _depth > MAX_DEPTH:
        raise PlainError("nested too deep")
    t = type(obj)
    if t in _SCALARS:
        return obj
    if t is float:
        return obj
    if t is list:
        return [decode(v, _depth + 1) for v in obj]
    if t is dict and len(obj) == 1:
        ((tag, body),) = obj.items()
        if tag == "f" and body in ("nan", "inf", "-inf"):
            return float(body)
        if type(body) is not list:
            raise PlainError(f"bad tagged value {tag!r}")
        try:
            if tag == "t":
                return tuple(decode(v, _depth + 1) for v in body)
            if tag in ("s", "z"):
                items = [decode(v, _depth + 1) for v in body]
                return set(items) if tag == "s" else frozenset(items)
            if tag == "d":
                out = {}
                for pair in body:
                    if type(pair) is not list or len(pair) != 2:
                        raise PlainError("bad dict entry")
                    out[decode(pair[0], _depth + 1)] = decode(pair[1], _depth + 1)
                return out
        except TypeError as exc:  # an unhashable set element or dict key
            raise PlainError(str(exc)) from None
    raise PlainError(f"not a plain-data form: {t.__name__}")


def _no_constants(name: str) -> Any:
    raise PlainError(f"bare {name} in payload")


def loads(text: str | bytes) -> Any:
    """Strict parse of `dumps` output: no NaN literals, bounded nesting, exact tags."""
    try:
        return decode(json.loads(text, parse_constant=_no_constants))
    except PlainError:
        raise
    except (ValueError, TypeError, RecursionError, MemoryError) as exc:
        raise PlainError(f"undecodable payload: {type(exc).__name__}") from None


def _spelling(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def same(a: Any, b: Any, tol: float = 0.0) -> bool:
    """Exact equality of plain values: types must match at every level (1, 1.0 and True all differ).

    Floats compare with `tol` (relative and absolute) when it is non-zero, NaN equals NaN.
    """
    t = type(a)
    if t is not type(b):
        return False
    if t is float:
        if a == b or (math.isnan(a) and math.isnan(b)):
            return True
        return tol > 0 and math.isclose(a, b, rel_tol=tol, abs_tol=tol)
    if t is list or t is tuple:
        return len(a) == len(b) and all(same(x, y, tol) for x, y in zip(a, b, strict=True))
    if t is dict:
        if len(a) != len(b):
            return False
        keyed = {dumps(k): v for k, v in b.items()}
        for k, v in a.items():
            other = keyed.get(dumps(k), _MISSING)
            if other is _MISSING or not same(v, other, tol):
                return False
        return True
    if t is set or t is frozenset:
        return len(a) == len(b) and sorted(map(dumps, a)) == sorted(map(dumps, b))
    return a == b


_MISSING = object()
