import json
import random

import pytest

import taskforge
from taskforge.extract import extract_answer, extract_block, extract_fenced
from taskforge.generator import Knob, KnobError, split_owns
from taskforge.seeding import item_seed
from taskforge.task import Task, Verdict
from tests.stubs import StubGenerator


def test_task_json_round_trip_is_exact():
    for task in taskforge.generate("arithmetic", 20, level=4, seed=3):
        text = task.to_json()
        back = Task.from_json(text)
        assert back == task
        assert back.to_json() == text


def test_task_from_dict_names_missing_fields():
    row = json.loads(next(taskforge.generate("arithmetic", 1)).to_json())
    del row["check"]
    with pytest.raises(ValueError, match="check"):
        Task.from_dict(row)


def test_verdict_rejects_unknown_reason():
    with pytest.raises(ValueError, match="unknown verdict reason"):
        Verdict(False, 0.0, "nope")


def test_item_seed_is_not_seed_plus_index():
    # reasoning-gym's defect: item i of seed 2 equals item i+1 of seed 1.
    a = [item_seed("f", "1", {}, 1, "train", i) for i in range(100)]
    b = [item_seed("f", "1", {}, 2, "train", i) for i in range(100)]
    assert not set(a) & set(b)
    assert item_seed("f", "1", {"x": 1}, 0, "train", 0) != item_seed("f", "1", {"x": 2}, 0, "train", 0)
    assert item_seed("f", "1", {}, 0, "train", 0) != item_seed("f", "1", {}, 0, "val", 0)


def test_splits_disjoint_even_on_a_tiny_problem_space():
    # 1-digit x 1-digit has 81 problems: seeds alone would collide, the id buckets do not.
    ids = {
        s: {t.id for t in taskforge.generate("arithmetic", 300, level=0, split=s)}
        for s in ("train", "val", "test")
    }
    assert ids["train"] and ids["val"] and ids["test"]
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    assert all(split_owns("val", i) for i in ids["val"])


def test_seeds_one_and_two_share_no_task():
    one = {t.id for t in taskforge.generate("arithmetic", 500, level=6, seed=1)}
    two = {t.id for t in taskforge.generate("arithmetic", 500, level=6, seed=2)}
    assert len(one) == 500 and not one & two


def test_generate_start_continues_the_same_sequence():
    full = [t.to_json() for t in taskforge.generate("arithmetic", 10, level=3, seed=7)]
    tail = [t.to_json() for t in taskforge.generate("arithmetic", 4, level=3, seed=7, start=6)]
    assert full[6:] == tail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>42</answer>", "42"),
        ("<answer>1</answer> then <answer> 2 </answer>", "2"),
        ("\\boxed{7}", "7"),
        ("\\boxed{1} and \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("<answer>a</answer> \\boxed{b}", "a"),
        ("<answer><answer>x</answer></answer>", "x"),
        ("no answer here", None),
        ("<answer>unterminated", None),
        ("\\boxed{unbalanced", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_extract_answer_is_linear_on_hostile_input():
    huge = "<answer>" * 200_000 + "\\boxed{" * 200_000
    assert extract_answer(huge) is None
    assert extract_answer(None) is None  # type: ignore[arg-type]


def test_extract_fenced_takes_the_last_block_of_the_language():
    text = "```python\na = 1\n```\ntext\n```sql\nSELECT 1\n```\n```python\nb = 2\n```"
    assert extract_fenced(text, "python") == "b = 2\n"
    assert extract_fenced(text, "sql") == "SELECT 1\n"
    assert extract_fenced("nothing", "python") is None


def test_knob_coercion_and_errors():
    k = Knob("d", int, 3, low=1, high=5)
    assert k.coerce("4") == 4
    with pytest.raises(KnobError, match=r"int in \[1, 5\]"):
        k.coerce(9)
    with pytest.raises(KnobError):
        k.coerce("x")
    b = Knob("neg", bool, False)
    assert b.coerce("true") is True
    with pytest.raises(KnobError):
        b.coerce("maybe")
    c = Knob("op", str, "a", choices=("a", "b"))
    with pytest.raises(KnobError, match="a|b"):
        c.coerce("z")


def test_resolve_params_errors_name_what_is_valid():
    cls = taskforge.generator_class("arithmetic")
    with pytest.raises(KnobError, match="valid: op, digits"):
        cls.resolve_params(params={"nope": 1})
    with pytest.raises(KnobError, match="levels 0..11"):
        cls.resolve_params(level=99)
    assert cls.level_of(cls.resolve_params(level=5)) == 5
    assert cls.level_of(cls.resolve_params(level=5, params={"negative": True})) == 5  # a variant of rung 5
    assert cls.level_of(cls.resolve_params(level=5, params={"digits": 7})) is None


def test_unknown_family_lists_the_valid_ones():
    with pytest.raises(KeyError, match="valid: .*arithmetic"):
        taskforge.get_generator("nope")


class _Raising(StubGenerator):
    family = "raising-test"

    def generate(self, params, rng: random.Random):
        return self.make_task(params, prompt="p", answer="a", check={})

    def verify(self, task, response):
        raise RuntimeError("bug")


def test_safe_verify_turns_verifier_bugs_into_error_verdicts():
    gen = _Raising()
    task = gen.sample({}, 0, "train", 0)
    assert gen.safe_verify(task, "x").reason == "error"
    assert gen.safe_verify(task, None).reason == "malformed"


def test_verify_accepts_dict_tasks_and_never_raises():
    task = next(taskforge.generate("arithmetic", 1, level=2))
    assert taskforge.verify(task.to_dict(), f"<answer>{task.answer}</answer>").passed
    for junk in (None, 3, b"x", "", "<answer>" * 10):
        assert not taskforge.verify(task, junk).passed


def test_nested_boxes_give_the_outer_one():
    assert extract_answer("\\boxed{\\boxed{X}1}") == "\\boxed{X}1"


def test_extract_fenced_is_linear_in_the_number_of_fences():
    assert extract_fenced("```" * 300_000, "python") is None
    assert extract_fenced("```python\n" * 100_000 + "x\n```", "python") == "x\n"


def test_extract_block_prefers_the_fence_then_the_answer():
    assert extract_block("```sql\nSELECT 1\n```\n<answer>SELECT 2</answer>", "sql") == "SELECT 1\n"
    assert extract_block("<answer>```sql\nSELECT 3\n```</answer>", "sql") == "SELECT 3\n"
    assert extract_block("<answer> SELECT 4 </answer>", "sql") == "SELECT 4"
    assert extract_block("```sql\n  \n```", "sql") is None
    assert extract_block(None, "sql") is None  # type: ignore[arg-type]


def test_the_generator_contract_examples_run():
    import doctest

    import taskforge.generator

    result = doctest.testmod(taskforge.generator)
    assert result.attempted >= 4 and result.failed == 0


@pytest.mark.parametrize(
    "family, params, message",
    [
        ("sat", {"n": 4, "k": 3}, "k >= n"),
        ("sat", {"k": 30, "format": "letters"}, "letters"),
        ("sql", {"tables": 2, "joins": 3}, "tables >= joins"),
        ("arithmetic", {"min_carries": 5, "max_carries": 2}, "exceeds max_carries"),
        ("arithmetic", {"digits": 1, "digits_b": 1, "min_carries": 50}, "at most 4 carries"),
    ],
)
def test_cross_knob_rules_are_refused_by_resolve_params(family, params, message):
    from taskforge.io import DatasetSpec

    cls = taskforge.generator_class(family)
    with pytest.raises(KnobError, match=message):
        cls.resolve_params(None, params)
    with pytest.raises(KnobError, match=message):  # a dataset fails before anything is written
        DatasetSpec(n=1, family=family, params=params).validate()
    for level in range(len(cls.levels)):  # the ladder itself obeys the rules
        cls.check_params(cls.resolve_params(level))
