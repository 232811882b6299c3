"""The conformance suite for any Generator, built-in or plugin (in the spirit of Gymnasium's check_env).

    from taskforge.conformance import check_generator
    report = check_generator(MyGenerator)      # or "my_pkg.module:MyGenerator", or a family name
    assert report.ok, report.failures()

`taskforge check module:Class` runs the same from the command line.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import random
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskforge.generator import Generator
from taskforge.registry import generator_class
from taskforge.task import Task, Verdict

SPLITS = ("train", "val", "test")
GARBAGE: tuple[Any, ...] = (
    "",
    " ",
    "<answer></answer>",
    "<answer>",
    "</answer>",
    "<answer><answer>1</answer></answer>",
    "<answer>" * 1000 + "</answer>" * 1000,
    "\\boxed{",
    "\\boxed{\\boxed{}}}",
    "```python\n```",
    "```sql\n```",
    "\x00\x01\x02\ud800",
    "9" * 200_000,
    "<answer>" + "x" * 1_000_000 + "</answer>",
    "<answer>null</answer>",
    "<answer>[]</answer>",
    "<answer>{}</answer>",
    "<answer>-0</answer>",
    "<answer>NaN</answer>",
    None,
    123,
    b"bytes",
)


@dataclass
class CheckResult:
    name: str
    passed: bool
    detail: str = ""


@dataclass
class CheckReport:
    family: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)

    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]


def load_generator_class(target: str | type[Generator] | Generator) -> type[Generator]:
    """A Generator class from a class, an instance, 'module:Class' or a registered family name."""
    if isinstance(target, Generator):
        return type(target)
    if isinstance(target, type) and issubclass(target, Generator):
        return target
    if isinstance(target, str) and ":" in target:
        module_name, _, attr = target.partition(":")
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load {target!r}: {exc}") from None
        if not (isinstance(obj, type) and issubclass(obj, Generator)):
            raise ValueError(f"{target!r} is not a taskforge.Generator subclass")
        return obj
    if isinstance(target, str):
        return generator_class(target)
    raise ValueError(f"cannot make a generator out of {target!r}")


def _digest(cls_path: str, samples: int, seed: int) -> str:
    cls = load_generator_class(cls_path)
    gen = cls()
    h = hashlib.blake2b(digest_size=16)
    for level in range(len(cls.levels)):
        params = cls.resolve_params(level)
        for i in range(samples):
            h.update(gen.sample(params, seed, "train", i).to_json().encode())
    return h.hexdigest()


def _class_path(cls: type[Generator]) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def check_generator(
    target: str | type[Generator] | Generator,
    *,
    samples: int = 4,
    seed: int = 0,
    cross_process: bool = True,
    on_check: Callable[[CheckResult], None] | None = None,
) -> CheckReport:
    """Run every conformance check; never raises for a misbehaving generator, it reports."""
    cls = load_generator_class(target)
    report = CheckReport(getattr(cls, "family", cls.__name__))
    gen = cls()

    def run(name: str, fn: Callable[[], str | None]) -> None:
        try:
            problem = fn()
            result = CheckResult(name, problem is None, problem or "")
        except Exception as exc:
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            result = CheckResult(name, False, f"raised {tb}")
        report.results.append(result)
        if on_check:
            on_check(result)

    levels = [cls.resolve_params(i) for i in range(len(cls.levels))] if cls.levels else []
    tasks: dict[int, list[Task]] = {}

    def declares() -> str | None:
        if not getattr(cls, "family", None) or not isinstance(cls.family, str):
            return "no `family` name"
        if not cls.levels:
            return "no levels"
        for knob in cls.knobs:
            knob.coerce(knob.default)
        return None

    def determinism_in_process() -> str | None:
        for level, params in enumerate(levels):
            tasks[level] = [gen.sample(params, seed, "train", i) for i in range(samples)]
            again = [cls().sample(params, seed, "train", i) for i in range(samples)]
            if [t.to_json() for t in tasks[level]] != [t.to_json() for t in again]:
                return f"level {level}: the same seed gave different tasks"
        return None

    def determinism_across_processes() -> str | None:
        if not cross_process:
            return None
        local = _digest(_class_path(cls), samples, seed)
        code = "import sys; from taskforge.conformance import _digest; print(_digest(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))"
        for hashseed in ("1", "2"):
            env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": os.pathsep.join(sys.path)}
            out = subprocess.run(
                [sys.executable, "-c", code, _class_path(cls), str(samples), str(seed)],
                capture_output=True, text=True, env=env, timeout=600, check=False,
            )
            if out.returncode != 0:
                return f"subprocess failed: {out.stderr.strip().splitlines()[-1:]}"
            if out.stdout.strip() != local:
                return f"tasks differ in a process with PYTHONHASHSEED={hashseed}"
        return None

    def json_round_trip() -> str | None:
        for level_tasks in tasks.values():
            for t in level_tasks:
                back = Task.from_json(t.to_json())
                if back != t or back.to_json() != t.to_json():
                    return f"task {t.id} does not round-trip through JSON"
                json.loads(t.to_json())
        return None

    def gold_passes() -> str | None:
        for level, level_tasks in tasks.items():
            for t in level_tasks:
                v = gen.verify(Task.from_json(t.to_json()), gen.gold_response(t))
                if not v.passed:
                    return f"level {level}: gold answer of {t.id} fails its verifier ({v.reason}: {v.details})"
        return None

    def corrupted_fails() -> str | None:
        rng = random.Random(seed)
        tried = 0
        for level, level_tasks in tasks.items():
            for t in level_tasks:
                for bad in (gen.corrupt_answer(t, rng), "<answer></answer>"):
                    if bad is None:
                        continue
                    tried += 1
                    v = gen.verify(t, bad)
                    if v.passed:
                        return f"level {level}: corrupted answer {bad[:80]!r} passes on {t.id}"
        return None if tried else "no corrupted answer could be made"

    def garbage_gives_verdict() -> str | None:
        rng = random.Random(seed)
        noise = [bytes(rng.getrandbits(8) for _ in range(512)).decode("latin-1") for _ in range(4)]
        for level_tasks in tasks.values():
            t = level_tasks[0]
            for junk in (*GARBAGE, *noise):
                try:
                    v = gen.verify(t, junk)
                except Exception as exc:
                    return f"verify raised {type(exc).__name__} on {str(junk)[:40]!r}"
                if not isinstance(v, Verdict):
                    return f"verify returned {type(v).__name__}, not a Verdict"
                if v.passed:
                    return f"garbage {str(junk)[:40]!r} passed"
        return None

    def difficulty_monotone() -> str | None:
        values = [float(gen.difficulty(p)) for p in levels]
        for i in range(1, len(values)):
            if values[i] < values[i - 1]:
                return f"difficulty drops from level {i - 1} ({values[i - 1]}) to level {i} ({values[i]})"
        return None

    def splits_disjoint() -> str | None:
        for level, params in enumerate(levels):
            ids = {s: {gen.sample(params, seed, s, i).id for i in range(samples)} for s in SPLITS}
            for a in SPLITS:
                for b in SPLITS:
                    if a < b and ids[a] & ids[b]:
                        return f"level {level}: splits {a} and {b} share task ids"
        return None

    def seeds_disjoint() -> str | None:
        # At the hardest level (an easy level may have only a handful of distinct problems).
        params, n = levels[-1], max(samples, 8)
        one = [gen.sample(params, 1, "train", i).id for i in range(n + 1)]
        two = [gen.sample(params, 2, "train", i).id for i in range(n)]
        if set(one) & set(two):
            return "base seeds 1 and 2 share task ids (seed + index style seeding?)"
        return None

    def guess_rate_valid() -> str | None:
        for level, params in enumerate(levels):
            g = gen.guess_rate(params)
            if not 0.0 <= g <= 1.0:
                return f"level {level}: guess_rate {g} outside [0, 1]"
        return None

    run("declares family, knobs and levels", declares)
    if not report.ok:
        return report
    run("deterministic in one process", determinism_in_process)
    if not report.ok:
        return report
    run("same bytes across processes (PYTHONHASHSEED 1, 2)", determinism_across_processes)
    run("Task JSON round-trip", json_round_trip)
    run("gold answer passes at every level", gold_passes)
    run("corrupted answers fail", corrupted_fails)
    run("garbage gives a Verdict, never passes", garbage_gives_verdict)
    run("difficulty monotone along levels", difficulty_monotone)
    run("splits train/val/test disjoint", splits_disjoint)
    run("base seeds 1 and 2 disjoint", seeds_disjoint)
    run("guess rate within [0, 1]", guess_rate_valid)
    return report
