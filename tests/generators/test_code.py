"""The verified-code family: generation, verification in the sandbox, problem sets, conformance, CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

import taskforge
from taskforge.errors import GenerationError
from taskforge.extract import extract_block
from taskforge.generators.code import (
    PRIMITIVES,
    Code,
    check_references,
    compose,
    load_problems,
    reference_source,
)
from taskforge.task import Task

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "data" / "code_problems.jsonl"
GEN = Code()


def fenced(code: str) -> str:
    return f"Here it is.\n```python\n{code}\n```\n"


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return [
        t for level in range(len(Code.levels)) for t in taskforge.generate("code", 3, level=level, seed=7)
    ]


def test_every_primitive_runs_on_its_edge_cases():
    # Each primitive alone, through the generator: its reference passes its hidden tests in the sandbox.
    rng = random.Random(0)
    for p in PRIMITIVES:
        source = reference_source([(p, rng.choice(p.ks) if p.ks else None)], p.takes)
        namespace: dict = {}
        exec(source, namespace)
        for x in ([], [0], [-5, -5, 3], "", "a", "Ab  c", 0, -907, 10**6):
            if type(x).__name__ == p.takes or (p.takes == "list" and isinstance(x, list)):
                namespace["solve"](x)
    kinds = {(p.takes, p.gives) for p in PRIMITIVES}
    assert {("list", "list"), ("list", "int"), ("str", "str"), ("int", "list"), ("str", "list")} <= kinds


# sha256 prefixes of 24 tasks' JSON per (level, seed), measured before the block path checked its
# references in shared sandbox children (issue 16): the tasks must not change by a byte.
PINNED = {
    (0, 0): "2a264cb6f384c319",
    (0, 7): "d28703d5036ad23a",
    (3, 0): "a0d0d4b328f95f7b",
    (3, 7): "3b1ec3ee4cd69efa",
    (8, 0): "46aeddd313d40304",
    (8, 7): "ab7c1c3ed8f26945",
}


@pytest.mark.parametrize(("level", "seed"), sorted(PINNED))
def test_generated_bytes_are_pinned(level, seed):
    digest = hashlib.sha256()
    for t in taskforge.generate("code", 24, level=level, seed=seed, split="train"):
        digest.update(t.to_json().encode())
    assert digest.hexdigest()[:16] == PINNED[level, seed]


def test_a_wrong_reference_stops_its_block(tasks):
    # References share sandbox children in a block; one whose answer disagrees with its own tests
    # (anywhere in the block, alone or among many) still stops generation, as it did alone.
    assert check_references(tasks) is None
    for at in (0, len(tasks) // 2, len(tasks) - 1):
        bad = dataclasses.replace(
            tasks[at], answer=tasks[at].answer.replace("    return x", "    return [x]")
        )
        with pytest.raises(GenerationError):
            check_references([*tasks[:at], bad, *tasks[at + 1 :]])
    crash = dataclasses.replace(
        tasks[0], answer=tasks[0].answer.replace("    return x", "    import os\n    os._exit(0)")
    )
    with pytest.raises(GenerationError):
        check_references([*tasks, crash])


def test_compose_respects_types_and_steps():
    rng = random.Random(3)
    for start in ("list", "str", "int"):
        for steps in (1, 4, 10):
            chain = compose(rng, start, steps)
            assert len(chain) == steps and chain[0][0].takes == start
            for (a, _), (b, _) in zip(chain, chain[1:], strict=False):
                assert a.gives == b.takes


def test_prompt_has_spec_signature_and_examples_not_hidden_outputs(tasks):
    t = tasks[0]
    assert "solve(x: list[int])" in t.prompt and "1. " in t.prompt
    assert t.prompt.count("solve(") - 1 == t.params["examples"]
    assert len(t.check["tests"]) == t.params["tests"]
    assert t.answer not in t.prompt


def test_hidden_tests_include_edge_cases():
    params = Code.resolve_params(2, {"edge_density": 1.0, "tests": 30})
    t = GEN.sample(params, 0, "train", 0)
    inputs = [row[0][0] for row in t.check["tests"]]
    assert [] in inputs or any(len(set(x)) < len(x) for x in inputs if isinstance(x, list))


def test_knobs_change_the_tasks():
    base = Code.resolve_params(None, {"steps": 1, "tests": 5, "examples": 0})
    t1 = GEN.sample(base, 0, "train", 0)
    t6 = GEN.sample({**base, "steps": 6}, 0, "train", 0)
    assert len(t1.meta["steps"]) == 1 and len(t6.meta["steps"]) == 6
    assert "Examples" not in t1.prompt
    s = GEN.sample({**base, "input_type": "str"}, 0, "train", 0)
    assert "solve(x: str)" in s.prompt


def test_gold_passes_and_wrong_fails_with_fraction_in_details(tasks):
    verdicts = GEN.verify_many(tasks, [GEN.gold_response(t) for t in tasks])
    assert all(v.passed and v.score == 1.0 for v in verdicts), [v for v in verdicts if not v.passed]
    rng = random.Random(0)
    bad = GEN.verify_many(tasks, [GEN.corrupt_answer(t, rng) for t in tasks])
    assert not any(v.passed for v in bad)
    for v in bad:
        assert v.score == 0.0 and 0.0 <= v.details["fraction_passed"] < 1.0


def test_partially_right_code_scores_zero_with_fraction(tasks):
    t = tasks[0]
    first_args, first_out = t.check["tests"][0][0], t.check["tests"][0][1]
    # Right on one input only (hard-coded), wrong elsewhere.
    code = f"import json\ndef solve(x):\n    return {first_out!r} if x == {first_args[0]!r} else 'nope'\n"
    v = taskforge.verify(t, fenced(code))
    assert not v.passed and v.score == 0.0 and v.details["passed_tests"] >= 1


def test_response_extraction():
    assert extract_block("text ```python\na = 1\n``` more ```python\nb = 2\n```", "python") == "b = 2\n"
    assert (
        extract_block("<answer>def solve(x):\n    return x</answer>", "python")
        == "def solve(x):\n    return x"
    )
    assert extract_block("<answer>```python\nc = 3\n```</answer>", "python") == "c = 3\n"
    assert (
        extract_block("no code here", "python") is None
        and extract_block("```python\n   \n```", "python") is None
    )


@pytest.mark.parametrize(
    "response,reason",
    [
        ("", "no_answer"),
        ("I don't know", "no_answer"),
        ("```python\ndef solve(x)\n    return 1\n```", "malformed"),
        ("```python\ndef solve(x):\n    while True:\n        pass\n```", "timeout"),
        (
            "```python\nclass Y:\n    def __eq__(s, o):\n        return True\ndef solve(x):\n    return Y()\n```",
            "wrong",
        ),
        ("```python\nimport os\nos._exit(0)\n```", "wrong"),
        ("```python\n" + "x = 1\n" * 30000 + "```", "rejected"),
    ],
)
def test_bad_responses_get_the_right_reason(tasks, response, reason):
    v = taskforge.verify(tasks[0], response)
    assert not v.passed and v.reason == reason, v


def test_generation_is_deterministic_across_processes():
    code = (
        "import taskforge, hashlib\n"
        "h = hashlib.sha256()\n"
        "for t in taskforge.generate('code', 4, level=5, seed=11): h.update(t.to_json().encode())\n"
        "print(h.hexdigest())\n"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        ).stdout  # fmt: skip
        for seed in ("1", "2")
    }
    assert len(outs) == 1


# ---- problem sets --------------------------------------------------------------------------------------
def test_fixture_loads_both_shapes_and_gold_passes():
    problems = load_problems(FIXTURE)
    shapes = {t.meta["source"] for t in problems}
    assert shapes == {"humaneval", "plain"} and len(problems) >= 5
    verdicts = GEN.verify_many(problems, [fenced(t.answer) for t in problems])
    assert all(v.passed for v in verdicts), verdicts
    for t in problems:  # usable as ordinary tasks: JSON round trip, generic verify
        back = Task.from_json(t.to_json())
        assert taskforge.verify(back, fenced(t.answer)).passed


ALWAYS_EQUAL = """
class Yes:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __bool__(self):
        return True
    def __lt__(self, other):
        return True
    def __sub__(self, other):
        return 0
    def __rsub__(self, other):
        return 0
    def __abs__(self):
        return 0
    __hash__ = object.__hash__

def {entry}(*args, **kwargs):
    return Yes()
"""


def test_assert_style_tests_are_hardened_against_always_equal():
    problems = load_problems(FIXTURE)
    for t in problems:
        v = taskforge.verify(t, fenced(ALWAYS_EQUAL.format(entry=t.check["entry"])))
        assert not v.passed, (t.meta["task_id"], v)


SNOOP = """
import gc, sys

def _holds_test_code(value):
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return isinstance(value, str) and "def " + "check" in value

def running_max(xs):
    seen = any(
        isinstance(o, dict) and any(_holds_test_code(v) for v in o.values()) for o in gc.get_objects()
    )
    frame = sys._getframe()
    while frame is not None:
        seen = seen or any(_holds_test_code(v) for v in frame.f_locals.values())
        frame = frame.f_back
    return [1] if seen else [max(xs[: i + 1]) for i in range(len(xs))]
"""


def test_assert_style_test_code_is_not_visible_to_the_candidate():
    # The right answer unless the test code (with its expected values) is anywhere the candidate can
    # reach: job dicts, frames of the worker below it, earlier jobs of the same worker.
    (t,) = [p for p in load_problems(FIXTURE) if p.meta["task_id"] == "tf/he/0"]
    verdicts = GEN.verify_many([t] * 4, [fenced(SNOOP)] * 4)
    assert all(v.passed for v in verdicts), verdicts


def test_exit_before_check_fails():
    problems = [p for p in load_problems(FIXTURE) if p.meta["source"] == "humaneval"]
    for code in ("import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n", "print('All tests passed')\n"):
        assert not any(v.passed for v in GEN.verify_many(problems, [fenced(code)] * len(problems)))


def test_plain_rows_load_from_memory():
    rows = [
        {
            "task_id": "x",
            "prompt": "def f(a, b):\n",
            "entry_point": "f",
            "tests": [{"input": [1, 2], "output": 3}],
        }
    ]
    (t,) = load_problems(rows)
    assert taskforge.verify(t, fenced("def f(a, b):\n    return a + b\n")).passed
    assert not taskforge.verify(t, fenced("def f(a, b):\n    return float(a + b)\n")).passed  # exact types


# ---- command line --------------------------------------------------------------------------------------
def test_cli_generate_and_verify(tmp_path):
    out = tmp_path / "code.jsonl"
    cli = [str(Path(sys.executable).parent / "taskforge")]
    subprocess.run(
        [*cli, "generate", "code", "-n", "6", "--level", "2", "-o", str(out)], check=True, capture_output=True
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and all(r["family"] == "code" for r in rows)
    res = subprocess.run([*cli, "verify", str(out), "--gold", "--workers", "2", "-o", str(tmp_path / "v.jsonl")],
                         check=True, capture_output=True, text=True)  # fmt: skip
    verdicts = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert len(verdicts) == 6 and all(v["passed"] for v in verdicts), res.stdout
