"""The Generator contract: declared knobs, a ladder of levels, `generate` and `verify`.

A family is one subclass in one file (or package) under `generators/`:

    @register
    class Multiplication(Generator):
        family, version = "multiplication", "1"
        knobs = (Knob("digits_a", int, 3, low=1, high=30), Knob("digits_b", int, 3, low=1, high=30))
        levels = ({"digits_a": 1, "digits_b": 1}, ...)          # easy to hard
        def difficulty(self, params): return params["digits_a"] * params["digits_b"]
        def generate(self, params, rng): return self.make_task(params, prompt=..., answer=..., check=...)
        def verify(self, task, response): ...                  # reads only `task`, never `self`'s state

What a family implements:

- `difficulty(params) -> float`: monotone along `levels`.
- `generate(params, rng) -> Task`: pure (same params and rng state, same bytes, in any process); builds
  the Task with `make_task`. `params` have passed `resolve_params`, so every knob is present and valid.
- `verify(task, response) -> Verdict`: a pure function of the task record and the response.

What a family may override (each documented on the method below, with an example):

- `check_params(params)`: rules that span knobs (SAT: n <= k). Runs inside `resolve_params`, so a bad
  combination is refused before a file is opened or a trainer starts.
- `verify_many(tasks, responses)`: a faster batch path (code: one sandbox round). Trainers, `taskforge
  verify` and `taskforge eval` call it; the default loops over `safe_verify`.
- `sampler_many(params, seed, split)`: a faster batch path for generation (arithmetic builds its Task
  records directly); `generate_many`, `taskforge.generate` and the dataset writer call it, and it must
  give the same bytes as `sample` for every index.
- `guess_rate`, `gold_response`, `corrupt_answer`: used by the curriculum and the conformance suite.

What the base class provides and callers use: `resolve_params`, `level_of`, `sample`/`sampler` (seeded
items that respect split ownership), `safe_verify` (total: a Verdict for any input, never an exception).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from taskforge.errors import GenerationError, KnobError
from taskforge.seeding import block_seeds, key_seed, key_unit, stream_key
from taskforge.task import Task, Verdict, canonical_json, content_id

# Splits are disjoint by construction: a task belongs to the split that owns the hash bucket of its id.
# Train owns 14/16 of the space, val and test 1/16 each, so even a level with a handful of distinct
# problems never leaks a test item into train. Other split names share train's buckets.
SPLIT_BUCKETS: dict[str, tuple[float, float]] = {"val": (0.875, 0.9375), "test": (0.9375, 1.0)}
TRAIN_BUCKET = (0.0, 0.875)
MAX_SPLIT_DRAWS = 2000


def split_owns(split: str, task_id: str) -> bool:
    low, high = split_bucket(split)
    # hash_unit("split", task_id), spelled out: encoding a bare string skips the JSON encoder's set-up,
    # which is most of the cost of this check. Same key, same bytes.
    return low <= key_unit('["split",' + canonical_json(task_id) + "]") < high


def split_bucket(split: str) -> tuple[float, float]:
    """The [low, high) range of `hash_unit("split", id)` that `split` owns."""
    return SPLIT_BUCKETS.get(split, TRAIN_BUCKET)


def too_few_problems(family: str, params: dict[str, Any], split: str) -> GenerationError:
    """The error of a split that rejected `MAX_SPLIT_DRAWS` problems in a row."""
    return GenerationError(
        f"{family} with {params} has too few distinct problems to fill split {split!r}; choose a harder level"
    )


@dataclass(frozen=True)
class Knob:
    """A typed difficulty knob: an int/float range or a set of choices."""

    name: str
    type: type
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""

    def describe(self) -> str:
        if self.choices is not None:
            return "|".join(str(c) for c in self.choices)
        if self.type is bool:
            return "true|false"
        return f"{self.type.__name__} in [{self.low}, {self.high}]"

    def coerce(self, value: Any) -> Any:
        """Parse (from CLI strings too) and range-check a value."""
        try:
            if self.type is bool and isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                value = value.lower() in ("true", "1")
            elif self.type is int and isinstance(value, float) and value.is_integer():
                value = int(value)
            elif not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
                value = self.type(value)
        except (TypeError, ValueError):
            raise KnobError(f"knob {self.name!r} expects {self.describe()}, got {value!r}") from None
        if self.choices is not None and value not in self.choices:
            raise KnobError(f"knob {self.name!r} expects one of {self.describe()}, got {value!r}")
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise KnobError(f"knob {self.name!r} expects {self.describe()}, got {value!r}")
        return value


class Generator:
    """Base class of every task family. Subclasses set the class attributes and the three methods."""

    family: ClassVar[str]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    knobs: ClassVar[Sequence[Knob]] = ()
    levels: ClassVar[Sequence[dict[str, Any]]] = ({},)
    # A longer response is rejected before extraction (`screen`). None: the family checks its own size.
    max_response_chars: ClassVar[int | None] = 400_000

    # ---- to implement -------------------------------------------------------------------------
    def difficulty(self, params: dict[str, Any]) -> float:
        raise NotImplementedError

    def generate(self, params: dict[str, Any], rng: random.Random) -> Task:
        raise NotImplementedError

    def verify(self, task: Task, response: str) -> Verdict:
        raise NotImplementedError

    # ---- optional ------------------------------------------------------------------------------
    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        """Refuse a combination of knob values that `generate` cannot serve, with a `KnobError` naming the
        rule. Each value is already range-checked; this is for rules that span knobs. Called by
        `resolve_params`, so datasets, trainer configs and streams fail before any work starts.

        Example (SAT): a clause of n distinct variables needs at least n variables.

            @classmethod
            def check_params(cls, params):
                if params["n"] > params["k"]:
                    raise KnobError(f"n={params['n']} literals per clause need k >= n variables")
        """

    def guess_rate(self, params: dict[str, Any]) -> float:
        """Chance that a blind guess passes (a short SAT formula is often satisfied at random)."""
        return 0.0

    def gold_response(self, task: Task) -> str:
        """The gold answer written as a model would write it; the conformance suite verifies it."""
        return f"<answer>{task.answer}</answer>"

    def corrupt_answer(self, task: Task, rng: random.Random) -> str | None:
        """A plausible wrong response (for the conformance suite), or None if the family cannot make one."""
        return None

    # ---- provided ------------------------------------------------------------------------------
    @classmethod
    def knob(cls, name: str) -> Knob:
        for k in cls.knobs:
            if k.name == name:
                return k
        valid = ", ".join(k.name for k in cls.knobs) or "(none)"
        raise KnobError(f"family {cls.family!r} has no knob {name!r}; valid: {valid}")

    @classmethod
    def resolve_params(cls, level: int | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults, then the level's settings, then explicit params; every value range-checked, then the
        whole set checked by `check_params`."""
        out = {k.name: k.default for k in cls.knobs}
        if level is not None:
            if not isinstance(level, int) or not 0 <= level < len(cls.levels):
                raise KnobError(f"family {cls.family!r} has levels 0..{len(cls.levels) - 1}, got {level!r}")
            out.update(cls.levels[level])
        for name, value in (params or {}).items():
            out[name] = cls.knob(name).coerce(value)
        for k in cls.knobs:
            out[k.name] = k.coerce(out[k.name])
        cls.check_params(out)
        return out

    @classmethod
    def level_of(cls, params: dict[str, Any]) -> int | None:
        """The ladder rung of `params`: the level whose ladder knobs match (other knobs are variants)."""
        laddered = {k for level in cls.levels for k in level}
        for i in range(len(cls.levels)):
            rung = cls.resolve_params(i)
            if all(rung[k] == params.get(k) for k in laddered):
                return i
        return None

    def make_task(
        self,
        params: dict[str, Any],
        *,
        prompt: str,
        answer: str,
        check: dict[str, Any],
        meta: dict[str, Any] | None = None,
        system: str | None = None,
        difficulty: float | None = None,
    ) -> Task:
        """Build a Task from a generated problem; seed, split and index are filled in by `sample`.
        `difficulty` defaults to `self.difficulty(params)`; a task loaded from a problem set (no knobs)
        passes the set's own."""
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        return Task(
            id=content_id(self.family, prompt, check),
            family=self.family,
            version=self.version,
            params=dict(params),
            difficulty=float(self.difficulty(params) if difficulty is None else difficulty),
            seed=0,
            split="",
            index=0,
            prompt=prompt,
            messages=messages,
            answer=answer,
            check=check,
            meta=dict(meta or {}),
        )

    def sample(self, params: dict[str, Any], seed: int, split: str, index: int) -> Task:
        """Item `index` of (params, seed, split): deterministic, and owned by `split`'s id bucket."""
        return self.sampler(params, seed, split)(index)

    def sampler(self, params: dict[str, Any], seed: int, split: str) -> Callable[[int], Task]:
        """`sample` for many indices of one (params, seed, split), with the per-stream work done once."""
        # No normalising pass over params: canonical_json spells tuples as lists, so both seed alike.
        prefix = stream_key(self.family, self.version, params, seed, split)

        def sample(index: int) -> Task:
            return self._place(params, random.Random(key_seed(prefix + f"{index}]")), seed, split, index)

        return sample

    def generate_many(self, params: dict[str, Any], seed: int, split: str, start: int, n: int) -> list[Task]:
        """Items `start .. start+n-1` of (params, seed, split) at once: the same Tasks, byte for byte, as
        `sample(params, seed, split, i)` for each i. The dataset writer and `taskforge.generate` call it."""
        return self.sampler_many(params, seed, split)(start, n)

    def sampler_many(self, params: dict[str, Any], seed: int, split: str) -> Callable[[int, int], list[Task]]:
        """`generate_many` for many blocks of one (params, seed, split): `block(start, n) -> list[Task]`.

        The default draws a block's seeds at once and loops over `generate`. A family with a cheaper
        block path overrides it (arithmetic builds its Task records directly) and must give the same
        bytes as `sampler`; `tests/core/test_generate_many.py` compares the two for every family.
        """
        prefix = stream_key(self.family, self.version, params, seed, split)

        def block(start: int, n: int) -> list[Task]:
            seeds = block_seeds(prefix, start, n)
            place = self._place
            return [place(params, random.Random(s), seed, split, i) for i, s in enumerate(seeds, start)]

        return block

    def _place(self, params: dict[str, Any], rng: random.Random, seed: int, split: str, index: int) -> Task:
        """The first problem `rng` draws that `split` owns, as item `index`."""
        for _ in range(MAX_SPLIT_DRAWS):
            task = self.generate(params, rng)
            if split_owns(split, task.id):
                return task.placed(seed, split, index)
        raise too_few_problems(self.family, params, split)

    def screen(self, response: Any) -> Verdict | None:
        """The Verdict for a response refused before the family's verifier sees it, else None: not
        text (malformed), or longer than `max_response_chars` (rejected, in constant time: extractors
        took about 10 s over 50 MB). `safe_verify` and every batch path call this first."""
        if not isinstance(response, str):
            return Verdict.fail("malformed", details_type=type(response).__name__)
        limit = self.max_response_chars
        if limit is not None and len(response) > limit:
            return Verdict.fail("rejected", error=f"response longer than {limit} characters")
        return None

    def safe_verify(self, task: Task, response: Any) -> Verdict:
        """`verify`, made total: any input gives a Verdict, a verifier bug gives reason 'error'."""
        if (refused := self.screen(response)) is not None:
            return refused
        try:
            verdict = self.verify(task, response)
        except Exception as exc:  # a verifier must never take the caller down
            return error_verdict(exc)
        if not isinstance(verdict, Verdict):
            return Verdict.fail("error", error=f"verify returned {type(verdict).__name__}")
        return verdict

    def verify_many(self, tasks: Sequence[Task], responses: Sequence[Any]) -> list[Verdict]:
        """One Verdict per (task, response) pair, in order; total like `safe_verify`.

        The one path for batch verification: the trainer's reward function, `taskforge verify` and
        `taskforge eval` call it with every response of one family at once. The default loops over
        `safe_verify`. A family with a cheaper batch path overrides it (the code family runs the whole
        batch in one sandbox round) and must give the same Verdicts as the loop, never raising:

            def verify_many(self, tasks, responses):
                verdicts = run_all_in_one_round(tasks, responses)
                return [v if isinstance(v, Verdict) else self.safe_verify(t, r)
                        for v, t, r in zip(verdicts, tasks, responses)]

        >>> from taskforge import generate, get_generator
        >>> task = next(generate("arithmetic", 1, level=0))
        >>> gen = get_generator("arithmetic")
        >>> [v.reason for v in gen.verify_many([task, task], [gen.gold_response(task), "no idea"])]
        ['ok', 'no_answer']
        """
        if len(tasks) != len(responses):
            raise ValueError(f"{len(tasks)} tasks for {len(responses)} responses")
        return [self.safe_verify(t, r) for t, r in zip(tasks, responses, strict=True)]


def error_verdict(exc: Exception) -> Verdict:
    """The Verdict for a verifier that raised: what `safe_verify` returns, and what a batch path returns
    for the one answer whose check raised, so the batch agrees with one-at-a-time verification."""
    return Verdict.fail("error", error=f"{type(exc).__name__}: {exc}"[:500])
