"""Strict JSON answers: size and nesting limits checked before parsing, a parser that refuses what JSON
should not hold, schema validation with a compiled-validator cache, and the prompt's constraints.

Pure functions of the task record and the response.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import jsonschema_rs

from taskforge.cache import IdentityLRU
from taskforge.extract import extract_answer, extract_fenced

MAX_RESPONSE_CHARS = 2_000_000  # a whole response beyond this is rejected before anything is copied
MIN_ANSWER_CHARS = 4096  # the answer limit of a task is max(this, 16 x its gold answer)
MAX_DEPTH = 32  # nesting limit of an answer; generated instances stay far below it
MAX_FENCES = 64  # code fences in a response without an <answer> block

# A whole JSON string (escapes included), a bracket, or a lone quote that opens a string never closed.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|"', re.DOTALL)


def nesting_depth(text: str, limit: int) -> int:
    """Deepest [ / { nesting outside strings, stopping as soon as it exceeds `limit` (linear, no parse).

    An unterminated string ends the scan: json.loads fails there too, without going any deeper."""
    depth = peak = 0
    for m in _TOKEN.finditer(text):
        c = text[m.start()]
        if c == '"':
            if m.end() - m.start() == 1:
                break
        elif c in "[{":
            depth += 1
            if depth > peak:
                peak = depth
                if peak > limit:
                    return peak
        else:
            depth -= 1
    return peak


class StrictJSONError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise StrictJSONError(f"duplicate key {dup[:40]!r}")
    return out


def _reject_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses to inf in Python; JSON has no infinity
        raise StrictJSONError(f"number {text[:40]} overflows")
    return value


# Built once: `json.loads` with hooks builds a new decoder on every call. Sharing one across threads is
# what json.loads does with its default decoder: a scanner's only mutable state is its key memo.
_STRICT = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_reject_constant, parse_float=_finite_float
)
_SCAN = json.JSONDecoder().scan_once  # the C scanner, no hooks: (value, end) or StopIteration
_SPACE = json.decoder.WHITESPACE.match  # the whitespace json.loads allows around a value


def _census(value: Any, room: int) -> int:
    """Object keys in a value parsed without hooks, or -1 when it nests deeper than `room` levels or
    holds a non-finite float (NaN, Infinity, or a number that overflowed)."""
    t = type(value)
    if t is float:
        return 0 if value - value == 0.0 else -1  # inf - inf and nan - nan are nan
    if t is not dict and t is not list:
        return 0
    if room <= 0:
        return -1
    count = len(value) if t is dict else 0
    for item in value.values() if t is dict else value:
        t = type(item)
        if t is float:
            if item - item != 0.0:
                return -1
        elif t is dict or t is list:
            inner = _census(item, room - 1)
            if inner < 0:
                return -1
            count += inner
    return count


# A whole JSON string; in a text json.loads accepted, these are exactly its strings.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def parse_strict(text: str, max_chars: int, max_depth: int = MAX_DEPTH) -> tuple[Any, str | None]:
    """(value, None) or (None, why). Limits are checked before json.loads sees the text.

    First the hook-free C scanner: when the value it reads is one the strict path accepts, it is the
    very value that path returns. The strict path differs only by refusing (nesting first, then
    duplicate keys, NaN/Infinity and overflowing numbers), and each refusal shows in the plain value:
    depth and non-finite floats directly, duplicate keys by count: outside strings a ':' separates
    exactly one key from its value, and a key given twice leaves the value with fewer keys than the text
    has ':' outside strings. Anything else (refusals, syntax errors) takes the strict path, which words
    the reason exactly as before."""
    if len(text) > max_chars:
        return None, f"answer has {len(text)} characters, limit {max_chars}"
    try:
        # What json.loads does, less its Python layers: skip whitespace, scan one value, skip whitespace.
        # A BOM (json.loads has its own message for it) does not start a value: the scan stops there.
        start = _SPACE(text).end() if text[:1] in " \t\n\r" else 0
        value, end = _SCAN(text, start)
        if end == len(text) or _SPACE(text, end).end() == len(text):
            keys = _census(value, max_depth)
            if keys >= 0 and (text.count(":") == keys or _STRING.sub("", text).count(":") == keys):
                return value, None
    except (StopIteration, ValueError, RecursionError):
        pass
    return _parse_refusing(text, max_depth)


def _parse_refusing(text: str, max_depth: int) -> tuple[Any, str | None]:
    if nesting_depth(text, max_depth) > max_depth:
        return None, f"nesting deeper than {max_depth}"
    try:
        if text.startswith("\ufeff"):  # what json.loads says before it decodes
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _STRICT.decode(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, StrictJSONError, int digit limit
        return None, f"{type(exc).__name__}: {exc}"[:200]
    return value, None


_LEAVES = frozenset((str, int, float, bool, type(None)))


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: true/false are not numbers, 1 == 1.0, object key order is irrelevant."""
    # Loops rather than all(<generator>), and leaves of one type compared in the loop: the expected
    # value of an extract task has hundreds of nodes. Mixed types go through `_json_equal_mixed`.
    t = type(a)
    if t is type(b):
        if t is dict:
            if a.keys() != b.keys():
                return False
            for k, x in a.items():
                y = b[k]
                if type(x) is type(y) and type(x) in _LEAVES:
                    if x != y:
                        return False
                elif not json_equal(x, y):
                    return False
            return True
        if t is list:
            if len(a) != len(b):
                return False
            for x, y in zip(a, b, strict=True):
                if type(x) is type(y) and type(x) in _LEAVES:
                    if x != y:
                        return False
                elif not json_equal(x, y):
                    return False
            return True
        if t in _LEAVES:
            return a == b
    return _json_equal_mixed(a, b)


def _json_equal_mixed(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# The G responses to one prompt share one schema object: the cache finds it by identity, without hashing.
VALIDATORS: IdentityLRU[Any] = IdentityLRU(512)


# The schema and validator of the latest call: the G responses to one prompt come one after another, and
# this costs one identity test where the LRU costs two calls and a closure. One tuple, swapped whole, so
# a thread never sees a schema with another's validator.
_LATEST: tuple[Any, Any] = (None, None)


def compiled_validator(schema: dict[str, Any]) -> Any:
    """A jsonschema-rs Draft 2020-12 validator, compiled once per schema (LRU keyed by its content)."""
    global _LATEST
    latest = _LATEST
    if latest[0] is schema:
        return latest[1]
    validator = VALIDATORS.get(
        schema, lambda: jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
    )
    _LATEST = (schema, validator)
    return validator


def clear_validators() -> None:
    """Forget every compiled validator (what a cold benchmark starts from)."""
    global _LATEST
    _LATEST = (None, None)
    VALIDATORS.clear()


def schema_error(schema: dict[str, Any], value: Any) -> str | None:
    """None when `value` validates, else the first error (path and message, truncated)."""
    latest = _LATEST
    validator = latest[1] if latest[0] is schema else compiled_validator(schema)
    if validator.is_valid(value):
        return None
    err = next(iter(validator.iter_errors(value)), None)
    if err is None:
        return "invalid"
    where = err.instance_path
    path = "".join([f"[{p}]" if isinstance(p, int) else f".{p}" for p in where]) if where else "(root)"
    return f"{path}: {err.message}"[:300]


def render_path(path: list[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out or "(the whole object)"


def lookup(value: Any, path: list[str | int]) -> tuple[bool, Any]:
    for p in path:
        if isinstance(p, int):
            if not isinstance(value, list) or p >= len(value):
                return False, None
        elif not isinstance(value, dict) or p not in value:
            return False, None
        value = value[p]
    return True, value


def constraint_holds(value: Any, c: dict[str, Any]) -> bool:
    op, path = c["op"], c["path"]
    if op == "absent":
        found, parent = lookup(value, path[:-1])
        return found and isinstance(parent, dict) and path[-1] not in parent
    found, node = lookup(value, path)
    if not found:
        return False
    if op == "equals":
        return json_equal(node, c["value"])
    return isinstance(node, list) and len(node) == c["value"]  # "length"


def read_json_answer(response: str) -> tuple[str | None, str | None]:
    """(text, None): the <answer> block (a ```json fence inside it unwrapped), else the last fenced json
    block; (None, None) when there is neither; (None, why) when the fences are too many to scan."""
    text = extract_answer(response)
    if text is not None and not text.startswith("```"):
        return text, None
    source = response if text is None else text
    # A real answer has a few fences at most; thousands are noise, refused before any scan.
    if source.count("```") > MAX_FENCES:
        return None, f"more than {MAX_FENCES} code fences"
    inner = extract_fenced(source, "json")
    return (text if inner is None else inner), None
