import random

import pytest

import taskforge
from taskforge.generators.arithmetic import addition_carries, multiplication_carries, parse_integer


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1234", 1234),
        ("1,234", 1234),
        ("1 234 567", 1234567),
        ("+12", 12),
        ("-1,000", -1000),
        (" 7 ", 7),
        ("0", 0),
    ],
)
def test_parse_integer_accepts(text, value):
    assert parse_integer(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "12.0",
        "1e3",
        "1,23",
        "12,34,567",
        "1,234 567",
        "twelve",
        "1+1",
        "0x10",
        "١٢",
        "--1",
        "12 apples",
        "1_000",
        "9" * 401,
    ],
)
def test_parse_integer_rejects(text):
    assert parse_integer(text) is None


def test_carry_counts_match_hand_examples():
    assert multiplication_carries(12, 3) == 0
    assert multiplication_carries(5, 5) == 1  # 25
    assert multiplication_carries(99, 99) > multiplication_carries(11, 11)
    assert addition_carries([5, 5]) == 1
    assert addition_carries([11, 22]) == 0
    assert addition_carries([999, 1]) == 3


def test_carry_bounds_are_respected():
    params = {"digits": 4, "digits_b": 3, "min_carries": 3, "max_carries": 5}
    for task in taskforge.generate("arithmetic", 50, params=params):
        assert 3 <= task.meta["carries"] <= 5
        a, b = (int(x) for x in task.meta["expression"].split(" × "))
        assert multiplication_carries(a, b) == task.meta["carries"]


def test_impossible_carry_bounds_raise_a_clear_error():
    with pytest.raises(taskforge.KnobError, match="carries"):
        next(taskforge.generate("arithmetic", 1, params={"digits": 1, "digits_b": 1, "min_carries": 50}))


def test_sums_and_negatives():
    params = {"op": "sum", "digits": 5, "terms": 6, "negative": True}
    saw_minus = False
    for task in taskforge.generate("arithmetic", 40, params=params, seed=4):
        expr = task.meta["expression"]
        saw_minus |= " - " in expr
        tokens = expr.replace("- ", "-").replace("+ ", "").split()
        assert sum(int(t) for t in tokens) == int(task.answer)
        assert taskforge.verify(task, f"<answer>{task.answer}</answer>").passed
    assert saw_minus


def test_exact_verification_no_partial_or_substring_credit():
    task = next(taskforge.generate("arithmetic", 1, level=6, seed=1))
    ans = task.answer
    formatted = f"{int(ans):,}"
    assert taskforge.verify(task, f"<answer>{formatted}</answer>").passed
    assert taskforge.verify(task, f"\\boxed{{+{ans}}}").passed
    for bad in (ans + "0", ans[:-1], f"{ans} or {int(ans) + 1}", f"{ans}.0", f"x={ans}", str(int(ans) + 1)):
        v = taskforge.verify(task, f"<answer>{bad}</answer>")
        assert not v.passed and v.score == 0.0
    assert taskforge.verify(task, ans).reason == "no_answer"
    assert taskforge.verify(task, "<answer>12 apples</answer>").reason == "malformed"


def test_negative_multiplication_verifies():
    rng = random.Random(0)
    found = False
    for task in taskforge.generate("arithmetic", 30, params={"digits": 3, "negative": True}):
        found |= task.answer.startswith("-")
        assert taskforge.verify(task, f"<answer>{task.answer}</answer>").passed
        assert not taskforge.verify(task, f"<answer>{int(task.answer) + rng.choice((1, -1))}</answer>").passed
    assert found
