"""Hostile answers to json_schema tasks: each gives a Verdict, fast, without raising or copying huge input."""

from __future__ import annotations

import json
import random
import tracemalloc

import pytest

import taskforge
from taskforge.generators.json_schema import MAX_RESPONSE_CHARS, JsonSchema
from taskforge.task import Task, Verdict

GEN = JsonSchema()
TASK = next(taskforge.generate("json_schema", 1, level=4, params={"mode": "conform"}, seed=3))
EXTRACT = next(taskforge.generate("json_schema", 1, level=4, params={"mode": "extract"}, seed=3))
GOLD = TASK.answer

pytestmark = pytest.mark.timeout(30)


def verdict(response: object, task=TASK) -> Verdict:
    v = GEN.verify(task, response)  # verify itself, not safe_verify: it must not raise either
    assert isinstance(v, Verdict)
    return v


def test_100_mb_json_rejected_by_size_without_copies() -> None:
    big = '<answer>{"a": "' + "x" * 100_000_000 + '"}</answer>'
    tracemalloc.start()
    try:
        v = verdict(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert v.reason == "malformed" and "longer than" in v.details["error"]
    assert peak < 1_000_000, f"verify allocated {peak} bytes on a 100 MB response"


def test_answer_over_the_task_limit_rejected_before_parsing() -> None:
    # Under the response cap, over the task's answer limit: size is checked before json.loads.
    huge = '{"a": "' + "y" * (MAX_RESPONSE_CHARS - 100) + '"}'
    v = verdict(f"<answer>{huge}</answer>")
    assert v.reason == "malformed" and v.details["error"].startswith("answer has")
    huge_string_value = {**json.loads(GOLD), "zz": "z" * (TASK.check["max_chars"])}
    assert verdict(f"<answer>{json.dumps(huge_string_value)}</answer>").reason == "malformed"


@pytest.mark.parametrize("levels", [100_000, 33])
def test_deep_nesting(levels: int) -> None:
    # With the task's own size limit, and with a limit raised so that the nesting scan is what stops it.
    roomy = Task(**{**TASK.to_dict(), "check": {**TASK.check, "max_chars": 1_000_000}})
    for text in ("[" * levels + "]" * levels, '{"a":' * levels + "1" + "}" * levels, "[" * levels):
        assert verdict(f"<answer>{text}</answer>").reason == "malformed"
        v = verdict(f"<answer>{text}</answer>", task=roomy)
        assert v.reason == "malformed" and "nesting" in v.details["error"]


def test_unterminated_strings_full_of_escaped_quotes() -> None:
    # Each escaped quote could restart a string scan (quadratic); the scan stops at the first open string.
    roomy = Task(**{**TASK.to_dict(), "check": {**TASK.check, "max_chars": 1_000_000}})
    for text in ('"' + '\\"' * 400_000, "[" * 20 + '"' + '\\"' * 400_000, '{"a": "\\\n' + "[" * 50):
        assert verdict(f"<answer>{text}</answer>", task=roomy).reason == "malformed"


def test_brackets_inside_strings_are_not_nesting() -> None:
    gold = json.loads(GOLD)
    gold["zz"] = "[" * 10_000 + '\\"{' * 100
    v = verdict(f"<answer>{json.dumps(gold)}</answer>")
    assert v.reason != "malformed" or "nesting" not in v.details.get("error", "")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_non_finite_numbers(constant: str) -> None:
    gold = json.loads(GOLD)
    key = next(iter(gold))
    text = json.dumps({**gold, key: 0}).replace(f'"{key}": 0', f'"{key}": {constant}')
    assert constant in text
    assert verdict(f"<answer>{text}</answer>").reason == "malformed"


def test_duplicate_keys_rejected_even_with_equal_values() -> None:
    gold = json.loads(GOLD)
    key = next(iter(gold))
    dup = "{" + f'"{key}": {json.dumps(gold[key])}, ' + GOLD[1:]
    v = verdict(f"<answer>{dup}</answer>")
    assert v.reason == "malformed" and "duplicate" in v.details["error"]
    assert verdict(f"<answer>{GOLD}</answer>").passed


def test_two_json_values() -> None:
    assert verdict(f"<answer>{GOLD} {GOLD}</answer>").reason == "malformed"
    assert verdict(f"<answer>{GOLD}\n{{}}</answer>").reason == "malformed"
    assert verdict(f"<answer>[{GOLD}][]</answer>").reason == "malformed"
    # Two fenced blocks: the rule is the last one, whatever the first holds.
    assert not verdict(f'```json\n{GOLD}\n```\n```json\n{{"zz": 1}}\n```').passed


def test_many_code_fences() -> None:
    # 600k fences stay under the response cap; scanning them one by one would take minutes.
    assert verdict("```" * 600_000).reason == "malformed"
    assert verdict(f"<answer>```json\n{GOLD}\n```" + "```" * 100 + "</answer>").reason == "malformed"
    assert verdict("```" * 20 + f"\n```json\n{GOLD}\n```").passed


def test_json_hidden_in_prose_is_no_answer() -> None:
    assert verdict(f"I think the object is {GOLD}, hope it helps!").reason == "no_answer"
    assert verdict(f"{GOLD}").reason == "no_answer"


def test_random_bytes_and_non_text() -> None:
    rng = random.Random(0)
    for _ in range(50):
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 4000))).decode("latin-1")
        for response in (junk, f"<answer>{junk}</answer>", f"```json\n{junk}\n```"):
            assert not verdict(response).passed
    for response in (None, 17, b'{"a": 1}', ["<answer>{}</answer>"]):
        assert verdict(response).reason == "malformed"


def test_strings_a_validator_cannot_take() -> None:
    gold = json.loads(GOLD)
    key = next(iter(gold))
    for value in ('"\\ud800"', '"\\udfff\\ud800"', "1" + "0" * 5000, "1" + "0" * 30, "-" + "9" * 40):
        text = json.dumps({**gold, key: 0}).replace(f'"{key}": 0', f'"{key}": {value}')
        v = verdict(f"<answer>{text}</answer>")
        assert not v.passed and v.reason in ("malformed", "wrong")
    assert verdict('<answer>{"\\ud800": 1}</answer>').reason in ("malformed", "wrong")


def test_control_characters_and_odd_whitespace() -> None:
    assert verdict('<answer>{"a": "x\x00y"}</answer>').reason == "malformed"
    assert verdict(f"<answer>\ufeff{GOLD}</answer>").reason == "malformed"  # a BOM is not JSON
    assert verdict(f"<answer>\n\t {GOLD} \n</answer>").passed


def test_extract_cannot_be_gamed_by_a_valid_but_different_object() -> None:
    v = verdict(f"<answer>{TASK.answer}</answer>", task=EXTRACT)
    assert not v.passed
    assert verdict(f"<answer>{EXTRACT.answer}</answer>", task=EXTRACT).passed
