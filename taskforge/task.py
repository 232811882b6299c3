"""The two records every part of taskforge exchanges: a Task (one dataset row) and a Verdict."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

REASONS = ("ok", "wrong", "no_answer", "malformed", "timeout", "error", "rejected")


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
        return type(self)(
            self.id, self.family, self.version, self.params, self.difficulty, seed, split, index,
            self.prompt, self.messages, self.answer, self.check, self.meta,
        )  # fmt: skip

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Task:
        missing = set(TASK_FIELDS) - set(row) - {"meta"}
        if missing:
            raise ValueError(f"task record lacks fields: {sorted(missing)}")
        return cls(**{k: row[k] for k in TASK_FIELDS if k in row})

    @classmethod
    def from_json(cls, text: str) -> Task:
        return cls.from_dict(json.loads(text))


TASK_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Task))


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

    @classmethod
    def ok(cls, parsed: Any = None, **details: Any) -> Verdict:
        return cls(True, 1.0, "ok", parsed, details)

    @classmethod
    def fail(cls, reason: str, parsed: Any = None, **details: Any) -> Verdict:
        return cls(False, 0.0, reason, parsed, details)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
