"""The two records every part of taskforge exchanges: a Task (one dataset row) and a Verdict."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

REASONS = ("ok", "wrong", "no_answer", "malformed", "timeout", "error", "rejected")
_REASON_SET = frozenset(REASONS)


# Built once: `json.dumps` with non-default options constructs a new encoder on every call, which is a
# measurable share of generating a small task (ids, seeds and split buckets each encode once per item).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(obj: Any) -> str:
    """One spelling per value: sorted keys, no spaces, no NaN. Used for ids, seeds and files."""
    return _CANONICAL.encode(obj)


def content_id(family: str, prompt: str, check: Any) -> str:
    """Content hash of a problem: equal problems get equal ids, whatever seed produced them."""
    digest = hashlib.blake2b(canonical_json([family, prompt, check]).encode(), digest_size=12)
    return digest.hexdigest()


@dataclass(frozen=True)
class Task:
    """One verifiable task. Everything a verifier needs is in `check`; `answer` is never shown to a model."""

    id: str
    family: str
    version: str
    params: dict[str, Any]
    difficulty: float
    seed: int
    split: str
    index: int
    prompt: str
    messages: list[dict[str, str]]
    answer: str
    check: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in TASK_FIELDS}

    def to_json(self) -> str:
        return _COMPACT.encode(self.to_dict())

    def placed(self, seed: int, split: str, index: int) -> Task:
        """This problem as item `index` of (seed, split): `dataclasses.replace` without its per-field
        Python loop, which cost twice as much and showed in the profile of generating small tasks."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)  # a frozen dataclass keeps its fields in __dict__
        new.__dict__.update(seed=seed, split=split, index=index)
        return new

    @classmethod
    def assemble(cls, fields: dict[str, Any]) -> Task:
        """A Task whose attribute dict is `fields` itself: a fresh dict holding exactly `TASK_FIELDS`, in
        that order. It skips the frozen dataclass's per-field `object.__setattr__` (a batch path builds
        tens of thousands a second); the caller vouches for the fields, and
        `tests/core/test_generate_many.py` checks such records equal the validated path's."""
        new = object.__new__(cls)
        object.__setattr__(new, "__dict__", fields)
        return new

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Task:
        """A Task from its dict form, or from a row of any file taskforge writes, read by any reader:

        - our Parquet files and `datasets.load_dataset("parquet", ...)`: `params`, `check` and `meta`
          are JSON text;
        - `datasets.load_dataset("json", ...)`: Arrow merges the objects of all rows into one struct
          type, so a key one row lacks comes back as None; keys added that way are dropped again
          (for `check`, only when that restores the content hash in `id`).

        Extra columns are ignored. Raises ValueError when a field is missing or unreadable.
        """
        missing = set(TASK_FIELDS) - set(row) - {"meta"}
        if missing:
            raise ValueError(f"task record lacks fields: {sorted(missing)}")
        values = {k: row[k] for k in TASK_FIELDS if k in row}
        for col in ("params", "check", "meta"):
            value = values.get(col)
            if isinstance(value, str):
                try:
                    values[col] = value = json.loads(value)
                except json.JSONDecodeError:
                    raise ValueError(f"task field {col!r} is neither an object nor its JSON text") from None
            if value is None and col == "meta":
                values[col] = value = {}
            if not isinstance(value, dict):
                raise ValueError(f"task field {col!r} must be an object, got {type(value).__name__}")
        values["messages"] = [dict(m) for m in values["messages"]]
        values["params"] = _drop_nones(values["params"])  # no knob takes None
        family, prompt, check = values["family"], values["prompt"], values["check"]
        if content_id(family, prompt, check) != values["id"]:
            merged = _drop_nones(check)
            if merged != check and content_id(family, prompt, merged) == values["id"]:
                values["check"], values["meta"] = merged, _drop_nones(values["meta"])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> Task:
        return cls.from_dict(json.loads(text))


TASK_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Task))


def _drop_nones(obj: Any) -> Any:
    """`obj` without the dict keys whose value is None, at every depth."""
    if isinstance(obj, dict):
        return {k: _drop_nones(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_nones(v) for v in obj]
    return obj


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one response. `score` is 1.0 or 0.0; partial credit lives in `details`."""

    passed: bool
    score: float
    reason: str
    parsed: Any = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown verdict reason {self.reason!r}; valid: {', '.join(REASONS)}")

    # `ok` and `fail` build the record directly (as `Task.assemble` does): a verdict of a cheap family
    # costs less than the frozen dataclass's five setters and `__post_init__`. `fail` still checks the
    # reason, against a set.
    @classmethod
    def ok(cls, parsed: Any = None, **details: Any) -> Verdict:
        new = object.__new__(cls)
        fields = {"passed": True, "score": 1.0, "reason": "ok", "parsed": parsed, "details": details}
        object.__setattr__(new, "__dict__", fields)
        return new

    @classmethod
    def fail(cls, reason: str, parsed: Any = None, **details: Any) -> Verdict:
        if reason not in _REASON_SET:
            return cls(False, 0.0, reason, parsed, details)  # raises, naming the valid reasons
        new = object.__new__(cls)
        fields = {"passed": False, "score": 0.0, "reason": reason, "parsed": parsed, "details": details}
        object.__setattr__(new, "__dict__", fields)
        return new

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
