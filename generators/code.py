"""Verified code: write a Python function from a specification; hidden tests run in the sandbox.

Procedural tasks compose primitives over integers, lists and strings (map, filter, sort, reverse, fold,
prefix sums, deduplication, windows, string transforms, conditionals). The reference solution is built
from the same primitives; it computes the expected outputs of the hidden tests (random inputs plus edge
cases) and must pass every one of them in the sandbox before the task is emitted.

Problem sets load too (`load_problems`): HumanEval style (`prompt`, `entry_point`, `test` defining
`check(candidate)`) and a plain style (`prompt`, `entry_point`, `tests: [{input, output}]`).

A response passes only if every hidden test passes; the fraction passed is in `details`, never the score.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskforge.errors import GenerationError
from taskforge.extract import extract_block
from taskforge.generator import Generator, Knob
from taskforge.registry import register
from taskforge.sandbox import Result, Sample, decode, default_sandbox, encode
from taskforge.task import Task, Verdict

TIME_LIMIT_S = 2.0
ENTRY = "solve"
VOWELS = "aeiouAEIOU"
TYPE_NAMES = {"list": "list[int]", "int": "int", "str": "str"}
INSTRUCTION = (
    "Reply with the complete function in a ```python code block. Only the standard library is available; "
    "the code runs without network or file access."
)


# ---- primitives --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Primitive:
    """One step: a sentence of the specification and the line of the reference that implements it.
    `{k}` in both is filled with a constant drawn from `ks`."""

    name: str
    takes: str
    gives: str
    text: str
    code: str
    ks: tuple[int, ...] = ()


P = Primitive
# fmt: off
PRIMITIVES: tuple[Primitive, ...] = (
    # list -> list
    P("mul", "list", "list", "Multiply every element by {k}.", "x = [v * {k} for v in x]", (-3, -2, 2, 3, 5)),
    P("add", "list", "list", "Add {k} to every element.", "x = [v + {k} for v in x]", (-7, -2, 1, 4, 10)),
    P("abs", "list", "list", "Replace every element by its absolute value.", "x = [abs(v) for v in x]"),
    P("square", "list", "list", "Square every element.", "x = [v * v for v in x]"),
    P("mod", "list", "list",
      "Replace every element v by v mod {k} (the non-negative remainder, as Python's `%`).",
      "x = [v % {k} for v in x]", (2, 3, 5, 7, 10)),
    P("even", "list", "list", "Keep only the even elements, in order.", "x = [v for v in x if v % 2 == 0]"),
    P("odd", "list", "list", "Keep only the odd elements, in order.", "x = [v for v in x if v % 2 != 0]"),
    P("gt", "list", "list", "Keep only the elements strictly greater than {k}, in order.",
      "x = [v for v in x if v > {k}]", (-5, 0, 3, 8)),
    P("nonneg", "list", "list", "Remove the negative elements.", "x = [v for v in x if v >= 0]"),
    P("sort", "list", "list", "Sort the list in ascending order.", "x = sorted(x)"),
    P("sortdesc", "list", "list", "Sort the list in descending order.", "x = sorted(x, reverse=True)"),
    P("reverse", "list", "list", "Reverse the list.", "x = x[::-1]"),
    P("prefix", "list", "list",
      "Replace the list by its running sums: element i becomes the sum of elements 0..i.",
      "x = [sum(x[: i + 1]) for i in range(len(x))]"),
    P("dedup", "list", "list", "Remove repeated values, keeping the first occurrence of each.",
      "x = list(dict.fromkeys(x))"),
    P("window", "list", "list",
      "Replace the list by the sums of every run of {k} consecutive elements (empty if it has fewer than {k}).",
      "x = [sum(x[i : i + {k}]) for i in range(len(x) - {k} + 1)]", (2, 3)),
    P("diffs", "list", "list",
      "Replace the list by the differences of neighbours, x[i + 1] - x[i] (empty if it has fewer than 2 elements).",
      "x = [b - a for a, b in zip(x, x[1:])]"),
    P("take", "list", "list", "Keep only the first {k} elements (all of them if there are fewer).",
      "x = x[:{k}]", (2, 3, 4)),
    P("drop", "list", "list", "Drop the first {k} elements (all of them if there are fewer).",
      "x = x[{k}:]", (1, 2)),
    P("condrev", "list", "list",
      "If the list has more than {k} elements, reverse it; otherwise leave it as it is.",
      "x = x[::-1] if len(x) > {k} else x", (2, 3, 4)),
    P("condneg", "list", "list", "If the sum of the elements is negative, negate every element.",
      "x = [-v for v in x] if sum(x) < 0 else x"),
    # list -> int (folds) and list -> str
    P("sum", "list", "int", "Take the sum of the elements (0 for an empty list).", "x = sum(x)"),
    P("len", "list", "int", "Take the number of elements.", "x = len(x)"),
    P("max", "list", "int", "Take the largest element (0 for an empty list).", "x = max(x, default=0)"),
    P("min", "list", "int", "Take the smallest element (0 for an empty list).", "x = min(x, default=0)"),
    P("counteven", "list", "int", "Count the even elements.", "x = sum(1 for v in x if v % 2 == 0)"),
    P("altsum", "list", "int", "Take the alternating sum x[0] - x[1] + x[2] - ... (0 for an empty list).",
      "x = sum(v if i % 2 == 0 else -v for i, v in enumerate(x))"),
    P("join", "list", "str", "Write the elements in decimal, joined by commas with no spaces.",
      "x = ','.join(str(v) for v in x)"),
    # int -> int, int -> list, int -> str
    P("iadd", "int", "int", "Add {k}.", "x = x + {k}", (-9, 3, 11)),
    P("imul", "int", "int", "Multiply by {k}.", "x = x * {k}", (-2, 3, 7)),
    P("iabs", "int", "int", "Take the absolute value.", "x = abs(x)"),
    P("imod", "int", "int", "Take the non-negative remainder modulo {k} (Python's `%`).",
      "x = x % {k}", (3, 7, 10)),
    P("collatz", "int", "int", "If the number is even, halve it; otherwise multiply it by 3 and add 1.",
      "x = x // 2 if x % 2 == 0 else 3 * x + 1"),
    P("digitsum", "int", "int", "Take the sum of the decimal digits of its absolute value.",
      "x = sum(int(d) for d in str(abs(x)))"),
    P("digits", "int", "list",
      "Turn it into the list of the decimal digits of its absolute value, most significant first.",
      "x = [int(d) for d in str(abs(x))]"),
    P("istr", "int", "str", "Write it in decimal.", "x = str(x)"),
    # str -> str, str -> list, str -> int
    P("lower", "str", "str", "Convert it to lower case.", "x = x.lower()"),
    P("upper", "str", "str", "Convert it to upper case.", "x = x.upper()"),
    P("srev", "str", "str", "Reverse the string.", "x = x[::-1]"),
    P("novowel", "str", "str", "Remove every vowel (a, e, i, o, u in either case).",
      "x = ''.join(c for c in x if c not in 'aeiouAEIOU')"),
    P("swapcase", "str", "str", "Swap the case of every letter.", "x = x.swapcase()"),
    P("squeeze", "str", "str", "Collapse every run of the same character into one character.",
      "x = ''.join(c for i, c in enumerate(x) if i == 0 or c != x[i - 1])"),
    P("letters", "str", "str", "Keep only the ASCII letters.",
      "x = ''.join(c for c in x if c.isascii() and c.isalpha())"),
    P("rotate", "str", "str",
      "Rotate it left by {k} (the first {k} characters, modulo its length, move to the end).",
      "x = x[{k} % len(x):] + x[:{k} % len(x)] if x else x", (1, 2, 3)),
    P("caesar", "str", "str",
      "Shift every lower-case ASCII letter {k} places forward in the alphabet, wrapping from z to a.",
      "x = ''.join(chr((ord(c) - 97 + {k}) % 26 + 97) if 'a' <= c <= 'z' else c for c in x)", (1, 3, 13)),
    P("ords", "str", "list", "Turn it into the list of the code points (ord) of its characters.",
      "x = [ord(c) for c in x]"),
    P("wordlens", "str", "list", "Turn it into the list of the lengths of its words (split on whitespace).",
      "x = [len(w) for w in x.split()]"),
    P("slen", "str", "int", "Take its length.", "x = len(x)"),
    P("vowels", "str", "int", "Count its vowels (a, e, i, o, u in either case).",
      "x = sum(c in 'aeiouAEIOU' for c in x)"),
    P("words", "str", "int", "Count its words (split on whitespace).", "x = len(x.split())"),
)
# fmt: on
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGH  0123"


def compose(rng: random.Random, start: str, steps: int) -> list[tuple[Primitive, int | None]]:
    """A chain of `steps` primitives; a step that changes the type is taken a third of the time, so most
    of the work happens on the input's own type."""
    chain: list[tuple[Primitive, int | None]] = []
    kind = start
    for _ in range(steps):
        options = [p for p in PRIMITIVES if p.takes == kind and (not chain or p.name != chain[-1][0].name)]
        same = [p for p in options if p.gives == kind]
        p = rng.choice(same if same and rng.random() < 0.67 else options)
        chain.append((p, rng.choice(p.ks) if p.ks else None))
        kind = p.gives
    return chain


def reference_source(chain: Sequence[tuple[Primitive, int | None]], start: str) -> str:
    returns = chain[-1][0].gives if chain else start
    lines = [f"def {ENTRY}(x: {TYPE_NAMES[start]}) -> {TYPE_NAMES[returns]}:"]
    lines += ["    " + p.code.replace("{k}", str(k)) for p, k in chain]
    return "\n".join([*lines, "    return x", ""])


def random_input(rng: random.Random, kind: str, size: int) -> Any:
    if kind == "list":
        return [rng.randint(-3 * size, 3 * size) for _ in range(rng.randint(0, size))]
    if kind == "str":
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, size)))
    return rng.randint(-(10**size), 10**size)


def edge_input(rng: random.Random, kind: str, size: int) -> Any:
    v = rng.randint(-3 * size, 3 * size)
    if kind == "list":
        return rng.choice(
            ([], [v], [v] * max(2, size // 2), [-abs(v) - 1 - i for i in range(size)], list(range(size)))
        )
    if kind == "str":
        c = rng.choice(ALPHABET[:26])
        return rng.choice(("", c, c * max(2, size // 2), "   ", c.upper() + c * 3 + " " + c))
    return rng.choice((0, 1, -1, -(10**size), 10**size - 1))


@register
class Code(Generator):
    family = "code"
    version = "1"
    description = "Write a Python function from a composed specification; hidden tests run in the sandbox."
    knobs = (
        Knob("steps", int, 2, low=1, high=10, help="number of composed primitives"),
        Knob("input_type", str, "list", choices=("list", "str", "int"), help="type of the argument"),
        Knob("size", int, 6, low=1, high=50, help="max list length / string length / digits"),
        Knob("edge_density", float, 0.3, low=0.0, high=1.0, help="share of hidden tests that are edge cases"),
        Knob("examples", int, 3, low=0, high=8, help="visible examples in the prompt"),
        Knob("tests", int, 10, low=1, high=100, help="hidden tests"),
    )
    levels = (
        {"steps": 1, "input_type": "list", "size": 5, "examples": 3},
        {"steps": 2, "input_type": "int", "size": 4, "examples": 3},
        {"steps": 2, "input_type": "list", "size": 6, "examples": 3},
        {"steps": 2, "input_type": "str", "size": 8, "examples": 3},
        {"steps": 3, "input_type": "list", "size": 8, "examples": 3},
        {"steps": 4, "input_type": "str", "size": 10, "examples": 2},
        {"steps": 5, "input_type": "list", "size": 10, "examples": 2},
        {"steps": 6, "input_type": "list", "size": 12, "examples": 1},
        {"steps": 8, "input_type": "list", "size": 16, "examples": 1},
    )

    def difficulty(self, params: dict[str, Any]) -> float:
        # Composition depth dominates; longer inputs and fewer examples make the spec harder to get right.
        return (
            params["steps"]
            + params["size"] / 20
            + 0.25 * max(0, 3 - params["examples"])
            + 0.5 * params["edge_density"]
        )

    def generate(self, params: dict[str, Any], rng: random.Random) -> Task:
        kind, size = params["input_type"], params["size"]
        chain = compose(rng, kind, params["steps"])
        source = reference_source(chain, kind)
        namespace: dict[str, Any] = {}
        exec(compile(source, "<reference>", "exec"), namespace)  # our own composed code: trusted
        reference = namespace[ENTRY]
        inputs = []
        for _ in range(params["tests"]):
            edge = rng.random() < params["edge_density"]
            inputs.append((edge_input if edge else random_input)(rng, kind, size))
        shown = [random_input(rng, kind, size) for _ in range(params["examples"])]
        tests = [[[x], reference(x)] for x in inputs]
        steps = "\n".join(f"{i}. {p.text.replace('{k}', str(k))}" for i, (p, k) in enumerate(chain, 1))
        signature = source.splitlines()[0][4:-1]
        prompt = (
            f"Write a Python function `{signature}`. Starting from the argument x, apply these steps in order "
            f"and return the result:\n{steps}\n"
        )
        if shown:
            prompt += "\nExamples:\n" + "".join(f"{ENTRY}({x!r}) == {reference(x)!r}\n" for x in shown)
        prompt += "\n" + INSTRUCTION
        check = {
            "mode": "io",
            "entry": ENTRY,
            "time_limit": TIME_LIMIT_S,
            "tests": [encode(t) for t in tests],
        }
        meta = {"steps": [p.name for p, _ in chain], "returns": chain[-1][0].gives}
        task = self.make_task(params, prompt=prompt, answer=source, check=check, meta=meta)
        pending = getattr(_deferred, "tasks", None)
        if pending is None:
            check_references([task])
        else:  # inside a block: checked with the rest of the block, in one sandbox round
            pending.append(task)
        return task

    def sampler_many(self, params: dict[str, Any], seed: int, split: str) -> Callable[[int, int], list[Task]]:
        """The base block path, with every reference the block draws (those its split turns away too,
        as `generate` checks them) run in one sandbox round, over all the pool's workers, instead of a
        round per task: the sandbox check was ~90% of the time a task took (issue 16)."""
        block = super().sampler_many(params, seed, split)

        def checked(start: int, n: int) -> list[Task]:
            _deferred.tasks = pending = []
            try:
                tasks = block(start, n)
            finally:
                _deferred.tasks = None
            check_references(pending)
            return tasks

        return checked

    def verify(self, task: Task, response: str) -> Verdict:
        return self.verify_many([task], [response])[0]

    def verify_many(self, tasks: Sequence[Task], responses: Sequence[Any]) -> list[Verdict]:
        """One sandbox round for the whole batch, spread over the pool's workers; Verdicts in order."""
        if len(tasks) != len(responses):
            raise ValueError(f"{len(tasks)} tasks for {len(responses)} responses")
        verdicts: list[Verdict | None] = [None] * len(tasks)
        pending: list[tuple[int, str]] = []
        for i, response in enumerate(responses):
            if (refused := self.screen(response)) is not None:
                verdicts[i] = refused
            elif (code := extract_block(response, "python")) is None:
                verdicts[i] = Verdict.fail("no_answer")
            else:
                pending.append((i, code))
        try:
            samples = [_sample(tasks[i].check, code) for i, code in pending]
            results = default_sandbox().run(samples) if samples else []
        except Exception as exc:  # a malformed check or a dead pool: a Verdict per response, never a raise
            error = f"{type(exc).__name__}: {exc}"[:500]
            return [v or Verdict.fail("error", error=error) for v in verdicts]
        for (i, code), result in zip(pending, results, strict=True):
            verdicts[i] = _to_verdict(result, code)
        return verdicts  # type: ignore[return-value]

    def gold_response(self, task: Task) -> str:
        return f"```python\n{task.answer}```"

    def corrupt_answer(self, task: Task, rng: random.Random) -> str | None:
        # Off by one in the result: right shape, wrong values (and a constant for strings).
        body = task.answer.replace(
            "    return x", rng.choice(("    return x * 2 if x else 7", "    return None"))
        )
        return f"```python\n{body}```"


# ---- verification --------------------------------------------------------------------------------------
_deferred = threading.local()  # .tasks: the references a block in progress has left to check


REFERENCES_PER_CHILD = 64


def check_references(tasks: Sequence[Task]) -> None:
    """Every reference must pass its own hidden tests in the sandbox before its task is emitted.

    A sandboxed child costs ~5 ms of CPU on these machines and a reference a few microseconds, so up
    to REFERENCES_PER_CHILD references share one child: renamed `_ref_<j>`, behind a `solve(j, x)`
    that dispatches, with each task's tests as `(j, x)`. Isolation between them is not at stake: they
    are our own composed code, never a model's (candidates always get a child of their own)."""
    samples = [_sample(t.check, t.answer) for t in tasks]
    groups: list[tuple[bool, list[int]]] = []
    for i, s in enumerate(samples):
        composed = s.kind == "call" and not s.float_tol and s.code.startswith(f"def {ENTRY}(")
        if composed and groups and groups[-1][0] and len(groups[-1][1]) < REFERENCES_PER_CHILD:
            groups[-1][1].append(i)
        else:  # the first of a group, or not composed here (it runs alone)
            groups.append((composed, [i]))
    shared = [_shared_sample([samples[i] for i in group]) for _, group in groups]
    results = default_sandbox().run(shared) if shared else []
    for (_, group), result in zip(groups, results, strict=True):
        if not result.ok:
            ids = [tasks[i].meta.get("steps") for i in group]
            raise GenerationError(f"reference failed its own tests in the sandbox: {result} (among {ids})")


def _shared_sample(samples: Sequence[Sample]) -> Sample:
    if len(samples) == 1:
        return samples[0]
    names = [f"_ref_{j}" for j in range(len(samples))]
    code = "".join(
        s.code.replace(f"def {ENTRY}(", f"def {name}(", 1) for s, name in zip(samples, names, strict=True)
    )
    code += f"_REFS = [{', '.join(names)}]\n\n\ndef {ENTRY}(j, *args):\n    return _REFS[j](*args)\n"
    tests = [((j, *args), expected) for j, s in enumerate(samples) for args, expected in s.tests]
    return Sample(code, ENTRY, tests, sum(s.time_limit for s in samples))


def _sample(check: dict[str, Any], code: str) -> Sample:
    if check["mode"] == "check":
        return Sample(
            code,
            check["entry"],
            (),
            float(check["time_limit"]),
            "check",
            check["test_code"],
            prelude=str(check.get("prelude", "")),
        )
    tests = [(tuple(args), expected) for args, expected in (decode(t) for t in check["tests"])]
    return Sample(
        code, check["entry"], tests, float(check["time_limit"]), float_tol=float(check.get("float_tol", 0.0))
    )


def _to_verdict(result: Result, code: str) -> Verdict:
    details = {"status": result.status, "passed_tests": result.passed, "total_tests": result.total}
    if result.total:
        details["fraction_passed"] = round(result.passed / result.total, 4)
    if result.detail:
        details["first_failure"] = result.detail
    parsed = code[:2000]
    if result.status == "pass":
        return Verdict.ok(parsed, **details)
    if result.status == "timeout":
        return Verdict.fail("timeout", parsed, **details)
    if result.status == "rejected":
        return Verdict.fail("rejected", parsed, **details)
    if result.detail.startswith("load error: SyntaxError") or result.detail.startswith(
        "load error: IndentationError"
    ):
        return Verdict.fail("malformed", parsed, **details)
    return Verdict.fail("wrong", parsed, **details)


# ---- problem sets ------------------------------------------------------------------------------------
def load_problems(
    source: str | Path | Iterable[dict[str, Any]], *, time_limit: float = TIME_LIMIT_S
) -> list[Task]:
    """Tasks of family "code" from a JSONL file (or rows) in HumanEval or plain shape.

    HumanEval: {task_id, prompt, entry_point, test (defines check(candidate)), canonical_solution?}.
    Plain: {task_id, prompt, entry_point, tests: [{input: [args...], output: value}], solution?}.
    Assert-style tests run `check` in a judge process, after the prompt's code (its helpers) and with
    the entry point's name bound to the candidate; the candidate answers each call from a process of
    its own with plain data only, so an always-equal object cannot satisfy an assert (calls are sent to
    it in batches learnt from a dry run of `check`: see taskforge/sandbox/_worker.py).
    """
    if isinstance(source, (str, Path)):
        with open(source, encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
    else:
        rows = list(source)
    gen, tasks = Code(), []
    for index, row in enumerate(rows):
        entry = row["entry_point"]
        if "test" in row:
            # The prompt is trusted code too: HumanEval's `check` calls helpers it defines (`poly`,
            # `encode_cyclic`), so the test process and the candidate both run it first.
            check = {
                "mode": "check",
                "entry": entry,
                "time_limit": time_limit,
                "test_code": row["test"],
                "prelude": row["prompt"],
            }
            answer = row["prompt"] + row["canonical_solution"] if "canonical_solution" in row else ""
            shape = "humaneval"
        else:
            tests = [[list(t["input"]), t["output"]] for t in row["tests"]]
            check = {
                "mode": "io",
                "entry": entry,
                "time_limit": time_limit,
                "tests": [encode(t) for t in tests],
            }
            answer = row.get("solution", "")
            shape = "plain"
        prompt = f"Complete the Python function `{entry}`:\n\n```python\n{row['prompt'].rstrip()}\n```\n\n{INSTRUCTION}"
        meta = {"task_id": str(row.get("task_id", index)), "source": shape}
        # A loaded problem has no knobs: empty params, and the difficulty the problem set gives.
        task = gen.make_task(
            {}, prompt=prompt, answer=answer, check=check, meta=meta, difficulty=row.get("difficulty", 0.0)
        )
        tasks.append(task.placed(0, str(row.get("split", "test")), index))
    return tasks
