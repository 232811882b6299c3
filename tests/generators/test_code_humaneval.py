"""HumanEval-shaped problems whose `check` needs the prompt's helpers or calls the entry point by name
(shaped like HumanEval/32, 33, 38 and 50, in data/humaneval_shaped.jsonl): every canonical solution
passes, and the candidate still answers only through plain data."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskforge.generators.code import Code, load_problems

DATA = Path(__file__).resolve().parents[2] / "data" / "humaneval_shaped.jsonl"
GEN = Code()


@pytest.fixture(scope="module")
def tasks() -> dict:
    return {t.meta["task_id"]: t for t in load_problems(DATA)}


def fenced(code: str) -> str:
    return f"```python\n{code}\n```"


def test_every_canonical_solution_passes(tasks) -> None:
    assert sorted(tasks) == ["HumanEval/32", "HumanEval/33", "HumanEval/38", "HumanEval/50"]
    verdicts = {k: GEN.safe_verify(t, GEN.gold_response(t)) for k, t in tasks.items()}
    assert all(v.passed for v in verdicts.values()), verdicts


def test_wrong_solutions_still_fail(tasks) -> None:
    wrong = {
        "HumanEval/32": "def find_zero(xs):\n    return 0.0\n",
        "HumanEval/33": "def sort_third(l):\n    return sorted(l)\n",
        "HumanEval/38": "def decode_cyclic(s):\n    return s\n",
        "HumanEval/50": "def decode_shift(s):\n    return s\n",
    }
    for key, code in wrong.items():
        verdict = GEN.safe_verify(tasks[key], fenced(code))
        assert not verdict.passed and verdict.reason == "wrong", (key, verdict)


def test_a_completion_may_use_the_prompts_helpers(tasks) -> None:
    # As in HumanEval's harness (prompt + completion): the answer calls a helper only the prompt defines.
    verdict = GEN.safe_verify(
        tasks["HumanEval/38"], fenced("def decode_cyclic(s):\n    return encode_cyclic(encode_cyclic(s))\n")
    )
    assert verdict.passed, verdict


def test_the_entry_name_in_check_is_the_candidate_not_the_prompts_stub(tasks) -> None:
    # check compares candidate(x) with sort_third(x): were sort_third the prompt's stub (returns None) or
    # anything but the candidate, a candidate returning None would pass the first two asserts alone.
    verdict = GEN.safe_verify(tasks["HumanEval/33"], fenced("def sort_third(l):\n    return None\n"))
    assert not verdict.passed


def test_always_equal_objects_do_not_cross(tasks) -> None:
    code = (
        "class Eq(str):\n    def __eq__(self, other):\n        return True\n    __hash__ = str.__hash__\n"
        "def decode_shift(s):\n    return Eq('x')\n"
    )
    assert not GEN.safe_verify(tasks["HumanEval/50"], fenced(code)).passed
