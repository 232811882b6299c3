"""The conformance suite for any Generator, built-in or plugin (in the spirit of Gymnasium's env_checker).

    from taskforge.conformance import check_generator
    report = check_generator(MyGenerator)      # or "my_pkg.module:MyGenerator", or a family name
    assert report.ok, report.failures()

`taskforge check module:Class` runs the same from the command line. Each check is a top-level
`check_*(probe) -> str | None` function: None when the generator conforms, else a message saying what is
wrong and what to change. A test can run one of them alone on a `Probe`.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import random
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskforge.errors import KnobError, PluginError
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
    """The outcome of one named check; `detail` says what failed and how to fix it."""

    name: str
    passed: bool
    detail: str = ""


@dataclass
class CheckReport:
    """Every check's result for one generator; `ok` when all passed."""

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
            raise PluginError(f"cannot load {target!r}: {exc}") from None
        if not (isinstance(obj, type) and issubclass(obj, Generator)):
            raise PluginError(f"{target!r} is not a taskforge.Generator subclass")
        return obj
    if isinstance(target, str):
        return generator_class(target)
    raise PluginError(f"cannot make a generator out of {target!r}")


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


class Probe:
    """What the checks look at: one generator, its resolved levels, and `samples` train tasks per level
    at `seed` (drawn once, on first use, and shared by the checks)."""

    def __init__(
        self, cls: type[Generator], *, samples: int = 4, seed: int = 0, cross_process: bool = True
    ) -> None:
        self.cls, self.gen = cls, cls()
        self.samples, self.seed, self.cross_process = samples, seed, cross_process
        self._levels: list[dict[str, Any]] | None = None
        self._tasks: dict[int, list[Task]] = {}

    @property
    def levels(self) -> list[dict[str, Any]]:
        if self._levels is None:
            self._levels = [self.cls.resolve_params(i) for i in range(len(self.cls.levels))]
        return self._levels

    def tasks(self, level: int) -> list[Task]:
        if level not in self._tasks:
            params = self.levels[level]
            self._tasks[level] = [self.gen.sample(params, self.seed, "train", i) for i in range(self.samples)]
        return self._tasks[level]

    def all_tasks(self) -> list[tuple[int, Task]]:
        return [(level, t) for level in range(len(self.levels)) for t in self.tasks(level)]


def check_declares(probe: Probe) -> str | None:
    """The class names its family, has at least one level, knob defaults pass their own ranges, and every
    level of the ladder passes `resolve_params` (ranges and `check_params`)."""
    cls = probe.cls
    if not getattr(cls, "family", None) or not isinstance(cls.family, str):
        return 'no `family` name: set the class attribute `family = "my-family"`'
    if not cls.levels:
        return "no levels: set `levels` to at least one dict of knob settings, easy to hard"
    for knob in cls.knobs:
        try:
            knob.coerce(knob.default)
        except KnobError as exc:
            return f"the default of knob {knob.name!r} is out of its own range: {exc}"
    for i in range(len(cls.levels)):
        try:
            cls.resolve_params(i)
        except KnobError as exc:
            return f"level {i} is not a valid setting ({exc}): fix the ladder or the knob ranges"
    return None


def check_determinism(probe: Probe) -> str | None:
    """The same (params, seed, split, index) gives the same task bytes, from a fresh instance too: generate
    must draw every random choice from the `rng` it is given. The batch path (`generate_many`, what
    datasets and `taskforge.generate` use) gives the same bytes as the item-at-a-time path."""
    for level, params in enumerate(probe.levels):
        again = [probe.cls().sample(params, probe.seed, "train", i) for i in range(probe.samples)]
        first = [t.to_json() for t in probe.tasks(level)]
        if first != [t.to_json() for t in again]:
            return (
                f"level {level}: the same seed gave different tasks; draw randomness only from `rng` "
                "(no time, global random, set iteration order or id())"
            )
        batch = probe.cls().generate_many(params, probe.seed, "train", 0, probe.samples)
        if first != [t.to_json() for t in batch]:
            return (
                f"level {level}: generate_many gave other tasks than sample for the same indices; a "
                "`sampler_many` override must give the same bytes as `sampler`"
            )
    return None


def check_cross_process(probe: Probe) -> str | None:
    """The same bytes in other processes with PYTHONHASHSEED 1 and 2 (no salted `hash()` or set order)."""
    if not probe.cross_process:
        return None
    local = _digest(_class_path(probe.cls), probe.samples, probe.seed)
    code = "import sys; from taskforge.conformance import _digest; print(_digest(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))"
    for hashseed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": os.pathsep.join(sys.path)}
        out = subprocess.run(
            [sys.executable, "-c", code, _class_path(probe.cls), str(probe.samples), str(probe.seed)],
            capture_output=True, text=True, env=env, timeout=600, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            return f"the generator fails in a fresh process: {out.stderr.strip().splitlines()[-1:]}"
        if out.stdout.strip() != local:
            return (
                f"tasks differ in a process with PYTHONHASHSEED={hashseed}: do not let `hash()` or the "
                "iteration order of a set reach the task"
            )
    return None


def check_round_trip(probe: Probe) -> str | None:
    """Every task survives JSON: `Task.from_json(t.to_json()) == t`, byte for byte (JSON-able check)."""
    for _, t in probe.all_tasks():
        back = Task.from_json(t.to_json())
        if back != t or back.to_json() != t.to_json():
            return f"task {t.id} does not round-trip through JSON: keep params, check and meta to JSON types"
    return None


def check_gold_passes(probe: Probe) -> str | None:
    """The gold response passes the verifier at every level, on a task read back from JSON."""
    gen = probe.gen
    for level, t in probe.all_tasks():
        v = gen.verify(Task.from_json(t.to_json()), gen.gold_response(t))
        if not v.passed:
            return (
                f"level {level}: gold answer of {t.id} fails its verifier ({v.reason}: {v.details}); "
                "`gold_response` must write the answer the way `verify` reads it"
            )
    return None


def check_surface_forms(probe: Probe) -> str | None:
    """Every surface form (taskforge.surface) of every task keeps its id, check and answer, and its gold
    response passes the same verifier: forms change wording, never the problem."""
    from taskforge.surface import FORMS, render

    gen = probe.gen
    for level in range(len(probe.levels)):
        t = probe.tasks(level)[0]  # one task per level: each form costs a full verification (SQL, code)
        gold = gen.gold_response(t)
        for form in FORMS:
            r = render(t, form, seed=probe.seed)
            if (r.id, r.check, r.answer, r.params) != (t.id, t.check, t.answer, t.params):
                return f"surface form {form} changed the problem of {t.id} (id, check, answer or params)"
            v = gen.verify(Task.from_json(r.to_json()), gold)
            if not v.passed:
                return f"level {level}: gold answer of {t.id} fails in surface form {form} ({v.reason})"
    return None


def check_corrupted_fail(probe: Probe) -> str | None:
    """A plausible wrong answer (`corrupt_answer`) and an empty answer both fail."""
    gen, rng, tried = probe.gen, random.Random(probe.seed), 0
    for level, t in probe.all_tasks():
        for bad in (gen.corrupt_answer(t, rng), "<answer></answer>"):
            if bad is None:
                continue
            tried += 1
            if gen.verify(t, bad).passed:
                return f"level {level}: corrupted answer {bad[:80]!r} passes on {t.id}: the verifier is too lenient"
    return None if tried else "no corrupted answer could be made"


def check_garbage(probe: Probe) -> str | None:
    """Hostile and malformed responses (huge, nested, binary, not a string) give a failing Verdict and
    never raise: model output is untrusted."""
    gen, rng = probe.gen, random.Random(probe.seed)
    noise = [bytes(rng.getrandbits(8) for _ in range(512)).decode("latin-1") for _ in range(4)]
    for level in range(len(probe.levels)):
        t = probe.tasks(level)[0]
        for junk in (*GARBAGE, *noise):
            try:
                v = gen.verify(t, junk)
            except Exception as exc:
                return f"verify raised {type(exc).__name__} on {str(junk)[:40]!r}: return Verdict.fail(...) instead"
            if not isinstance(v, Verdict):
                return f"verify returned {type(v).__name__}, not a Verdict"
            if v.passed:
                return f"garbage {str(junk)[:40]!r} passed"
    return None


def check_verify_many(probe: Probe) -> str | None:
    """`verify_many` gives the Verdicts `safe_verify` gives one at a time (a family's batch override
    must not change results)."""
    gen, rng = probe.gen, random.Random(probe.seed)
    tasks = [t for _, t in probe.all_tasks()]
    responses: list[Any] = [gen.gold_response(t) for t in tasks]
    responses += [gen.corrupt_answer(t, rng) or "" for t in tasks] + [None] * min(2, len(tasks))
    tasks = tasks + tasks + tasks[:2]
    batch = [(v.passed, v.score, v.reason) for v in gen.verify_many(tasks, responses)]
    single = [
        (v.passed, v.score, v.reason)
        for v in (gen.safe_verify(t, r) for t, r in zip(tasks, responses, strict=True))
    ]
    for i, (a, b) in enumerate(zip(batch, single, strict=True)):
        if a != b:
            return f"verify_many gave {a} for response {i}, safe_verify gave {b}: the batch path must agree"
    return None


def check_difficulty_monotone(probe: Probe) -> str | None:
    """`difficulty` never drops from one level to the next: order `levels` from easy to hard."""
    values = [float(probe.gen.difficulty(p)) for p in probe.levels]
    for i in range(1, len(values)):
        if values[i] < values[i - 1]:
            return (
                f"difficulty drops from level {i - 1} ({values[i - 1]}) to level {i} ({values[i]}): "
                "reorder the ladder or fix `difficulty`"
            )
    return None


def check_splits_disjoint(probe: Probe) -> str | None:
    """Train, val and test share no task id at any level (`sample` keeps each split to its id buckets)."""
    for level, params in enumerate(probe.levels):
        ids = {
            s: {probe.gen.sample(params, probe.seed, s, i).id for i in range(probe.samples)} for s in SPLITS
        }
        for a in SPLITS:
            for b in SPLITS:
                if a < b and ids[a] & ids[b]:
                    return f"level {level}: splits {a} and {b} share task ids; do not override `sample`"
    return None


def check_seeds_disjoint(probe: Probe) -> str | None:
    """Base seeds 1 and 2 share no task at the hardest level (an easy level may have only a handful of
    distinct problems): seed + index style seeding would repeat seed 1 shifted by one."""
    params, n = probe.levels[-1], max(probe.samples, 8)
    one = [probe.gen.sample(params, 1, "train", i).id for i in range(n + 1)]
    two = [probe.gen.sample(params, 2, "train", i).id for i in range(n)]
    if set(one) & set(two):
        return "base seeds 1 and 2 share task ids: derive randomness from the `rng` argument only"
    return None


def check_guess_rate(probe: Probe) -> str | None:
    """`guess_rate` is a probability at every level."""
    for level, params in enumerate(probe.levels):
        g = probe.gen.guess_rate(params)
        if not 0.0 <= g <= 1.0:
            return f"level {level}: guess_rate {g} outside [0, 1]"
    return None


# (name shown in reports, check, stop the suite when it fails)
CHECKS: tuple[tuple[str, Callable[[Probe], str | None], bool], ...] = (
    ("declares family, knobs and levels", check_declares, True),
    ("deterministic in one process", check_determinism, True),
    ("same bytes across processes (PYTHONHASHSEED 1, 2)", check_cross_process, False),
    ("Task JSON round-trip", check_round_trip, False),
    ("gold answer passes at every level", check_gold_passes, False),
    ("corrupted answers fail", check_corrupted_fail, False),
    ("garbage gives a Verdict, never passes", check_garbage, False),
    ("verify_many agrees with verify", check_verify_many, False),
    ("difficulty monotone along levels", check_difficulty_monotone, False),
    ("gold passes in every surface form", check_surface_forms, False),
    ("splits train/val/test disjoint", check_splits_disjoint, False),
    ("base seeds 1 and 2 disjoint", check_seeds_disjoint, False),
    ("guess rate within [0, 1]", check_guess_rate, False),
)


def check_generator(
    target: str | type[Generator] | Generator,
    *,
    samples: int = 4,
    seed: int = 0,
    cross_process: bool = True,
    on_check: Callable[[CheckResult], None] | None = None,
) -> CheckReport:
    """Run every check in `CHECKS`; never raises for a misbehaving generator, it reports."""
    cls = load_generator_class(target)
    probe = Probe(cls, samples=samples, seed=seed, cross_process=cross_process)
    report = CheckReport(getattr(cls, "family", cls.__name__))
    for name, check, stop in CHECKS:
        try:
            problem = check(probe)
            result = CheckResult(name, problem is None, problem or "")
        except Exception as exc:
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            result = CheckResult(name, False, f"raised {tb}")
        report.results.append(result)
        if on_check:
            on_check(result)
        if stop and not result.passed:
            break
    return report
